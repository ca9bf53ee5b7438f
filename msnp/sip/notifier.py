"""
The presence notifier (RFC 6665, RFC 3856): federated watchers subscribe
to local users.  Accepted subscriptions get a NOTIFY at once and on every
change (at most one per C{min_interval} per subscription, the latest state
winning), are refreshed or expire, and end with a ``terminated`` NOTIFY on
unsubscribe, expiry, or when the user's privacy no longer lets the watcher
see them.  Until the user authorises a watcher the answer is 403 with the
OCS ``ms-diagnostics`` reason (presence filtered); a watcher refused lately
that the user then allows is prompted to subscribe again (through
C{on_authorised}).
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger

from msnp.sip import presence
from msnp.sip.dialog import Dialog
from msnp.sip.grammar import GrammarError, is_decimal, parse_event
from msnp.sip.link import ALLOWED, IMessengerLink
from msnp.sip.message import Request, Response
from msnp.sip.transaction import Hop, ServerTransaction, new_tag

log = Logger()

DEFAULT_EXPIRES = 3600  # RFC 3856 §6.4
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
# How long a refused watcher is remembered: when the user allows them
# within this time, the edge asks them to try again (see
# L{PresenceNotifier.on_authorised}).  One default subscription's length.
REFUSAL_MEMORY = 3600.0
# The answer OCS gives while a contact's presence is filtered (sip.md §9).
FILTERED_DIAGNOSTICS = '1008;reason="SIPPROXY_E_EPROUTING_MSG_INT_GET_RICH_PRESENCE_FILTERED";HRESULT="C3E93D80"'


def parse_expires(request: Request) -> Optional[int]:
    """
    The Expires a request asks for (None if absent); ValueError if bad.
    """
    value = request.headers.get("Expires")
    if value is None:
        return None
    value = value.strip()
    if not is_decimal(value) or len(value) > 10:
        raise ValueError("bad Expires")
    return int(value)


class Subscription:
    """
    One federated watcher's subscription to one local user.
    """

    def __init__(self, notifier: "PresenceNotifier", dialog: Dialog, owner: str, watcher: str, content_type: str, source: Hop):
        self.notifier = notifier
        self.dialog = dialog
        self.owner = owner
        self.watcher = watcher
        self.content_type = content_type
        self.source = source
        self.status: Optional[str] = None
        self.sent_status: object = ()  # nothing sent yet
        self.last_sent = -1e18
        self.expires_at = 0.0
        self._expiry = None
        self._pending = None
        self.ended = False

    @property
    def peer_domain(self) -> str:
        return self.watcher.rpartition("@")[2]

    def set_expiry(self, seconds: int) -> None:
        clock = self.notifier.agent.clock
        self.expires_at = clock.seconds() + seconds
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = clock.callLater(seconds, self.notifier._expired, self)

    def remaining(self) -> int:
        return max(0, int(round(self.expires_at - self.notifier.agent.clock.seconds())))

    def cancel_timers(self) -> None:
        for call in (self._expiry, self._pending):
            if call is not None and call.active():
                call.cancel()
        self._expiry = self._pending = None

    # In-dialog requests (the dialog table routes them here)

    def request_in_dialog(self, request: Request, transaction: ServerTransaction, source: Hop):
        return self.notifier._in_dialog(self, request, transaction, source)

    def ack_received(self, request: Request) -> None:
        pass


class PresenceNotifier:
    def __init__(self, agent, link: IMessengerLink, min_interval: float = 5.0, max_per_peer: int = 10000):
        self.agent = agent
        self.link = link
        self.min_interval = min_interval
        self.max_per_peer = max_per_peer
        self.subscriptions: dict[tuple, Subscription] = {}
        self.by_owner: dict[str, set[Subscription]] = {}
        # Told (watcher, owner) on every SUBSCRIBE that reached a user
        # (new or refreshing).
        self.on_subscribed = None
        # Told (owner, watcher) when a watcher refused lately is now
        # allowed: a 403 cannot be taken back in SIP, so the edge prompts
        # the watcher's side to subscribe again.
        self.on_authorised = None
        # owner -> {watcher refused lately: when that is forgotten}
        self.refused: dict[str, dict[str, float]] = {}
        self._refused_count = 0
        # Counts re-reads (presence_changed), so that a SUBSCRIBE decided
        # on a view read before one is read again.
        self._changes = 0
        agent.handlers["SUBSCRIBE"] = self.subscribe_received

    def _per_peer(self, domain: str) -> int:
        return sum(1 for s in self.subscriptions.values() if s.peer_domain == domain)

    def _check_request(self, request: Request, transaction: ServerTransaction):
        """
        Event, Expires and Accept of a SUBSCRIBE: the refusal to send, or
        (expires, content type).
        """
        agent = self.agent
        event = request.headers.get("Event")
        try:
            package = parse_event(event)[0] if event else None
        except GrammarError:
            package = None
        if package != "presence":
            agent.respond(transaction, 489, headers=[("Allow-Events", "presence")])
            return None
        try:
            expires = parse_expires(request)
        except ValueError:
            agent.respond(transaction, 400, "Bad Expires")
            return None
        expires = DEFAULT_EXPIRES if expires is None else expires
        if 0 < expires < MIN_EXPIRES:
            agent.respond(transaction, 423, headers=[("Min-Expires", str(MIN_EXPIRES))])
            return None
        expires = min(expires, MAX_EXPIRES)
        content_type = presence.choose_type(request.headers.get_list("Accept"))
        if content_type is None:
            agent.respond(transaction, 406, headers=[("Accept", ", ".join(presence.SUPPORTED_TYPES))])
            return None
        if not request.headers.get_list("Contact"):
            agent.respond(transaction, 400, "Missing Contact")
            return None
        return expires, content_type

    @defer.inlineCallbacks
    def subscribe_received(self, request: Request, transaction: ServerTransaction, source: Hop):
        agent = self.agent
        checked = self._check_request(request, transaction)
        if checked is None:
            return
        expires, content_type = checked
        owner = URI_aor(request.uri)
        watcher = request.from_.uri.address_of_record
        exists = yield self.link.account_exists(owner)
        if not exists:
            agent.respond(transaction, 404)
            return
        if self._per_peer(request.from_.uri.host) >= self.max_per_peer:
            agent.respond(transaction, 503, "Too many subscriptions", headers=[("Retry-After", "600")])
            return
        # The watcher is on the user's reverse list whatever the answer:
        # that is how the user learns someone wants to see them.
        yield self.link.watcher_subscribed(owner, watcher, request.from_.display or "")
        if self.on_subscribed is not None:
            self.on_subscribed(watcher, owner)
        view, changes = yield self._current_view(owner, watcher)
        if view.access != ALLOWED:
            log.info("SIP SUBSCRIBE from {watcher} to {owner}: {access}", watcher=watcher, owner=owner, access=view.access)
            agent.respond(transaction, 403, headers=[("ms-diagnostics", FILTERED_DIAGNOSTICS)])
            self._remember_refusal(owner, watcher)
            if self._changes != changes:
                # The user's privacy may have changed while this was decided.
                self._recheck_refused(owner, watcher)
            return
        self._forget_refusal(owner, watcher)
        tag = new_tag()
        dialog = Dialog.as_uas(request, tag, source)
        subscription = Subscription(self, dialog, owner, watcher, content_type, source)
        subscription.status = view.status
        agent.respond(
            transaction, 200, to_tag=tag, headers=[("Expires", str(expires)), ("Contact", agent.contact(owner.partition("@")[0], source))]
        )
        if expires == 0:
            # A one-time fetch (RFC 6665 §4.4.3): the state, then done.
            self._send_notify(subscription, terminated="timeout")
            return
        self._add(subscription)
        subscription.set_expiry(expires)
        self._send_notify(subscription)
        if self._changes != changes:
            # Privacy or presence may have changed while this was decided: read
            # again, as that change's re-read did not see this one.
            self._reread(subscription)

    @defer.inlineCallbacks
    def _current_view(self, owner: str, watcher: str):
        """
        What C{watcher} may see of C{owner}, read again (a few times) when
        a re-read of the user's watchers happened during the read, so
        that no answer rests on privacy already changed; with the count
        of re-reads it was taken at.
        """
        for _ in range(3):
            changes = self._changes
            view = yield self.link.presence_for(owner, watcher)
            if self._changes == changes:
                break
        return view, changes

    def _add(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.dialog.id] = subscription
        self.by_owner.setdefault(subscription.owner, set()).add(subscription)
        self.agent.dialogs.add(subscription.dialog, subscription)

    def _remove(self, subscription: Subscription) -> None:
        subscription.ended = True
        subscription.cancel_timers()
        self.subscriptions.pop(subscription.dialog.id, None)
        owned = self.by_owner.get(subscription.owner)
        if owned is not None:
            owned.discard(subscription)
            if not owned:
                del self.by_owner[subscription.owner]
        self.agent.dialogs.remove(subscription.dialog)

    @defer.inlineCallbacks
    def _in_dialog(self, subscription: Subscription, request: Request, transaction: ServerTransaction, source: Hop):
        agent = self.agent
        if not subscription.dialog.check_remote_cseq(request):
            agent.respond(transaction, 500, "CSeq out of order")
            return
        if request.method != "SUBSCRIBE":
            agent.respond(transaction, 405 if request.method != "BYE" else 481, headers=[("Allow", "SUBSCRIBE")])
            return
        checked = self._check_request(request, transaction)
        if checked is None:
            return
        expires, content_type = checked
        subscription.dialog.update_target(request)
        if expires == 0:
            agent.respond(transaction, 200, to_tag=subscription.dialog.local.tag, headers=[("Expires", "0")])
            self._remove(subscription)
            self._send_notify(subscription, terminated="timeout")
            return
        if self.on_subscribed is not None:
            self.on_subscribed(subscription.watcher, subscription.owner)
        view = yield self.link.presence_for(subscription.owner, subscription.watcher)
        if subscription.ended:
            agent.respond(transaction, 481)
            return
        if view.access != ALLOWED:
            agent.respond(transaction, 403, headers=[("ms-diagnostics", FILTERED_DIAGNOSTICS)])
            self._reject(subscription)
            return
        subscription.content_type = content_type
        subscription.status = view.status
        agent.respond(
            transaction,
            200,
            to_tag=subscription.dialog.local.tag,
            headers=[("Expires", str(expires)), ("Contact", agent.contact(subscription.owner.partition("@")[0], source))],
        )
        subscription.set_expiry(expires)
        # Every refresh is answered with the full state (RFC 6665 §4.2.1.2).
        subscription.sent_status = ()
        self._send_notify(subscription)

    def _expired(self, subscription: Subscription) -> None:
        subscription._expiry = None
        if subscription.ended:
            return
        self._remove(subscription)
        self._send_notify(subscription, terminated="timeout")

    # Changes of the local user

    @defer.inlineCallbacks
    def presence_changed(self, owner: str):
        """
        Re-read what each watcher of C{owner} may see: NOTIFY the new
        state, or end the subscription of a watcher no longer allowed;
        and prompt the watchers refused lately that are now allowed.
        """
        self._changes += 1
        for subscription in list(self.by_owner.get(owner, ())):
            yield self._reread(subscription)
        for watcher in list(self._refused_of(owner)):
            yield self._recheck_refused(owner, watcher)

    @defer.inlineCallbacks
    def _reread(self, subscription: Subscription):
        view = yield self.link.presence_for(subscription.owner, subscription.watcher)
        if subscription.ended:
            return
        if view.access != ALLOWED:
            log.info("SIP subscription of {watcher} to {owner} ended: {access}", watcher=subscription.watcher, owner=subscription.owner, access=view.access)
            self._reject(subscription)
            return
        subscription.status = view.status
        self._schedule(subscription)

    def _reject(self, subscription: Subscription) -> None:
        """
        End a subscription the user's privacy no longer allows (RFC 6665
        "rejected", no state), remembering the watcher as refused.
        """
        self._remove(subscription)
        self._send_notify(subscription, terminated="rejected")
        self._remember_refusal(subscription.owner, subscription.watcher)

    # Watchers refused lately

    def _refused_of(self, owner: str) -> dict[str, float]:
        """
        C{owner}'s watchers refused lately (forgetting the stale ones).
        """
        refused = self.refused.get(owner)
        if not refused:
            return {}
        now = self.agent.clock.seconds()
        for watcher in [w for w, until in refused.items() if until <= now]:
            self._forget_refusal(owner, watcher)
        return self.refused.get(owner, {})

    def _remember_refusal(self, owner: str, watcher: str) -> None:
        refused = self.refused.setdefault(owner, {})
        if watcher not in refused:
            # Bounded like the subscriptions: when full, stale entries are
            # swept; if still full this one is not remembered (the watcher
            # then retries on its own schedule).
            if self._refused_count >= self.max_per_peer:
                for other in list(self.refused):
                    self._refused_of(other)
                if self._refused_count >= self.max_per_peer:
                    if not refused:
                        del self.refused[owner]
                    return
            self._refused_count += 1
        refused[watcher] = self.agent.clock.seconds() + REFUSAL_MEMORY

    def _forget_refusal(self, owner: str, watcher: str) -> None:
        refused = self.refused.get(owner)
        if refused is None or watcher not in refused:
            return
        del refused[watcher]
        self._refused_count -= 1
        if not refused:
            del self.refused[owner]

    @defer.inlineCallbacks
    def _recheck_refused(self, owner: str, watcher: str):
        view = yield self.link.presence_for(owner, watcher)
        if view.access != ALLOWED or watcher not in self.refused.get(owner, ()):
            return
        self._forget_refusal(owner, watcher)
        log.info("SIP watcher {watcher} refused before is now allowed by {owner}", watcher=watcher, owner=owner)
        if self.on_authorised is not None:
            self.on_authorised(owner, watcher)

    def _schedule(self, subscription: Subscription) -> None:
        """
        Send the current state now, or when C{min_interval} has passed
        since the last NOTIFY (RFC 3856 §6.4: coalesce flapping states).
        """
        if subscription.status == subscription.sent_status or subscription._pending is not None:
            return
        clock = self.agent.clock
        wait = subscription.last_sent + self.min_interval - clock.seconds()
        if wait <= 0:
            self._send_notify(subscription)
            return

        def due():
            subscription._pending = None
            if not subscription.ended and subscription.status != subscription.sent_status:
                self._send_notify(subscription)

        subscription._pending = clock.callLater(wait, due)

    def _send_notify(self, subscription: Subscription, terminated: Optional[str] = None) -> defer.Deferred:
        agent = self.agent
        dialog = subscription.dialog
        request = dialog.request("NOTIFY")
        request.headers.add("Event", "presence")
        if terminated:
            request.headers.add("Subscription-State", f"terminated;reason={terminated}")
        else:
            request.headers.add("Subscription-State", f"active;expires={subscription.remaining()}")
        request.headers.add("Contact", agent.contact(subscription.owner.partition("@")[0], subscription.source))
        status = subscription.status
        if terminated != "rejected":
            request.headers.add("Content-Type", subscription.content_type)
            request.body = presence.render(subscription.content_type, f"sip:{subscription.owner}", status)
        subscription.sent_status = status
        subscription.last_sent = agent.clock.seconds()
        hop = dialog.next_hop(subscription.source.transport) or subscription.source
        if subscription.source.reliable and not getattr(subscription.source.connection, "closed", True):
            hop = subscription.source
        d = agent.send(request, hop)

        def answered(response: Response):
            if response is not None and response.status >= 300 and not subscription.ended:
                # 481, 408 or any refusal ends the subscription (RFC 6665 §4.2.2).
                log.info("SIP NOTIFY to {watcher} answered {status}: subscription ended", watcher=subscription.watcher, status=response.status)
                self._remove(subscription)

        return d.addCallback(answered)

    def close(self) -> list[defer.Deferred]:
        """
        Shutdown: tell every watcher the subscription ends (deactivated:
        subscribe again later).
        """
        sent = []
        self.refused.clear()
        self._refused_count = 0
        for subscription in list(self.subscriptions.values()):
            self._remove(subscription)
            sent.append(self._send_notify(subscription, terminated="deactivated"))
        return sent


def URI_aor(uri_text: str) -> str:
    from msnp.sip.grammar import URI

    return URI.parse(uri_text).address_of_record
