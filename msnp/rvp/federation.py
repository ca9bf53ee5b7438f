"""
Users of federated RVP domains on this server's lists, through the core's
federation hooks (shared with the SIP edge): the peers' domains are the
contact-list service's C{federated_domains}, and the directory routes
events for their handles here (C{route_domain}).

* A local user (of the RVP domain, MSN or RVP) puts ``zed@other.org`` on its
  forward list (the core tells zed's route a L{ReverseListChanged}): this
  server subscribes to zed's principal at other.org's server on the user's
  behalf (server to server, Call-Back = the user's principal URL), renews
  before expiry, and turns each propnotification into a core
  L{PresenceChanged} for that user (NLN/FLN for MSN clients).  zed's
  presence record here is readable by the local users whose subscription
  sees zed online, so MSN clients list zed at login and can call zed: the
  ring reaches zed's route, zed joins the conversation and each message
  goes to zed as a server-to-server NOTIFY.
* A user of a federated domain subscribes to one of ours: it goes on the
  reverse list (the owner gets the usual notice), so the core's fan-out of
  the owner's presence reaches zed's route and is NOTIFYed to its Call-Back.

Subscriptions to other servers are soft state: made again at start for
every forward-list entry of a federated domain.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import events, status as core_status
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.presence import PresenceRecord
from msnp.core.privacy import BLOCK_ALL, PrivacyView
from msnp.rvp import xmldoc
from msnp.rvp.documents import state_name
from msnp.rvp.state import MAX_SUBSCRIPTION_LIFETIME, PROPCHANGE

log = Logger()

RETRY_DELAY = 60.0


def renewal_delay(granted: float) -> float:
    """
    Renew well before expiry: five minutes early (as the Exchange client),
    or at 90% for short lifetimes.
    """
    return granted - 300 if granted > 600 else granted * 0.9


def displayname_in(element) -> Optional[str]:
    for node in xmldoc.walk(element):
        if node.name == "displayname":
            return node.text.strip() or None
    return None


@implementer(IEndpoint)
class PeerUser:
    """
    A user of a federated domain as the directory's route for its domain
    hands it events.
    """

    def __init__(self, federation: "Federation", handle: str):
        self.federation = federation
        self.handle = handle
        self.endpoint_id = federation.endpoint_id(handle)

    def endpoint_record(self, handle: str, since: float) -> EndpointRecord:
        return EndpointRecord(self.endpoint_id, handle, self.federation.directory.node, "rvp-peer", "RVP", "", "", since)

    def receive(self, event) -> None:
        try:
            self.federation.event_for(self.handle, event)
        except Exception:
            log.failure("RVP federation failed on {event} for {handle}", handle=self.handle, event=event)


@attrs.define
class Watch:
    owner: str
    contact: str
    url: str
    sub_id: Optional[str] = None
    timer: object = None
    # what the owner was last told ("unknown" before the first answer)
    told: object = "unknown"


class Federation:
    """
    Follows federated contacts for local users and stands in for federated
    watchers; installed as the contact-list service's C{federation}.
    """

    def __init__(self, home, frontend, messenger, clock):
        self.home = home
        self.frontend = frontend
        self.messenger = messenger
        self.directory = messenger.directory
        self.clock = clock
        self.domains: list[str] = []
        self._watches: dict[tuple[str, str], Watch] = {}
        # federated contact -> (name, {local owner: status it sees})
        self._seen: dict[str, tuple[str, dict[str, str]]] = {}
        self._stopped = False

    def endpoint_id(self, handle: str) -> str:
        return f"{self.directory.node}/rvp/{handle}"

    def is_federated(self, handle: str) -> bool:
        return handle.rpartition("@")[2].lower() in self.domains

    def state_of_status(self, status: Optional[str]) -> Optional[str]:
        from msnp.rvp.bridge import STATE_OF_STATUS

        return STATE_OF_STATUS.get(status)

    # Start and stop

    @inlineCallbacks
    def start(self):
        """
        Serve the peers' domains: accept their users on lists, route their
        events here, and follow every one already on a forward list.
        """
        principals = self.frontend.principals
        self.domains = sorted(d for d in principals.peers if d != principals.domain)
        self.messenger.lists.federated_domains.update(self.domains)
        for domain in self.domains:
            self.directory.route_domain(domain, self._route)
        entries = yield self.messenger.store.entries_in_domains(self.domains)
        for owner, lst, contact, _ in entries:
            if lst == "FL" and principals.is_local_handle(owner):
                self.frontend.track(self.watch(owner, contact))

    def _route(self, handle: str) -> Optional[PeerUser]:
        return None if self._stopped else PeerUser(self, handle)

    def event_for(self, handle: str, event) -> None:
        """
        What the core tells C{handle}, a user of a federated domain.
        """
        kind = type(event)
        if kind is events.PresenceChanged:
            # A local user zed watches changed: NOTIFY zed's Call-Back.
            self.home.contact_changed(event.handle, self.state_of_status(event.status))
        elif kind is events.ReverseListChanged:
            # A local user put zed on (or took zed off) its forward list.
            if event.added:
                self.frontend.track(self.watch(event.watcher, handle))
            else:
                self.frontend.track(self.unwatch(event.watcher, handle))
        elif kind is events.Ring:
            name = self._seen.get(handle, (handle, {}))[0]
            self.clock.callLater(0, self.home.answer_ring, handle, name, event)

    def stop(self, grace: float = 2.0) -> Deferred:
        """
        Stop following: every subscription made elsewhere is cancelled
        (UNSUBSCRIBE, as a client does on exit), waiting at most C{grace}
        seconds for the answers.
        """
        self._stopped = True
        for domain in self.domains:
            self.directory.unroute_domain(domain)
        self.messenger.lists.federated_domains.difference_update(self.domains)
        unsubscribing = []
        for watch in self._watches.values():
            if watch.timer is not None and watch.timer.active():
                watch.timer.cancel()
            watch.timer = None
            if watch.sub_id is not None:
                headers = dict(self._headers(watch.owner), **{"Subscription-Id": watch.sub_id})
                d = self.frontend.outbound.request("UNSUBSCRIBE", watch.url, headers)
                d.addErrback(lambda failure: None)
                unsubscribing.append(d)
        self._watches.clear()
        for contact in list(self._seen):
            self.directory.withdraw_presence(contact, self.endpoint_id(contact))
        self._seen.clear()
        if not unsubscribing:
            return succeed(None)
        done = DeferredList(unsubscribing)
        timer = self.clock.callLater(grace, done.cancel)

        def finished(result):
            if timer.active():
                timer.cancel()
            return None

        return done.addBoth(finished)

    # Following a federated contact for a local user

    def _headers(self, owner: str) -> dict:
        return {"RVP-From-Principal": self.frontend.principals.url_of(owner), "RVP-Hop-Count": "2"}

    @inlineCallbacks
    def watch(self, owner: str, contact: str):
        if (owner, contact) in self._watches or self._stopped or not self.frontend.principals.is_local_handle(owner):
            return
        watch = Watch(owner, contact, self.frontend.principals.url_of(contact))
        self._watches[(owner, contact)] = watch
        yield self._subscribe(watch)

    @inlineCallbacks
    def _subscribe(self, watch: Watch):
        headers = dict(
            self._headers(watch.owner),
            **{
                "Notification-Type": PROPCHANGE,
                "Call-Back": self.frontend.principals.url_of(watch.owner),
                "Subscription-Lifetime": str(int(MAX_SUBSCRIPTION_LIFETIME)),
            },
        )
        try:
            reply = yield self.frontend.outbound.request("SUBSCRIBE", watch.url, headers, want_body=True)
        except Exception as error:
            log.info("subscribing {owner} to {contact} failed: {error}", owner=watch.owner, contact=watch.contact, error=error)
            self._schedule(watch, RETRY_DELAY)
            return
        if self._watches.get((watch.owner, watch.contact)) is not watch:
            return
        if reply.status != 207:
            log.info("{contact}'s server refused {owner}'s subscription: {status}", contact=watch.contact, owner=watch.owner, status=reply.status)
            self._schedule(watch, RETRY_DELAY)
            return
        watch.sub_id = reply.headers.get("subscription-id")
        granted = _lifetime(reply.headers.get("subscription-lifetime"))
        self._schedule(watch, renewal_delay(granted))
        try:
            root = xmldoc.parse(reply.body)
        except xmldoc.XmlError:
            return
        self.update(watch.owner, watch.contact, state_name(root), displayname_in(root))

    def _schedule(self, watch: Watch, delay: float) -> None:
        if self._stopped:
            return
        if watch.timer is not None and watch.timer.active():
            watch.timer.cancel()
        watch.timer = self.clock.callLater(delay, self._renew, watch)

    def _renew(self, watch: Watch) -> None:
        watch.timer = None
        self.frontend.track(self._renewing(watch))

    @inlineCallbacks
    def _renewing(self, watch: Watch):
        if watch.sub_id is None:
            yield self._subscribe(watch)
            return
        headers = dict(
            self._headers(watch.owner),
            **{"Subscription-Id": watch.sub_id, "Subscription-Lifetime": str(int(MAX_SUBSCRIPTION_LIFETIME))},
        )
        try:
            reply = yield self.frontend.outbound.request("SUBSCRIBE", watch.url, headers)
        except Exception:
            self._schedule(watch, RETRY_DELAY)
            return
        if 200 <= reply.status < 300:
            self._schedule(watch, renewal_delay(_lifetime(reply.headers.get("subscription-lifetime"))))
        else:
            # Lost there (a restart): subscribe afresh.
            watch.sub_id = None
            yield self._subscribe(watch)

    @inlineCallbacks
    def unwatch(self, owner: str, contact: str):
        watch = self._watches.pop((owner, contact), None)
        if watch is None:
            return
        if watch.timer is not None and watch.timer.active():
            watch.timer.cancel()
        self._seen_by(owner, contact, None, None)
        if watch.sub_id is not None:
            headers = dict(self._headers(owner), **{"Subscription-Id": watch.sub_id})
            try:
                yield self.frontend.outbound.request("UNSUBSCRIBE", watch.url, headers)
            except Exception as error:
                log.info("unsubscribing {owner} from {contact}: {error}", owner=owner, contact=contact, error=error)

    def update(self, owner: str, contact: str, state: Optional[str], name: Optional[str] = None) -> None:
        """
        C{contact}'s server says C{owner} sees it in C{state}.
        """
        from msnp.rvp.bridge import STATUS_OF_STATE

        status = STATUS_OF_STATE.get(state or "offline")
        if status == core_status.HIDDEN:
            status = None
        watch = self._watches.get((owner, contact))
        if watch is None:
            return
        name = self._seen_by(owner, contact, status, name)
        if watch.told == (status, name):
            # A second subscription (one left there by our restart) says
            # the same again: the owner has it already.
            return
        watch.told = (status, name)
        self.directory.deliver([owner], events.PresenceChanged(contact, status, name))

    def _seen_by(self, owner: str, contact: str, status: Optional[str], name: Optional[str]) -> str:
        """
        Record what C{owner} sees of C{contact} and publish C{contact}'s
        presence record, readable by the owners who see it online (each
        subscription says what its owner may see).  Returns the name.
        """
        known_name, seen = self._seen.get(contact, (contact, {}))
        name = name or known_name
        if status is None:
            seen.pop(owner, None)
        else:
            seen[owner] = status
        endpoint_id = self.endpoint_id(contact)
        if not seen:
            self._seen.pop(contact, None)
            self.directory.withdraw_presence(contact, endpoint_id)
            return name
        self._seen[contact] = (name, seen)
        # One status for all: the latest told; who may read it is per owner.
        shown = status if status is not None else next(iter(seen.values()))
        privacy = PrivacyView(BLOCK_ALL, frozenset(seen), frozenset())
        self.directory.publish_presence(PresenceRecord(contact, endpoint_id, shown, name, privacy=privacy))
        return name

    def watching(self, owner: str, contact: str) -> bool:
        return (owner, contact) in self._watches

    # A federated user subscribing to one of ours

    def watcher_subscribed(self, owner: str, watcher: str) -> Deferred:
        """
        C{watcher} (of a federated domain) subscribed to C{owner}: it goes
        on the owner's reverse list, so the owner's presence changes reach
        its route.
        """
        d = self.messenger.lists.federated_watcher_added(owner, watcher, watcher)

        def refused(failure):
            log.info("{watcher} not put on {owner}'s reverse list: {error}", watcher=watcher, owner=owner, error=failure.getErrorMessage())

        return d.addErrback(refused)


def _lifetime(text: Optional[str]) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return MAX_SUBSCRIPTION_LIFETIME
    return value if value > 0 else MAX_SUBSCRIPTION_LIFETIME
