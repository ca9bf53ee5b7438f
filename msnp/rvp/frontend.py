"""
The RVP home server: every method as protocol-notes/rvp.md describes it,
over the soft state in L{msnp.rvp.state} and the accounts and lists behind
L{IRvpHome}.  This module answers the requests: who may do what, and the
changes they make.  The NOTIFYs the server sends, and when, are
L{msnp.rvp.notify}; the XML documents it answers with and reads are
L{msnp.rvp.documents}.
"""

from __future__ import annotations

import re
from typing import Optional

import attrs
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.logger import Logger

from msnp.rvp import documents, xmldoc
from msnp.rvp.digest import DigestAuthority, handle_for_username, parse_authorization
from msnp.rvp.home import InstantMessage, IRvpHome
from msnp.rvp.httpwire import Request, Response, response, split_target
from msnp.rvp.notify import Notifier
from msnp.rvp.outbound import OutboundClient, PeerLocator
from msnp.rvp.principals import Principals, Site
from msnp.rvp.state import (
    HIDDEN_STATES,
    LOGIN,
    PROPCHANGE,
    PresenceTable,
    Subscription,
    SubscriptionTable,
    grant_lease,
    grant_lifetime,
)
from msnp.rvp.documents import InvalidDocument
from msnp.rvp.xmldoc import XmlError, document, element, text_element

log = Logger()

NOT_IMPLEMENTED = frozenset({"GET", "HEAD", "POST", "PUT", "LOCK", "UNLOCK", "OPTIONS"})
NOT_ALLOWED = frozenset({"COPY", "MOVE"})
MAX_HOP_COUNT = 8
MAX_DISPLAY_NAME = 129
XML = "text/xml"


@attrs.define
class RvpSettings:
    """
    C{domain}: whose accounts are RVP principals; C{site}: the host and
    port in their URLs; C{peers}: another domain's base URL by domain;
    C{peer_addresses}: source address → peer domain, for server-to-server
    requests accepted without credentials.
    """

    domain: str
    site: Site
    peers: dict[str, str] = attrs.Factory(dict)
    peer_addresses: dict[str, str] = attrs.Factory(dict)
    deliver_timeout: float = 30.0


@attrs.frozen
class Caller:
    """
    Who sent a request: an authenticated account (C{handle}) or a
    configured peer server recognised by address (C{peer}, its domain).
    """

    handle: Optional[str] = None
    peer: Optional[str] = None
    address: str = ""


class Refused(Exception):
    def __init__(self, status: int, reason: str = ""):
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason


def _error(status: int, reason: str = "") -> Response:
    body = (reason + "\r\n").encode("utf-8") if reason else b""
    return response(status, body, "text/plain" if reason else None)


def _number(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        return None
    return float(text)


class RvpFrontEnd:
    """
    Answers RVP requests for the accounts of one domain.  C{clock} drives
    leases, subscription lifetimes and Digest nonces (a L{task.Clock} in
    tests); C{reactor} the outbound connections.
    """

    def __init__(self, settings: RvpSettings, home: IRvpHome, reactor, clock=None, outbound: Optional[OutboundClient] = None, resolver=None):
        self.settings = settings
        self.home = home
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.principals = Principals(settings.domain, settings.site, settings.peers)
        self.digest = DigestAuthority(settings.domain.lower(), self.clock)
        self.presence = PresenceTable(self.clock, self._presence_changed)
        self.subscriptions = SubscriptionTable(self.clock, self._subscription_expired)
        self.outbound = outbound if outbound is not None else OutboundClient(reactor, settings.deliver_timeout)
        self.locator = PeerLocator(settings.peers, resolver)
        self.notifier = Notifier(self.principals, self.presence, self.subscriptions, home, self.outbound, reactor)
        home.bind(self)

    def set_site(self, site: Site) -> None:
        """
        The port is known only once listening (port 0 in tests).
        """
        self.settings.site = site
        self.principals.site = site

    @inlineCallbacks
    def stop(self):
        # The home may still send (UNSUBSCRIBEs to other servers) before
        # the outbound connections close.
        yield self.home.stop()
        self.presence.stop()
        self.subscriptions.stop()
        self.notifier.stop()
        yield self.outbound.stop()

    # Entry point

    @inlineCallbacks
    def handle(self, request: Request, address: str):
        method = request.method.upper()
        if method in NOT_ALLOWED:
            return _error(405)
        handler = getattr(self, "do_" + method, None)
        if handler is None or method in NOT_IMPLEMENTED:
            return _error(501)
        where, node = self.principals.local_handle_of_target(request.target)
        if where == "no-node":
            return _error(404, "no such node")
        try:
            caller = yield self._authenticate(request, address)
            if caller is None:
                return self._challenge(request)
            if isinstance(caller, Response):
                return caller
            if where == "not-here":
                result = yield self._forward(request, caller)
                return result
            account = yield self.home.account(node)
            if account is None:
                return _error(404, "no such node")
            result = yield handler(request, caller, node, account)
        except Refused as refused:
            return _error(refused.status, refused.reason)
        except InvalidDocument as invalid:
            return _error(400, str(invalid))
        except XmlError as error:
            return _error(400, f"bad XML: {error}")
        return result

    # Authentication

    def _challenge(self, request: Request, stale: bool = False) -> Response:
        return response(401, b"", None, WWW_Authenticate=self.digest.challenge(stale))

    @inlineCallbacks
    def _authenticate(self, request: Request, address: str):
        authorization = request.headers.get("Authorization")
        if authorization is None:
            peer = self.settings.peer_addresses.get(address)
            if peer is None:
                return None
            given = request.headers.get("RVP-From-Principal")
            if given is not None and self.principals.is_local_url(given):
                # One of our users on the peer's host: ask for credentials.
                return None
            return Caller(peer=peer, address=address)
        parsed = parse_authorization(authorization)
        if parsed is None or parsed[0].lower() != "digest":
            return None
        params = parsed[1]
        handle = handle_for_username(params.get("username", ""), self.settings.domain)
        if handle is None:
            return None
        account = yield self.home.account(handle)
        if account is None:
            return None
        result = self.digest.check(request.method, params, account.digest_secrets, account.handle)
        if result.stale:
            return self._challenge(request, stale=True)
        if result.handle is None:
            return None
        return Caller(handle=result.handle, address=address)

    def _caller_principal(self, caller: Caller, request: Request) -> str:
        """
        The principal a request speaks for: the account's URL, or for a
        peer the RVP-From-Principal it names (which must be of its domain).
        """
        given = request.headers.get("RVP-From-Principal")
        if caller.handle is not None:
            own = self.principals.url_of(caller.handle)
            if given is not None and self.principals.handle_of_url(given) not in (None, caller.handle):
                raise Refused(403, "RVP-From-Principal is not the authenticated principal")
            return own
        if given is None:
            raise Refused(400, "RVP-From-Principal missing")
        if not self._of_peer(caller, given):
            raise Refused(403, "RVP-From-Principal is not of the peer's domain")
        return given.strip()

    def _of_peer(self, caller: Caller, url: str) -> bool:
        url = url.strip()
        handle = self.principals.handle_of_url(url)
        if handle is not None:
            return handle.partition("@")[2] == caller.peer
        peer_site = self.principals.peers.get(caller.peer or "")
        return peer_site is not None and url.lower() == peer_site.host

    def _viewer_of(self, principal: str) -> Optional[str]:
        return self.principals.handle_of_url(principal)

    # Federation: our users' requests for another domain's nodes

    @inlineCallbacks
    def locate(self, domain: str):
        """
        The base URL of C{domain}'s RVP server (``--rvp-peer``, else SRV,
        else the domain); a domain found this way becomes a known peer:
        its principal URLs map to handles and its address is trusted like
        a configured peer's.
        """
        domain = domain.lower()
        if domain in self.principals.peers:
            return self.principals.peers[domain].base
        base = yield self.locator.base_url(domain)
        self.principals.add_peer(domain, base)
        host = Site.from_url(base).host
        try:
            address = yield self.reactor.resolve(host)
        except Exception as error:
            log.info("rvp peer {domain}: cannot resolve {host}: {error}", domain=domain, host=host, error=error)
        else:
            self.settings.peer_addresses.setdefault(address, domain)
        return base

    @inlineCallbacks
    def _forward(self, request: Request, caller: Caller):
        """
        Send an authenticated user's request for a federated node on to that
        domain's server, as this server (trusted there by address), and
        relay the answer.  Redirects (302 to a physical URL) are followed.
        The user's Call-Back must be its own principal URL, so the peer's
        notifications come back through us.
        """
        if caller.handle is None:
            raise Refused(404, "no such node")
        target = split_target(request.target)
        domain = self.principals.domain_of_site(Site(target.host, target.port or 80))
        if domain is None or domain == self.principals.domain:
            raise Refused(404, "no such node")
        own = self.principals.url_of(caller.handle)
        given = request.headers.get("RVP-From-Principal")
        if given is not None and self.principals.handle_of_url(given) != caller.handle:
            raise Refused(403, "RVP-From-Principal is not the authenticated principal")
        callback = request.headers.get("Call-Back")
        if callback is not None and self.principals.handle_of_url(callback.strip()) != caller.handle:
            raise Refused(403, "Call-Back of a federated subscription must be the subscriber's principal")
        hop_text = request.headers.get("RVP-Hop-Count")
        hop = _number(hop_text) if hop_text is not None else 1
        if hop is None or hop + 1 >= MAX_HOP_COUNT:
            raise Refused(400, "hop count exceeded")
        headers = {"RVP-From-Principal": own, "RVP-Hop-Count": str(int(hop) + 1)}
        for name in FORWARDED_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        try:
            reply = yield self.outbound.request(request.method.upper(), request.target, headers, request.body, want_body=True)
        except Exception as error:
            log.info("forwarding to {target} failed: {error}", target=request.target, error=error)
            raise Refused(412, "the principal's server cannot be reached")
        # The peer not trusting us is our failure, not the user's password.
        result = response(403 if reply.status == 401 else reply.status, reply.body)
        for name in RELAYED_HEADERS:
            value = reply.headers.get(name.lower())
            if value is not None:
                result.headers.add(name, value)
        return result

    # SUBSCRIBE, UNSUBSCRIBE, SUBSCRIPTIONS

    @inlineCallbacks
    def do_SUBSCRIBE(self, request: Request, caller: Caller, node: str, account):
        headers = request.headers
        sub_id = headers.get("Subscription-Id")
        lifetime_text = headers.get("Subscription-Lifetime")
        requested = _number(lifetime_text)
        if lifetime_text is not None and requested is None:
            raise Refused(400, "Subscription-Lifetime is not a number of seconds")
        lifetime = grant_lifetime(requested)
        if sub_id is not None:
            subscription = self._owned_subscription(sub_id.strip(), node, caller, request)
            self.subscriptions.renew(subscription.sub_id, lifetime)
            return response(200, Subscription_Id=subscription.sub_id, Subscription_Lifetime=str(int(lifetime)))
        kind = headers.get("Notification-Type")
        callback = headers.get("Call-Back")
        if kind is None or not kind.strip():
            raise Refused(400, "Notification-Type missing")
        if callback is None or split_target(callback.strip()) is None or split_target(callback.strip()).host is None:
            raise Refused(400, "Call-Back missing or not an http URL")
        kind, callback = kind.strip(), callback.strip()
        subscriber = self._caller_principal(caller, request)
        if kind.lower() == LOGIN:
            if caller.handle != node:
                raise Refused(403, "only the principal subscribes to its own node")
            callback = self._local_node(callback, caller.address)
        elif caller.peer is not None and not self._of_peer(caller, callback):
            raise Refused(403, "a peer subscribes only with its own Call-Back")
        subscription = self.subscriptions.add(node, kind, callback, subscriber, lifetime)
        if subscription is None:
            raise Refused(503, "too many subscriptions to this node")
        granted = dict(Subscription_Id=subscription.sub_id, Subscription_Lifetime=str(int(lifetime)))
        if kind.lower() != PROPCHANGE:
            return response(200, **granted)
        viewer = self._viewer_of(subscriber)
        if caller.handle is not None and caller.handle != node:
            yield self.home.add_contact(caller.handle, node, account.display_name)
        elif caller.peer is not None and viewer is not None:
            yield self.home.watcher_from_peer(node, viewer)
        properties = yield self._properties(node, account, viewer)
        self.notifier.told(subscription.sub_id, properties["state"])
        body = documents.multistatus(self.principals.url_of(node), [(documents.property_nodes(properties, documents.PROPERTY_NAMES), documents.OK_STATUS)])
        return response(207, body, XML, **granted)

    @staticmethod
    def _local_node(callback: str, address: str) -> str:
        """
        A login Call-Back names the client's own listener; 0.0.0.0 (sent by
        some clients) means the address the request came from.
        """
        target = split_target(callback)
        if target.host in ("0.0.0.0", "[::]"):
            return f"http://{address}:{target.port or 80}{target.path if target.path != '/' else ''}"
        return callback

    def _owned_subscription(self, sub_id: str, node: str, caller: Caller, request: Request) -> Subscription:
        subscription = self.subscriptions.get(sub_id)
        if subscription is None or subscription.node != node:
            raise Refused(412, "no such subscription")
        if caller.handle == node:
            return subscription
        if caller.handle is not None and self._viewer_of(subscription.subscriber) == caller.handle:
            return subscription
        if caller.peer is not None and self._of_peer(caller, subscription.subscriber):
            return subscription
        raise Refused(403, "not your subscription")

    def do_UNSUBSCRIBE(self, request: Request, caller: Caller, node: str, account):
        sub_id = request.headers.get("Subscription-Id")
        if sub_id is None or not sub_id.strip():
            raise Refused(400, "Subscription-Id missing")
        subscription = self._owned_subscription(sub_id.strip(), node, caller, request)
        self.subscriptions.remove(subscription.sub_id)
        self.notifier.forget(subscription.sub_id)
        return response(200)

    @inlineCallbacks
    def do_SUBSCRIPTIONS(self, request: Request, caller: Caller, node: str, account):
        if caller.handle != node:
            raise Refused(403, "only the principal lists who watches it")
        kind = request.headers.get("Notification-Type")
        kind = kind.strip() if kind else None
        now = self.clock.seconds()
        entries = []
        listed = set()
        for subscription in sorted(self.subscriptions.of_node(node, kind), key=lambda s: s.expires):
            listed.add(self._viewer_of(subscription.subscriber))
            entries.append(
                element(
                    "r:subscription",
                    text_element("r:subscription-id", subscription.sub_id),
                    text_element("d:href", subscription.callback),
                    element("a:principal", text_element("a:rvp-principal", subscription.subscriber)),
                    text_element("d:timeout", str(subscription.remaining(now))),
                )
            )
        if kind is None or kind.lower() == PROPCHANGE:
            # Who else watches: the reverse list (MSN users, federated
            # watchers), as the privacy tab shows it.  They hold no RVP
            # subscription, so no id and no timeout.
            watchers = yield self.home.reverse_list(node)
            for watcher in sorted(set(watchers) - listed):
                principal = documents.principal_text(self.principals, watcher)
                entries.append(
                    element(
                        "r:subscription",
                        text_element("d:href", principal),
                        element("a:principal", text_element("a:rvp-principal", principal)),
                    )
                )
        return response(200, document(element("r:subscriptions", *entries)), XML)

    def _subscription_expired(self, subscription: Subscription) -> None:
        self.notifier.forget(subscription.sub_id)

    def _presence_changed(self, node: str, published: str) -> None:
        self.notifier.presence_changed(node, published)

    # Properties: PROPFIND, PROPPATCH

    @inlineCallbacks
    def _properties(self, node: str, account, viewer: Optional[str]):
        state = yield self.notifier.state_of(node, viewer)
        return {
            "displayname": account.display_name,
            "state": state,
            "email": account.handle,
            "mobile-state": "0",
            "mobile-description": "",
        }

    @inlineCallbacks
    def do_PROPFIND(self, request: Request, caller: Caller, node: str, account):
        if (request.headers.get("Depth") or "").strip() != "0":
            raise Refused(412, "PROPFIND takes Depth: 0 only")
        wanted: list[tuple[str, str, str]] = []  # (namespace, local name, prefix)
        names_only = False
        if request.body.strip():
            root = xmldoc.parse(request.body)
            if root.name != "propfind":
                raise Refused(400, "expected a propfind")
            prop = root.find("prop")
            if root.find("propname") is not None:
                names_only = True
            elif prop is not None:
                wanted = [(child.namespace, child.name, documents.prefix_for(child.namespace)) for child in prop.children]
                if not wanted:
                    raise Refused(400, "propfind names no property")
            elif root.find("allprop") is None:
                raise Refused(400, "propfind needs prop, allprop or propname")
        viewer = caller.handle if caller.handle is not None else self._viewer_of(self._caller_principal(caller, request))
        properties = yield self._properties(node, account, viewer)
        if names_only:
            names = [element(f"{prefix}:{name}") for prefix, name in documents.PROPERTY_NAMES]
            return response(207, documents.multistatus(self.principals.url_of(node), [(names, documents.OK_STATUS)]), XML)
        if not wanted:
            found = documents.property_nodes(properties, documents.PROPERTY_NAMES)
            return response(207, documents.multistatus(self.principals.url_of(node), [(found, documents.OK_STATUS)]), XML)
        found, missing = [], []
        for namespace, name, prefix in wanted:
            if (prefix, name) in documents.PROPERTY_NAMES:
                found.extend(documents.property_nodes(properties, [(prefix, name)]))
            else:
                missing.append(element(f"{prefix}:{name}" if prefix else name))
        body = documents.multistatus(self.principals.url_of(node), [(found, documents.OK_STATUS), (missing, "HTTP/1.1 404 Not Found")])
        return response(207, body, XML)

    @inlineCallbacks
    def do_PROPPATCH(self, request: Request, caller: Caller, node: str, account):
        if caller.handle != node:
            raise Refused(403, "only the principal sets its properties")
        root = xmldoc.parse(request.body)
        if root.name not in ("propertyupdate", "propupdate"):
            raise Refused(400, "expected a propertyupdate")
        done, refused = [], []
        for action in root.children:
            if action.name not in ("set", "remove"):
                continue
            for prop in action.find_all("prop"):
                for item in prop.children:
                    prefix = documents.prefix_for(item.namespace)
                    label = f"{prefix}:{item.name}" if prefix else item.name
                    if action.name == "set" and item.name == "state":
                        done.append(self._set_state(node, item))
                    elif action.name == "set" and item.name == "displayname":
                        name = item.text.strip()
                        if not name or len(name) > MAX_DISPLAY_NAME:
                            raise Refused(400, "displayname empty or too long")
                        yield self.home.set_display_name(node, name)
                        done.append(text_element("d:displayname", name))
                    else:
                        refused.append(element(label))
        if not done and not refused:
            raise Refused(400, "propertyupdate sets nothing")
        publishing = self.notifier.publishing(node)
        if publishing is not None:
            yield publishing
        body = documents.multistatus(self.principals.url_of(node), [(done, documents.OK_STATUS), (refused, "HTTP/1.1 403 Forbidden")])
        return response(207, body, XML)

    def _set_state(self, node: str, item) -> tuple:
        leased = item.find("leased-value")
        view_id = item.child_text("view-id")
        view_id = view_id.strip() if view_id else None
        if leased is not None:
            value = documents.status_of(leased.find("value"))
            default_element = leased.find("default-value")
            default = documents.status_of(default_element) if default_element is not None else "offline"
            timeout_text = leased.child_text("timeout")
            requested = _number(timeout_text)
            if timeout_text is not None and requested is None:
                raise Refused(400, "timeout is not a number of seconds")
            timeout = grant_lease(requested)
        else:
            value = documents.status_of(item)
            default, timeout = "offline", grant_lease(None)
        view = self.presence.set_state(node, view_id, value, default, timeout)
        return documents.leased_state(view)

    # The outgoing side (L{Notifier}), as the home and federation ask it

    def start(self):
        return self.home.start()

    def track(self, d: Deferred) -> None:
        self.notifier.track(d)

    def contact_changed(self, handle: str, state: Optional[str]) -> None:
        self.notifier.contact_changed(handle, state)

    def has_local_node(self, handle: str) -> bool:
        return self.notifier.has_local_node(handle)

    def message_from_core(self, recipient: str, sender: str, sender_name: str, mime: str) -> None:
        self.notifier.message_from_core(recipient, sender, sender_name, mime)

    # NOTIFY

    @inlineCallbacks
    def do_NOTIFY(self, request: Request, caller: Caller, node: str, account):
        hop_text = request.headers.get("RVP-Hop-Count")
        hop = int(_number(hop_text)) if _number(hop_text) is not None else 1
        if hop_text is not None and _number(hop_text) is None:
            raise Refused(400, "RVP-Hop-Count is not a number")
        if hop >= MAX_HOP_COUNT:
            raise Refused(400, "hop count exceeded")
        root = xmldoc.parse(request.body)
        if root.name != "notification":
            raise Refused(400, "expected a notification")
        sender_principal = self._caller_principal(caller, request)
        message = root.find("message")
        if message is not None:
            result = yield self._notify_message(request, caller, node, root, message, sender_principal, hop)
            return result
        update = root.find("propnotification")
        if update is not None:
            origin = update.path("notification-from", "contact", "href")
            if origin is None or not self._may_speak_for(caller, origin.text.strip()):
                raise Refused(403, "notification-from is not the sender")
            headers = {"RVP-From-Principal": self.principals.server_name}
            if request.headers.get("Subscription-Id"):
                headers["Subscription-Id"] = request.headers.get("Subscription-Id")
            body = document(xmldoc.to_node(root))
            # A later state from the same subscription replaces a waiting one.
            key = ("relayed", origin.text.strip().lower(), request.headers.get("Subscription-Id") or "")
            self.notifier.track(self.notifier.to_local_nodes(node, body, headers, hop=hop + 1, ack="SingleHop", coalesce_key=key))
            contact = self.principals.handle_of_url(origin.text.strip())
            if caller.peer is not None and contact is not None:
                self.home.presence_from_peer(node, contact, documents.state_in(update))
            return response(200)
        raise Refused(400, "notification holds neither message nor propnotification")

    def _may_speak_for(self, caller: Caller, url: str) -> bool:
        if caller.handle is not None:
            return self.principals.handle_of_url(url) == caller.handle
        return self._of_peer(caller, url)

    @inlineCallbacks
    def _notify_message(self, request, caller, node, root, message, sender_principal, hop):
        origin = message.path("notification-from", "contact", "href")
        if origin is None or not self._may_speak_for(caller, origin.text.strip()):
            raise Refused(403, "notification-from is not the sender")
        mime = message.path("msgbody", "mime-data")
        if mime is None:
            raise Refused(400, "message without msgbody/mime-data")
        sender = self._viewer_of(origin.text.strip())
        ack = (request.headers.get("RVP-Ack-Type") or "DeepOr").strip()
        if ack.lower() not in ("singlehop", "deepor", "deepand"):
            raise Refused(400, "unknown RVP-Ack-Type")
        privacy = yield self.home.privacy(node)
        if not privacy.allows(sender):
            # Refused like an offline recipient: the sender learns nothing
            # it could not see from presence.
            raise Refused(412, "recipient not available")
        recipients = tuple(
            href.text.strip()
            for to in message.find_all("notification-to")
            for href in [to.path("contact", "href")]
            if href is not None
        )
        instant = InstantMessage(origin.text.strip(), recipients, mime.text, documents.session_id(mime.text))
        body = document(xmldoc.to_node(root))
        headers = {"RVP-From-Principal": sender_principal}
        order = ("messages", origin.text.strip().lower())
        deliveries = [self.notifier.to_local_nodes(node, body, headers, hop=hop + 1, ack=ack, order_key=order)]
        deliveries.append(self.home.deliver_message(node, instant).addCallback(lambda ok: [200 if ok else None]))
        if ack.lower() == "singlehop":
            reachable = self.subscriptions.of_node(node, LOGIN)
            other = yield self.home.other_presence(node)
            if not reachable and (other is None or other in HIDDEN_STATES):
                raise Refused(412, "recipient not logged in")
            for d in deliveries:
                self.notifier.track(d)
            return response(200)
        results = yield DeferredList(deliveries, consumeErrors=True)
        statuses = [status for ok, values in results if ok for status in values]
        delivered = [s for s in statuses if s is not None and 200 <= s < 300]
        failed = [s for s in statuses if s is not None and not 200 <= s < 300]
        if ack.lower() == "deepand":
            if statuses and not failed and None not in statuses:
                return response(200)
        elif delivered:
            return response(200)
        if failed:
            return _error(failed[0] if 400 <= failed[0] < 600 else 500, "not delivered")
        return _error(412, "recipient not logged in")

    # ACL

    @inlineCallbacks
    def do_ACL(self, request: Request, caller: Caller, node: str, account):
        if caller.handle != node:
            raise Refused(403, "only the principal reads or writes its ACL")
        if request.body.strip():
            root = xmldoc.parse(request.body)
            if root.name != "rvpacl":
                raise Refused(400, "expected an rvpacl")
            privacy = documents.privacy_from_acl(self.principals, node, root)
            yield self.home.set_privacy(node, privacy)
            yield self.notifier.refresh_watchers(node)
            return response(200)
        privacy = yield self.home.privacy(node)
        return response(200, documents.acl_document(self.principals, node, privacy), XML)


FORWARDED_HEADERS = ("Notification-Type", "Call-Back", "Subscription-Lifetime", "Subscription-Id", "Depth", "RVP-Ack-Type", "Content-Type")
RELAYED_HEADERS = ("Subscription-Id", "Subscription-Lifetime", "Content-Type")
