"""
The presence watcher (RFC 6665, RFC 3856): local users' subscriptions to
federated contacts.  Each (local user, contact) pair has one subscription,
refreshed before it expires; NOTIFYs become MSN states for the user
(including a NOTIFY that overtakes the 2xx).  A 403, a rejection or a
failure shows the contact offline, is logged, and is tried again later —
at once when that contact subscribes to the user or refreshes its
subscription (which is how a newly authorised contact shows up without
waiting), and, the other way round, a contact the user newly authorised
is prompted by subscribing to it at once.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger

from msnp.sip import presence
from msnp.sip.dialog import Dialog
from msnp.sip.grammar import GrammarError, is_decimal, parse_params
from msnp.sip.link import IMessengerLink
from msnp.sip.message import Request, Response
from msnp.sip.transaction import Hop, ServerTransaction

log = Logger()

REQUESTED_EXPIRES = 3600
RETRY_INTERVAL = 300.0  # after a refusal or a failure
ACCEPT = f"{presence.PIDF}, {presence.XPIDF}"


class Watch:
    """
    One local user's subscription to one federated contact.
    """

    def __init__(self, watcher: "PresenceWatcher", owner: str, contact: str):
        self.watcher = watcher
        self.owner = owner
        self.contact = contact
        self.state = "idle"  # subscribing, active, refused, ended
        self.request: Optional[Request] = None
        self.dialog: Optional[Dialog] = None
        self.hop: Optional[Hop] = None
        self.status: Optional[str] = None
        self.expires = 0
        self._timer = None
        self.stopped = False
        # The contact subscribed to us while our SUBSCRIBE was on its way:
        # a refusal that answers it may predate their consent.
        self.contact_subscribed = False

    def schedule(self, delay: float, callback) -> None:
        self.cancel_timer()
        self._timer = self.watcher.agent.clock.callLater(delay, self._fire, callback)

    def _fire(self, callback) -> None:
        self._timer = None
        callback()

    def cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    @property
    def key(self):
        return (self.owner, self.contact)

    # Dialog-table interface

    def request_in_dialog(self, request: Request, transaction: ServerTransaction, source: Hop):
        return self.watcher._in_dialog(self, request, transaction, source)

    def ack_received(self, request: Request) -> None:
        pass


class PresenceWatcher:
    def __init__(self, agent, link: IMessengerLink, expires: int = REQUESTED_EXPIRES, retry_interval: float = RETRY_INTERVAL):
        self.agent = agent
        self.link = link
        self.expires = expires
        self.retry_interval = retry_interval
        self.watches: dict[tuple, Watch] = {}
        # (Call-ID, our tag) of SUBSCRIBEs still waiting for their 2xx
        self._unanswered: dict[tuple, Watch] = {}
        agent.orphan_handlers.append(self._early_notify)

    def watch(self, owner: str, contact: str) -> Watch:
        existing = self.watches.get((owner, contact))
        if existing is not None:
            return existing
        watch = Watch(self, owner, contact)
        self.watches[watch.key] = watch
        self._subscribe(watch)
        return watch

    def unwatch(self, owner: str, contact: str) -> Optional[defer.Deferred]:
        watch = self.watches.pop((owner, contact), None)
        if watch is None:
            return None
        watch.stopped = True
        watch.cancel_timer()
        self._forget_unanswered(watch)
        if watch.dialog is not None and watch.state == "active":
            request = self._in_dialog_subscribe(watch, 0)
            self.agent.dialogs.remove(watch.dialog)
            return self.agent.send(request, watch.dialog.next_hop(watch.hop.transport) or watch.hop)
        if watch.dialog is not None:
            self.agent.dialogs.remove(watch.dialog)
        return None

    def contact_subscribed(self, contact: str, owner: str) -> None:
        """
        C{contact} subscribed to local C{owner}: if C{owner}'s own
        subscription to C{contact} was refused, try it again now.
        """
        watch = self.watches.get((owner, contact))
        if watch is None:
            return
        if watch.state == "refused":
            watch.cancel_timer()
            self._subscribe(watch)
        elif watch.state == "subscribing":
            # Their SUBSCRIBE and the answer to ours travel on different
            # connections; if ours is refused, ask again at once.
            watch.contact_subscribed = True

    def contact_authorised(self, owner: str, contact: str) -> None:
        """
        Local C{owner} now lets C{contact}, whose subscription was refused,
        see them.  A 403 cannot be taken back, but C{contact}'s server
        tries again at once when C{owner} subscribes to C{contact} (as
        L{contact_subscribed} does here): so if C{owner} watches
        C{contact}, subscribe now, refreshing an active subscription.  A
        contact the owner does not watch retries on its own schedule.
        """
        watch = self.watches.get((owner, contact))
        if watch is None or watch.stopped:
            return
        if watch.state == "refused":
            watch.cancel_timer()
            self._subscribe(watch)
        elif watch.state == "active" and watch.dialog is not None:
            watch.cancel_timer()
            self._refresh(watch)
        # Subscribing: the SUBSCRIBE on its way prompts them already.

    # Subscribing

    @defer.inlineCallbacks
    def _subscribe(self, watch: Watch):
        agent = self.agent
        watch.state = "subscribing"
        watch.contact_subscribed = False
        hops = yield agent.route(watch.contact)
        if watch.stopped:
            return
        if not hops:
            self._refused(watch, "no route to the peer")
            return
        watch.hop = hops[0]
        # The contact's side shows this name on its reverse list entry.
        name = yield self._display_name(watch.owner)
        if watch.stopped:
            return
        request = agent.new_request("SUBSCRIBE", watch.owner, watch.contact, watch.hop, sender_name=name)
        request.headers.add("Contact", agent.contact(watch.owner.partition("@")[0], watch.hop))
        request.headers.add("Event", "presence")
        request.headers.add("Accept", ACCEPT)
        request.headers.add("Expires", str(self.expires))
        if watch.dialog is not None:
            agent.dialogs.remove(watch.dialog)
        watch.dialog = None
        watch.request = request
        key = (request.call_id, request.from_.tag)
        self._unanswered[key] = watch
        response = yield agent.send(request, watch.hop)
        self._unanswered.pop(key, None)
        if watch.stopped or watch.request is not request:
            return
        self._subscribe_answered(watch, request, response)

    def _display_name(self, owner: str) -> defer.Deferred:
        def unknown(failure):
            log.failure("no display name for {owner}", failure, owner=owner)
            return ""

        return defer.maybeDeferred(self.link.display_name, owner).addErrback(unknown)

    def _forget_unanswered(self, watch: Watch) -> None:
        for key, value in list(self._unanswered.items()):
            if value is watch:
                del self._unanswered[key]

    def _subscribe_answered(self, watch: Watch, request: Request, response: Response) -> None:
        if 200 <= response.status < 300:
            if watch.dialog is None:
                try:
                    watch.dialog = Dialog.as_uac(request, response, watch.hop)
                except GrammarError:
                    self._refused(watch, "2xx without Contact")
                    return
                self.agent.dialogs.add(watch.dialog, watch)
            else:
                watch.dialog.update_target(response)
            if watch.state == "subscribing":
                watch.state = "active"
            self._granted(watch, response)
            return
        if response.status == 423 and not getattr(request, "retried", False):
            minimum = response.headers.get("Min-Expires", "")
            if is_decimal(minimum):
                self.expires = max(self.expires, int(minimum))
                self._subscribe(watch)
                return
        self._refused(watch, f"{response.status} {response.reason}")

    def _granted(self, watch: Watch, response: Response) -> None:
        value = response.headers.get("Expires", "")
        granted = int(value) if is_decimal(value) else self.expires
        granted = min(granted, self.expires) or self.expires
        watch.expires = granted
        # Refresh well before the end (RFC 6665 §4.1.2.2), not too often.
        watch.schedule(max(granted * 0.8, min(granted, 30)), lambda: self._refresh(watch))

    def _refused(self, watch: Watch, reason: str, retry: Optional[float] = None) -> None:
        log.info("SIP subscription of {owner} to {contact} refused: {reason}", owner=watch.owner, contact=watch.contact, reason=reason)
        watch.state = "refused"
        if watch.dialog is not None:
            self.agent.dialogs.remove(watch.dialog)
            watch.dialog = None
        self._show(watch, None)
        if retry is not None and retry < 0:
            return
        if watch.contact_subscribed:
            watch.contact_subscribed = False
            retry = 0
        watch.schedule(self.retry_interval if retry is None else retry, lambda: self._subscribe(watch))

    def _in_dialog_subscribe(self, watch: Watch, expires: int) -> Request:
        request = watch.dialog.request("SUBSCRIBE")
        request.headers.add("Contact", self.agent.contact(watch.owner.partition("@")[0], watch.hop))
        request.headers.add("Event", "presence")
        request.headers.add("Accept", ACCEPT)
        request.headers.add("Expires", str(expires))
        return request

    @defer.inlineCallbacks
    def _refresh(self, watch: Watch):
        if watch.stopped or watch.dialog is None:
            return
        request = self._in_dialog_subscribe(watch, self.expires)
        response = yield self.agent.send(request, watch.dialog.next_hop(watch.hop.transport) or watch.hop)
        if watch.stopped or watch.dialog is None:
            return
        if 200 <= response.status < 300:
            watch.dialog.update_target(response)
            self._granted(watch, response)
        elif response.status == 481 or response.made_up:
            # The notifier forgot us or is gone: start afresh.
            self.agent.dialogs.remove(watch.dialog)
            watch.dialog = None
            self._subscribe(watch)
        else:
            self._refused(watch, f"refresh answered {response.status}")

    # NOTIFY

    def _early_notify(self, request: Request, transaction: ServerTransaction, source: Hop) -> bool:
        """
        A NOTIFY for a SUBSCRIBE whose 2xx has not arrived yet: it makes
        the dialog (RFC 6665 §4.1.2.4).
        """
        if request.method != "NOTIFY":
            return False
        watch = self._unanswered.get((request.call_id, request.to.tag))
        if watch is None or watch.dialog is not None:
            return False
        try:
            watch.dialog = Dialog.as_uac(watch.request, request, watch.hop)
        except GrammarError:
            return False
        watch.dialog.remote_cseq = None
        watch.state = "active"
        self.agent.dialogs.add(watch.dialog, watch)
        self._notify(watch, request, transaction)
        return True

    def _in_dialog(self, watch: Watch, request: Request, transaction: ServerTransaction, source: Hop):
        if not watch.dialog.check_remote_cseq(request):
            self.agent.respond(transaction, 500, "CSeq out of order")
            return
        if request.method != "NOTIFY":
            self.agent.respond(transaction, 405, headers=[("Allow", "NOTIFY")])
            return
        self._notify(watch, request, transaction)

    def _notify(self, watch: Watch, request: Request, transaction: ServerTransaction) -> None:
        agent = self.agent
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "presence":
            agent.respond(transaction, 489, headers=[("Allow-Events", "presence")])
            return
        state_value = request.headers.get("Subscription-State")
        if state_value is None:
            agent.respond(transaction, 400, "Missing Subscription-State")
            return
        state, _, params_text = state_value.partition(";")
        state = state.strip().lower()
        try:
            params = parse_params(";" + params_text) if params_text.strip() else {}
        except GrammarError:
            agent.respond(transaction, 400, "Bad Subscription-State")
            return
        agent.respond(transaction, 200, to_tag=watch.dialog.local.tag)
        watch.dialog.update_target(request)
        if state == "terminated":
            self._terminated(watch, params)
            return
        if state == "pending":
            self._show(watch, None)
            return
        if request.body:
            self._show(watch, presence.parse(request.content_type, request.body))

    def _terminated(self, watch: Watch, params: dict) -> None:
        reason = (params.get("reason") or "").lower()
        retry_after = params.get("retry-after")
        retry = float(retry_after) if retry_after and is_decimal(retry_after) else None
        if watch.stopped:
            return
        if reason in ("deactivated", "timeout", ""):
            self.agent.dialogs.remove(watch.dialog)
            watch.dialog = None
            self._show(watch, None)
            watch.schedule(retry or 0, lambda: self._subscribe(watch))
        elif reason == "noresource":
            self._refused(watch, "terminated: noresource", retry=-1)
        else:
            self._refused(watch, f"terminated: {reason}", retry=retry)

    def _show(self, watch: Watch, status: Optional[str]) -> None:
        if watch.stopped or watch.status == status and watch.state != "subscribing":
            return
        watch.status = status
        self.link.contact_presence(watch.owner, watch.contact, status)

    def close(self) -> list:
        """
        Shutdown: unsubscribe everything.
        """
        sent = []
        for owner, contact in list(self.watches):
            d = self.unwatch(owner, contact)
            if d is not None:
                sent.append(d)
        return sent
