"""
The SIP edge over the messenger core: L{SipBridge} implements
L{IMessengerLink} with the core's lists, presence, privacy and
conversations, and turns the core's events for federated users into
calls on the edge (L{ISipFederation}).

* Every handle of a peer domain is reachable in the directory through a
  domain route (L{FederatedUser} endpoints), so the core's events for
  federated users reach the edge: a local user's L{events.PresenceChanged}
  or L{events.PrivacyChanged} for a SIP watcher becomes a NOTIFY (or ends
  the subscription), a forward-list edit
  (L{events.ReverseListChanged}) starts or ends the subscription to that
  contact, and a L{events.Ring} brings the contact into a switchboard
  conversation as a L{SipParticipant}.
* What a SIP contact's server NOTIFYs is published as the contact's
  presence record, readable only by the local users whose subscription
  sees it online, so MSN watchers get ILN/NLN/FLN and may call them.
* A SIP user's first message to a local user opens a conversation on this
  server's switchboard with the SIP user in it and rings the local user
  (RNG); the SIP request is answered once the local user joined and got
  the message.  Local users' MSG payloads become MESSAGEs (or IM-session
  requests), typing notices isComposing or KeyboardActivity, and a refusal
  at the peer a NAK.
"""

from __future__ import annotations

import re
from typing import Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import errors as core_errors, events, status as core_status
from msnp.core.conversations import IParticipant
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.presence import PresenceRecord
from msnp.core.privacy import BLOCK_ALL, PrivacyView
from msnp.sip.link import ALLOWED, BLOCKED, FILTERED, DeliveryFailed, IMessengerLink, Left, PresenceView, Text, Typing

log = Logger()

# Core status <-> the MSN state the edge's presence documents speak.
MSN_STATE_OF_STATUS = {
    core_status.ONLINE: "NLN",
    core_status.BUSY: "BSY",
    core_status.IDLE: "IDL",
    core_status.BE_RIGHT_BACK: "BRB",
    core_status.AWAY: "AWY",
    core_status.ON_THE_PHONE: "PHN",
    core_status.OUT_TO_LUNCH: "LUN",
}
STATUS_OF_MSN_STATE = {state: status for status, state in MSN_STATE_OF_STATUS.items()}

# Seconds a local user has to join a conversation a SIP user's message
# opened; under the 32 s a SIP client waits for the answer (Timer F).
RING_TIMEOUT = 20.0

TEXT_HEAD = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0\r\n\r\n"
TYPING = "text/x-msmsgscontrol"
# MSG payloads that only concern the MSN clients' own display (their
# capabilities, keep-alives, custom emoticon definitions): acknowledged,
# nothing to carry to a SIP user.
CLIENT_ONLY = frozenset({"text/x-clientcaps", "text/x-keepalive", "text/x-mms-emoticon", "text/x-mms-animemoticon"})


class Unsupported(Exception):
    """
    An MSG payload a SIP user cannot be given (invitations, file transfer,
    nudges): the sender is told it was not delivered.
    """


def read_msn_payload(payload: bytes):
    """
    The edge event for an MSN MSG payload: L{Text}, L{Typing}, or None
    when there is nothing to carry.  Raises L{Unsupported}.
    """
    head, sep, body = payload.partition(b"\r\n\r\n")
    if not sep:
        raise Unsupported("no MIME header block")
    kind = "text/plain"
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            kind = value.split(b";")[0].strip().lower().decode("ascii", "replace")
    if kind == "text/plain":
        try:
            return Text(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise Unsupported("text is not UTF-8")
    if kind == TYPING:
        return Typing()
    if kind in CLIENT_ONLY:
        return None
    raise Unsupported(kind)


def text_payloads(text: str, limit: int) -> list[bytes]:
    """
    MSG payloads for a SIP user's text: CRLF line ends as MSN clients
    write them, split at character boundaries so that none is longer
    than C{limit} bytes.
    """
    body = re.sub(r"\r?\n", "\r\n", text).encode("utf-8")
    room = max(limit - len(TEXT_HEAD), 64)
    payloads = []
    while True:
        cut = len(body) if len(body) <= room else room
        # Back up to the start of a UTF-8 character.
        while cut < len(body) and (body[cut] & 0xC0) == 0x80:
            cut -= 1
        payloads.append(TEXT_HEAD + body[:cut])
        body = body[cut:]
        if not body:
            return payloads


def typing_payload(handle: str) -> bytes:
    return f"MIME-Version: 1.0\r\nContent-Type: {TYPING}\r\nTypingUser: {handle}\r\n\r\n\r\n".encode("utf-8")


@implementer(IEndpoint)
class FederatedUser:
    """
    A user of a peer domain as the directory reaches them (through the
    domain route): the events the core sends them go to the bridge.
    """

    def __init__(self, bridge: "SipBridge", handle: str):
        self.bridge = bridge
        self.handle = handle
        self.endpoint_id = bridge.endpoint_id(handle)

    def endpoint_record(self, handle: str, since: float) -> EndpointRecord:
        return EndpointRecord(self.endpoint_id, handle, self.bridge.directory.node, "sip", "SIP", "", "", since)

    def receive(self, event) -> None:
        self.bridge.event_for(self.handle, event)


@implementer(IParticipant)
class SipParticipant:
    """
    A SIP user in a switchboard conversation.  Messages from the local
    participants go to them through the edge; theirs are relayed to the
    local participants.  Leaves when the last local participant has left.
    """

    caps = 0

    def __init__(self, bridge: "SipBridge", conversation, handle: str):
        self.bridge = bridge
        self.conversation = conversation
        self.handle = handle
        self.name = handle
        self.gone = False
        # Local handle -> [(payloads, Deferred)] waiting for them to join.
        self.waiting: dict[str, list] = {}
        self._ring_timers: dict[str, object] = {}

    def locals(self) -> list:
        return [p for p in self.conversation.participants.values() if not isinstance(p, SipParticipant)]

    def has(self, handle: str) -> bool:
        return not self.gone and handle in self.conversation.participants

    # IParticipant

    def joined(self, newcomer) -> None:
        if isinstance(newcomer, SipParticipant):
            return
        self.bridge.participant_for_pair(self, newcomer.handle)
        self._stop_ring_timer(newcomer.handle)
        if newcomer.handle in self.waiting:
            # After the newcomer's own answer (IRO, ANS OK) has gone out.
            self.bridge.clock.callLater(0, self._flush, newcomer.handle)

    def _flush(self, recipient: str) -> None:
        waiting = self.waiting.pop(recipient, [])
        if not self.has(recipient):
            for _, d in waiting:
                d.errback(DeliveryFailed(480, "left before the message"))
            return
        for payloads, d in waiting:
            self._relay(payloads).chainDeferred(d)

    def left(self, leaver, idle: bool) -> None:
        if isinstance(leaver, SipParticipant) or self.gone:
            return
        self.bridge.send_quietly(leaver.handle, self.handle, Left())
        if not self.locals():
            self.leave()

    def message(self, sender, payload: bytes, now=None):
        if self.gone or isinstance(sender, SipParticipant):
            # Federated users are not relayed to each other through us.
            return False
        try:
            event = read_msn_payload(payload)
        except Unsupported as why:
            log.info("MSG from {sender} to SIP user {handle} not carried: {why}", sender=sender.handle, handle=self.handle, why=why)
            return False
        if event is None:
            return True
        if isinstance(event, Typing):
            self.bridge.send_quietly(sender.handle, self.handle, event)
            return True
        return self.bridge.send(sender.handle, self.handle, event)

    # Messages from the SIP user

    def deliver(self, recipient: str, payloads: list[bytes]) -> defer.Deferred:
        """
        Relay C{payloads} into the conversation once C{recipient} is in it;
        fires when relayed, fails with L{DeliveryFailed}.
        """
        if self.has(recipient):
            return self._relay(payloads)
        if recipient in self.waiting:
            d = defer.Deferred()
            self.waiting[recipient].append((payloads, d))
            return d
        return defer.fail(DeliveryFailed(480, "not in the conversation"))

    def ringing(self, recipient: str, payloads: list[bytes], timeout: float) -> defer.Deferred:
        d = defer.Deferred()
        self.waiting.setdefault(recipient, []).append((payloads, d))
        self._ring_timers[recipient] = self.bridge.clock.callLater(timeout, self._not_answered, recipient)
        return d

    def _not_answered(self, recipient: str) -> None:
        self._ring_timers.pop(recipient, None)
        log.info("{recipient} did not join the conversation {handle} opened", recipient=recipient, handle=self.handle)
        self._fail_waiting(recipient, DeliveryFailed(480, "not answered"))
        if not self.locals():
            self.leave()

    def _stop_ring_timer(self, recipient: str) -> None:
        timer = self._ring_timers.pop(recipient, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _fail_waiting(self, recipient: str, error: DeliveryFailed) -> None:
        for _, d in self.waiting.pop(recipient, []):
            d.errback(error)

    def _relay(self, payloads: list[bytes]) -> defer.Deferred:
        outcomes = [defer.maybeDeferred(self.conversation.relay, self, payload) for payload in payloads]

        def relayed(results):
            if all(ok and value for ok, value in results):
                return None
            raise DeliveryFailed(480, "not delivered")

        return defer.DeferredList(outcomes, consumeErrors=True).addCallback(relayed)

    def leave(self, reason: Optional[DeliveryFailed] = None) -> None:
        if self.gone:
            return
        self.gone = True
        for recipient in list(self._ring_timers):
            self._stop_ring_timer(recipient)
        for recipient in list(self.waiting):
            self._fail_waiting(recipient, reason or DeliveryFailed(480, "conversation ended"))
        self.bridge.forget(self)
        conversation = self.conversation
        conversation.leave(self)
        if conversation.ended:
            self.bridge.host.close_conversation(conversation)


@implementer(IMessengerLink)
class SipBridge:
    """
    The messenger as the SIP edge sees it (L{IMessengerLink}), and the
    core's events for federated users turned into calls on the edge.

    C{host} holds conversations: C{open_conversation()}, a Deferred of a
    new conversation; C{close_conversation(conversation)}; and
    C{conversations}, by session id, where a L{events.Ring} is looked up.
    """

    def __init__(self, messenger, host, clock, max_payload: int, ring_timeout: float = RING_TIMEOUT):
        self.messenger = messenger
        self.directory = messenger.directory
        self.store = messenger.store
        self.host = host
        self.clock = clock
        self.max_payload = max_payload
        self.ring_timeout = ring_timeout
        self.federation = None
        self.domains: list[str] = []
        # Local user -> federated contacts on their forward list.
        self.forward: dict[str, set[str]] = {}
        # Federated contact -> {local watcher: MSN state they see}
        self.seen: dict[str, dict[str, str]] = {}
        # (federated user, local user) -> the participant their messages go through
        self.pairs: dict[tuple[str, str], SipParticipant] = {}
        # Local users whose SIP subscriptions are re-read at the next turn.
        self._changed: set[str] = set()
        self._flush_call = None

    def endpoint_id(self, handle: str) -> str:
        return f"{self.directory.node}/sip/{handle}"

    # Starting and stopping

    @defer.inlineCallbacks
    def start(self, federation, domains):
        """
        Serve C{domains} through C{federation} (the edge): route their
        handles here, accept them on lists, and watch every federated
        contact already on a forward list.
        """
        self.federation = federation
        self.domains = [domain.lower() for domain in domains]
        self.messenger.lists.federated_domains.update(self.domains)
        for domain in self.domains:
            self.directory.route_domain(domain, self._endpoint_for)
        entries = yield self.store.entries_in_domains(self.domains)
        for owner, lst, contact, _ in entries:
            if lst == "FL" and self.federation is not None:
                self.forward.setdefault(owner, set()).add(contact)
                federation.watch(owner, contact)

    def stop(self) -> None:
        """
        Stop serving: SIP users leave their conversations and their
        presence is withdrawn; the edge says goodbye on the wire itself.
        """
        self.federation = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._changed.clear()
        for domain in self.domains:
            self.directory.unroute_domain(domain)
        self.messenger.lists.federated_domains.difference_update(self.domains)
        for participant in set(self.pairs.values()):
            participant.leave(DeliveryFailed(503, "shutting down"))
        for contact in list(self.seen):
            self.directory.withdraw_presence(contact, self.endpoint_id(contact))
        self.seen.clear()

    def _endpoint_for(self, handle: str) -> Optional[FederatedUser]:
        if self.federation is None:
            return None
        return FederatedUser(self, handle)

    # Events the core sends federated users

    def event_for(self, handle: str, event) -> None:
        federation = self.federation
        if federation is None:
            return
        kind = type(event)
        if kind is events.PresenceChanged:
            self._presence_changed(event.handle)
        elif kind is events.PrivacyChanged:
            # Consent may have changed though no MSN watcher's view did
            # (or the owner is hidden, when no presence event is sent).
            self._presence_changed(event.owner)
        elif kind is events.ReverseListChanged:
            self._forward_changed(event.watcher, handle, event.added)
        elif kind is events.Ring:
            # Joined once the caller has been answered CAL ... RINGING.
            self.clock.callLater(0, self._ring, event)

    def _presence_changed(self, owner: str) -> None:
        """
        Have the edge re-read C{owner}'s SIP subscriptions, once the core
        has finished the change: one event reaches every watcher of the
        user, and signing out tells the watchers before the presence
        record is withdrawn.
        """
        if owner not in self._changed:
            self._changed.add(owner)
            if self._flush_call is None:
                self._flush_call = self.clock.callLater(0, self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush_call = None
        owners, self._changed = self._changed, set()
        if self.federation is None:
            return
        for owner in sorted(owners):
            self.federation.presence_changed(owner)

    def _forward_changed(self, owner: str, contact: str, added: bool) -> None:
        federation = self.federation
        if added:
            self.forward.setdefault(owner, set()).add(contact)
            federation.watch(owner, contact)
        else:
            contacts = self.forward.get(owner)
            if contacts is not None:
                contacts.discard(contact)
                if not contacts:
                    del self.forward[owner]
            federation.unwatch(owner, contact)
            self._contact_seen(owner, contact, None, tell=False)
        # The forward list is consent for the contact to see the owner.
        self._presence_changed(owner)

    def _ring(self, event: events.Ring) -> None:
        if self.federation is None:
            return
        conversation = self.host.conversations.get(event.session_id)
        if conversation is None or conversation.ended or not conversation.is_ringing(event.callee, self.clock.seconds()):
            log.info("SIP user {callee} rung into a conversation not held here", callee=event.callee)
            return
        if any(isinstance(p, SipParticipant) for p in conversation.participants.values()):
            log.info("SIP user {callee} not joined: the conversation has a federated user already", callee=event.callee)
            return
        participant = SipParticipant(self, conversation, event.callee)
        conversation.join(participant)
        for local in participant.locals():
            self.participant_for_pair(participant, local.handle)

    def participant_for_pair(self, participant: SipParticipant, local: str) -> None:
        self.pairs[(participant.handle, local)] = participant

    def forget(self, participant: SipParticipant) -> None:
        for key, value in list(self.pairs.items()):
            if value is participant:
                del self.pairs[key]

    # Sending to SIP users

    def send(self, sender: str, recipient: str, event) -> defer.Deferred:
        """
        Through the edge; a Deferred firing True once the peer took it,
        False when it refused or could not be reached.
        """
        federation = self.federation
        if federation is None:
            return defer.succeed(False)
        d = defer.maybeDeferred(federation.send, sender, recipient, event)

        def refused(failure):
            if failure.check(DeliveryFailed):
                log.info("SIP delivery from {sender} to {recipient} failed: {status}", sender=sender, recipient=recipient, status=failure.value.status)
            else:
                log.failure("SIP delivery from {sender} to {recipient} failed", failure, sender=sender, recipient=recipient)
            return False

        return d.addCallbacks(lambda _: True, refused)

    def send_quietly(self, sender: str, recipient: str, event) -> None:
        self.send(sender, recipient, event)

    # IMessengerLink

    @defer.inlineCallbacks
    def account_exists(self, handle: str):
        found = yield self.directory.presence_of([handle])
        if handle in found:
            return True
        account = yield self.store.get_account(handle)
        return account is not None

    @defer.inlineCallbacks
    def presence_for(self, owner: str, watcher: str):
        """
        The MSN privacy rule, and consent: a federated watcher sees the
        owner only once the owner has them on the allow or forward list.
        Blocked means on the block list; anything else not allowed is
        filtered (waiting for the owner).
        """
        found = yield self.directory.presence_of([owner])
        record = found.get(owner)
        if record is not None:
            privacy, status = record.privacy, record.status
            on_forward = watcher in self.forward.get(owner, ())
        else:
            user = yield self.store.load_user(owner)
            if user is None:
                return PresenceView(BLOCKED)
            privacy, status = PrivacyView.of(user), None
            on_forward = watcher in user.lists["FL"]
        if watcher in privacy.blocked:
            return PresenceView(BLOCKED)
        if not privacy.allows(watcher) or (watcher not in privacy.allowed and not on_forward):
            return PresenceView(FILTERED)
        return PresenceView(ALLOWED, MSN_STATE_OF_STATUS.get(status))

    @defer.inlineCallbacks
    def display_name(self, handle: str):
        """
        From the presence record while signed in (no store trip), else
        the account.
        """
        found = yield self.directory.presence_of([handle])
        record = found.get(handle)
        if record is not None:
            return record.name
        account = yield self.store.get_account(handle)
        return account.friendly_name if account is not None else ""

    def watcher_subscribed(self, owner: str, watcher: str, name: str):
        d = self.messenger.lists.federated_watcher_added(owner, watcher, name or watcher)

        def refused(failure):
            failure.trap(core_errors.MessengerError)
            log.info("{watcher} not put on {owner}'s reverse list: {why}", watcher=watcher, owner=owner, why=failure.value)

        return d.addErrback(refused)

    def contact_presence(self, owner: str, contact: str, status: Optional[str]) -> None:
        if contact not in self.forward.get(owner, ()):
            return
        self._contact_seen(owner, contact, status, tell=True)

    def _contact_seen(self, owner: str, contact: str, state: Optional[str], tell: bool) -> None:
        status = STATUS_OF_MSN_STATE.get(state) if state is not None else None
        seen = self.seen.setdefault(contact, {})
        before = seen.get(owner)
        if status is None:
            seen.pop(owner, None)
        else:
            seen[owner] = status
        if not seen:
            del self.seen[contact]
            self.directory.withdraw_presence(contact, self.endpoint_id(contact))
        else:
            self.directory.publish_presence(
                PresenceRecord(
                    contact,
                    self.endpoint_id(contact),
                    status if status is not None else next(iter(seen.values())),
                    contact,
                    privacy=PrivacyView(BLOCK_ALL, frozenset(seen)),
                )
            )
        if tell and status != before:
            self.directory.deliver([owner], events.PresenceChanged(contact, status, contact))

    def deliver(self, sender: str, recipient: str, event):
        """
        A SIP user's message to a local user, through a switchboard
        conversation (opened and rung for when there is none).
        """
        participant = self.pairs.get((sender, recipient))
        live = participant is not None and (participant.has(recipient) or recipient in participant.waiting)
        if isinstance(event, Left):
            if participant is not None:
                participant.leave()
            return defer.succeed(None)
        if isinstance(event, Typing):
            # Typing opens no conversation: there is nothing to show yet.
            if live and participant.has(recipient):
                return participant.deliver(recipient, [typing_payload(sender)]).addErrback(lambda failure: failure.trap(DeliveryFailed))
            return defer.succeed(None)
        payloads = text_payloads(event.text, self.max_payload)
        if live:
            return participant.deliver(recipient, payloads)
        return self._open(sender, recipient, payloads)

    @defer.inlineCallbacks
    def _open(self, sender: str, recipient: str, payloads: list[bytes]):
        if self.federation is None:
            raise DeliveryFailed(503, "shutting down")
        conversation = yield self.host.open_conversation()
        participant = SipParticipant(self, conversation, sender)
        conversation.join(participant)
        self.participant_for_pair(participant, recipient)
        # Waiting before ringing: the answer may come before invite() returns.
        answered = participant.ringing(recipient, payloads, self.ring_timeout)
        expires = self.clock.seconds() + self.ring_timeout
        try:
            yield self.messenger.conversations.invite(conversation, participant, recipient, expires)
        except core_errors.UserOffline:
            participant.leave(DeliveryFailed(480, "Temporarily Unavailable"))
        yield answered


class SipFederationService(Service):
    """
    The SIP edge (L{msnp.sip.edge.SipService}) bridged to the messenger:
    listens, then serves the peer domains; on stop, the bridge lets go
    before the edge says goodbye to its peers.
    """

    name = "sip-federation"

    def __init__(self, reactor, settings, messenger, host, max_payload: int, resolver=None, name_resolver=None):
        from msnp.sip.edge import SipService

        self.bridge = SipBridge(messenger, host, reactor, max_payload)
        self.sip = SipService(reactor, settings, self.bridge, resolver, name_resolver)
        self.settings = settings
        self.started: Optional[defer.Deferred] = None

    @property
    def edge(self):
        return self.sip.edge

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.sip.privilegedStartService()

    def startService(self) -> None:
        super().startService()
        self.sip.startService()
        domains = [peer.domain for peer in self.settings.peers]
        self.started = self.bridge.start(self.sip.edge, domains)
        self.started.addErrback(lambda failure: log.failure("SIP federation did not start", failure))

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        self.bridge.stop()
        yield self.sip.stopService()
