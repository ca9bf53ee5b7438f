"""
The RVP front-end over the messenger core: L{MessengerHome} implements
L{IRvpHome} with the core's lists, presence and conversations, so RVP and
MSN users of one server see and reach each other.

* An RVP user whose published state is not offline is signed in as one
  endpoint (protocol "rvp", L{RvpEndpoint}); its state is the core status
  (table below), so MSN watchers get NLN/FLN at once.  The events the core
  delivers to it (a contact's presence, a ring, reverse-list changes) reach
  the RVP front-end.
* Messages: an RVP NOTIFY for an MSN user opens a conversation on this
  server's switchboard with the RVP user in it as a participant
  (L{RvpParticipant}) and rings the MSN user (RNG); the NOTIFY is answered
  once the MSN user joined and got the message.  An MSN user who calls an
  RVP user gets the participant into the conversation at once; each MSG
  becomes a NOTIFY to the RVP user's local nodes, under one Session-Id per
  conversation.
* Lists and privacy edits go through the core's contact-list service, so
  MSN users get their reverse-list notices and privacy re-evaluation.
"""

from __future__ import annotations

import uuid
from typing import Optional

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import errors as core_errors, events, status as core_status
from msnp.core.conversations import IParticipant
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.presence import SignedInUser
from msnp.rvp.federation import Federation
from msnp.rvp.home import AccountInfo, InstantMessage, IRvpHome, Privacy
from msnp.store.records import StoreError

log = Logger()

# RVP state → core status; "offline" signs the RVP endpoint out.
STATUS_OF_STATE = {
    "online": core_status.ONLINE,
    "busy": core_status.BUSY,
    "idle": core_status.IDLE,
    "back-soon": core_status.BE_RIGHT_BACK,
    "away": core_status.AWAY,
    "on-phone": core_status.ON_THE_PHONE,
    "at-lunch": core_status.OUT_TO_LUNCH,
    "invisible": core_status.HIDDEN,
}
STATE_OF_STATUS = {status: state for state, status in STATUS_OF_STATE.items() if state != "invisible"}

TYPING = "text/x-msmsgscontrol"
LEAVE = "text/x-imleave"
RING_TIMEOUT = 60.0


def split_mime(mime: str) -> tuple[list[tuple[str, str]], str]:
    """
    Headers and body of an IM's MIME text, CRLF or LF (XML turns one into
    the other), folded headers joined, whitespace before the first header
    tolerated.
    """
    text = mime.lstrip().replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    headers: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return headers, body


def header_of(headers: list[tuple[str, str]], name: str) -> Optional[str]:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def content_type(headers) -> str:
    return (header_of(headers, "Content-Type") or "text/plain").split(";")[0].strip().lower()


def msn_payload(mime: str) -> bytes:
    """
    The MSN MSG payload for an RVP message: the same MIME headers (less
    RVP's Session-Id) and body, with CRLF line ends.
    """
    headers, body = split_mime(mime)
    lines = [f"{name}: {value}" for name, value in headers if name.lower() != "session-id"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def rvp_mime(payload: bytes, session_id: str) -> str:
    """
    The RVP mime-data for an MSN MSG payload: its headers plus Session-Id.
    """
    text = payload.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = [line for line in head.split("\r\n") if line and not line.lower().startswith("session-id:")]
    lines.append(f"Session-Id: {session_id}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


@implementer(IEndpoint)
class RvpEndpoint:
    """
    An RVP user signed in to the core (while its state is not offline).
    """

    def __init__(self, home: "MessengerHome", endpoint_id: str, handle: str):
        self.home = home
        self.endpoint_id = endpoint_id
        self.handle = handle
        self.me: Optional[SignedInUser] = None

    def endpoint_record(self, handle: str, since: float) -> EndpointRecord:
        return EndpointRecord(self.endpoint_id, handle, self.home.messenger.directory.node, "rvp", "RVP", "", "", since)

    def receive(self, event) -> None:
        try:
            self._receive(event)
        except Exception:
            log.failure("RVP endpoint of {handle} failed on {event}", handle=self.handle, event=event)

    def _receive(self, event) -> None:
        me = self.me
        if me is None:
            return
        kind = type(event)
        if kind is events.PresenceChanged:
            self.home.contact_changed(event.handle, STATE_OF_STATUS.get(event.status))
        elif kind is events.ReverseListChanged:
            self.home.messenger.lists.apply_reverse_change(me, event)
        elif kind is events.Ring:
            # After the caller's CAL is answered RINGING, which follows the
            # ring: JOI must not come first.
            self.home.clock.callLater(0, self.home.answer_ring, self.handle, me.name, event)
        elif kind is events.Kicked:
            self.home.kicked(self, event.reason)
        elif kind is events.ListsChanged:
            self.home.reload(self)


def _fire(d: Deferred, value) -> None:
    if not d.called:
        d.callback(value)


@implementer(IParticipant)
class RvpParticipant:
    """
    An RVP user in a switchboard conversation: what the others say is
    NOTIFYed to the user's local nodes under C{rvp_session_id}.
    """

    def __init__(self, home: "MessengerHome", handle: str, name: str, conversation, rvp_session_id: str):
        self.home = home
        self.handle = handle
        self.name = name
        self.caps = 0
        self.conversation = conversation
        self.rvp_session_id = rvp_session_id
        self._joined: list[Deferred] = []

    def wait_for_join(self) -> Deferred:
        d = Deferred()
        self._joined.append(d)
        return d

    def joined(self, newcomer) -> None:
        waiting, self._joined = self._joined, []
        for d in waiting:
            # After the newcomer's roster and ANS reply, which follow the
            # join: a message must not come before them.
            self.home.clock.callLater(0, _fire, d, newcomer)

    def left(self, leaver, idle: bool) -> None:
        mime = f"MIME-Version: 1.0\r\nContent-Type: {LEAVE}\r\nSession-Id: {self.rvp_session_id}\r\n\r\n"
        self.home.to_rvp(self.handle, leaver.handle, getattr(leaver, "name", ""), mime)
        others = [p for p in self.conversation.participants.values() if p is not self]
        if not others:
            self.home.leave(self)

    def message(self, sender, payload: bytes, now=None) -> bool:
        if not self.home.reachable(self.handle):
            return False
        mime = rvp_mime(payload, self.rvp_session_id)
        self.home.to_rvp(self.handle, sender.handle, getattr(sender, "name", ""), mime)
        return True


@implementer(IRvpHome)
class MessengerHome:
    """
    L{IRvpHome} over the messenger core and this process's switchboard.
    """

    def __init__(self, messenger, switchboard, clock=None, ring_timeout: float = RING_TIMEOUT):
        self.messenger = messenger
        self.store = messenger.store
        self.switchboard = switchboard
        self.clock = clock if clock is not None else messenger.clock
        self.ring_timeout = ring_timeout
        self.frontend = None
        self.federation: Optional[Federation] = None
        self._endpoints: dict[str, RvpEndpoint] = {}
        self._chains: dict[str, Deferred] = {}
        # (RVP user, Session-Id lower case) → participant
        self._sessions: dict[tuple[str, str], RvpParticipant] = {}

    def bind(self, frontend) -> None:
        self.frontend = frontend
        self.federation = Federation(self, frontend, self.messenger, self.clock)

    def start(self) -> Deferred:
        return self.federation.start()

    def watcher_from_peer(self, owner: str, watcher: str) -> Deferred:
        return self.federation.watcher_subscribed(owner, watcher)

    def presence_from_peer(self, owner: str, contact: str, state: Optional[str]) -> None:
        if self.federation.watching(owner, contact):
            self.federation.update(owner, contact, state)

    # Accounts, privacy, lists

    @inlineCallbacks
    def account(self, handle: str):
        account = yield self.store.get_account(handle)
        if account is None:
            return None
        return AccountInfo(account.handle, account.friendly_name, (account.digest_verifier, account.md5_password))

    @inlineCallbacks
    def _user(self, handle: str):
        """
        The signed-in user of C{handle}'s RVP endpoint, or one loaded for
        this edit alone (its lists are the store's).
        """
        endpoint = self._endpoints.get(handle)
        if endpoint is not None and endpoint.me is not None:
            return endpoint.me
        user = yield self.store.load_user(handle)
        if user is None:
            return None
        return SignedInUser(user, "")

    @inlineCallbacks
    def privacy(self, handle: str):
        if handle not in self._endpoints:
            # An online user's rule travels with its presence record.
            records = yield self.messenger.directory.presence_of([handle])
            record = records.get(handle)
            if record is not None:
                view = record.privacy
                return Privacy(view.mode, frozenset(view.allowed), frozenset(view.blocked))
        me = yield self._user(handle)
        if me is None:
            return Privacy("AL", frozenset(), frozenset())
        lists = me.user.lists
        return Privacy(me.user.blp, frozenset(lists["AL"]), frozenset(lists["BL"]))

    @inlineCallbacks
    def reverse_list(self, handle: str):
        me = yield self._user(handle)
        return list(me.user.lists["RL"]) if me is not None else []

    @inlineCallbacks
    def set_privacy(self, handle: str, privacy: Privacy):
        me = yield self._user(handle)
        if me is None:
            return
        lists = self.messenger.lists
        user = me.user
        for lst, wanted in (("AL", privacy.allowed), ("BL", privacy.blocked)):
            for contact in sorted(set(user.lists[lst]) - wanted):
                yield lists.remove(me, lst, contact)
        for lst, wanted in (("BL", privacy.blocked), ("AL", privacy.allowed)):
            for contact in sorted(wanted - set(user.lists[lst])):
                yield lists.add(me, lst, contact, contact)
        if privacy.blp != user.blp:
            yield lists.set_privacy(me, "blp", privacy.blp)

    @inlineCallbacks
    def set_display_name(self, handle: str, name: str):
        me = yield self._user(handle)
        if me is not None:
            yield self.messenger.lists.set_friendly_name(me, name)

    @inlineCallbacks
    def add_contact(self, owner: str, contact: str, name: str):
        me = yield self._user(owner)
        if me is None or contact in me.user.lists["FL"]:
            return
        try:
            yield self.messenger.lists.add(me, "FL", contact, name, 0)
        except (core_errors.MessengerError, StoreError) as error:
            # Federated contacts have no account here: the subscription
            # alone follows them.
            log.info("{owner}'s subscription to {contact} left off the forward list: {error}", owner=owner, contact=contact, error=error)

    # Presence

    def rvp_presence_changed(self, handle: str, state: str) -> Deferred:
        # One change at a time per user: signing in is asynchronous.
        previous = self._chains.get(handle, succeed(None))
        d = previous.addBoth(lambda _: self._apply_state(handle, state))
        self._chains[handle] = d
        applied = Deferred()

        def done(result):
            if self._chains.get(handle) is d:
                del self._chains[handle]
            if hasattr(result, "getTraceback"):
                log.failure("RVP presence of {handle}", result, handle=handle)
            applied.callback(None)

        d.addBoth(done)
        return applied

    @inlineCallbacks
    def _apply_state(self, handle: str, state: str):
        status = STATUS_OF_STATE.get(state)
        endpoint = self._endpoints.get(handle)
        if status is None:
            if endpoint is not None:
                self._sign_out(endpoint)
            return
        if endpoint is None:
            user = yield self.store.load_user(handle)
            if user is None:
                return
            endpoint = RvpEndpoint(self, self.messenger.endpoint_ids.next(), handle)
            self._endpoints[handle] = endpoint
            endpoint.me = yield self.messenger.sign_in(endpoint, user)
            if self._endpoints.get(handle) is not endpoint:
                self.messenger.sign_out(endpoint.me)
                return
        if endpoint.me is not None:
            self.messenger.presence.set_status(endpoint.me, status)

    def _sign_out(self, endpoint: RvpEndpoint) -> None:
        if self._endpoints.get(endpoint.handle) is endpoint:
            del self._endpoints[endpoint.handle]
        me, endpoint.me = endpoint.me, None
        if me is not None:
            self.messenger.sign_out(me)
        for key, participant in list(self._sessions.items()):
            if key[0] == endpoint.handle:
                self.leave(participant)

    def kicked(self, endpoint: RvpEndpoint, reason: str) -> None:
        self._sign_out(endpoint)

    @inlineCallbacks
    def reload(self, endpoint: RvpEndpoint):
        user = yield self.store.load_user(endpoint.handle)
        if user is not None and endpoint.me is not None:
            endpoint.me.user = user
            endpoint.me.privacy_edited()

    def own_endpoint(self, endpoint_id: str) -> bool:
        return any(e.endpoint_id == endpoint_id for e in self._endpoints.values())

    @inlineCallbacks
    def other_presence(self, handle: str):
        records = yield self.messenger.directory.presence_of([handle])
        record = records.get(handle)
        if record is None or self.own_endpoint(record.endpoint_id):
            return None
        if record.status == core_status.HIDDEN:
            return "invisible"
        return STATE_OF_STATUS.get(record.status)

    def contact_changed(self, handle: str, state: Optional[str]) -> None:
        if self.frontend is not None:
            self.frontend.contact_changed(handle, state)

    def stop(self) -> Deferred:
        for endpoint in list(self._endpoints.values()):
            self._sign_out(endpoint)
        if self.federation is None:
            return succeed(None)
        return self.federation.stop()

    # Messages

    def reachable(self, handle: str) -> bool:
        if self.federation is not None and self.federation.is_federated(handle):
            return True
        return self.frontend is not None and self.frontend.has_local_node(handle)

    def to_rvp(self, recipient: str, sender: str, sender_name: str, mime: str) -> None:
        if self.frontend is not None:
            self.frontend.message_from_core(recipient, sender, sender_name, mime)

    def leave(self, participant: RvpParticipant) -> None:
        self._sessions.pop((participant.handle, participant.rvp_session_id.lower()), None)
        conversation = participant.conversation
        if participant.handle in conversation.participants:
            conversation.leave(participant)
        if conversation.ended:
            self.switchboard.close_conversation(conversation)

    def answer_ring(self, handle: str, name: str, ring: events.Ring) -> None:
        """
        An MSN user calls this RVP user (ours, or of a federated domain):
        join the conversation at once (the RVP client has nothing to
        accept); its messages follow as NOTIFYs.
        """
        conversation = self.switchboard.conversations.get(ring.session_id)
        if conversation is None or conversation.ended or handle in conversation.participants:
            return
        session_id = "{%s}" % str(uuid.uuid4()).upper()
        participant = RvpParticipant(self, handle, name, conversation, session_id)
        self._sessions[(handle, session_id.lower())] = participant
        conversation.join(participant)

    @inlineCallbacks
    def deliver_message(self, recipient: str, message: InstantMessage):
        """
        An RVP user's message for C{recipient} on another front-end: into
        the conversation its Session-Id names, else a new one the recipient
        is rung into.  True once the recipient has it.
        """
        sender = self.frontend.principals.handle_of_url(message.sender) if self.frontend is not None else None
        if sender is None:
            return False
        headers, _ = split_mime(message.mime)
        kind = content_type(headers)
        session_key = (sender, (message.session_id or "").lower())
        participant = self._sessions.get(session_key)
        if participant is not None and participant.conversation.ended:
            self._sessions.pop(session_key, None)
            participant = None
        if participant is not None and recipient not in participant.conversation.participants:
            participant = None
        if kind == LEAVE:
            if participant is not None:
                self.leave(participant)
            return participant is not None
        joining = kind == TYPING and header_of(headers, "TypingUser") is None
        if participant is None:
            if kind == TYPING and not joining:
                # Typing alone does not ring anyone; nothing to show yet.
                return False
            participant = yield self._open(sender, recipient, message.session_id)
            if participant is None:
                return False
        if joining:
            # The RVP "join" control message: the MSN user has JOI already.
            return True
        return participant.conversation.relay(participant, msn_payload(message.mime))

    @inlineCallbacks
    def _open(self, sender: str, recipient: str, rvp_session_id: Optional[str]):
        records = yield self.messenger.directory.presence_of([recipient])
        record = records.get(recipient)
        if record is None or self.own_endpoint(record.endpoint_id):
            return None  # not on another front-end (an RVP user has its own local nodes)
        account = yield self.store.get_account(sender)
        name = account.friendly_name if account is not None else sender
        conversation = yield self.switchboard.open_conversation()
        session_id = rvp_session_id or "{%s}" % str(uuid.uuid4()).upper()
        participant = RvpParticipant(self, sender, name, conversation, session_id)
        conversation.join(participant)
        joined = participant.wait_for_join()
        try:
            yield self.messenger.conversations.invite(conversation, participant, recipient, self.clock.seconds() + self.ring_timeout)
        except core_errors.UserOffline:
            self.leave(participant)
            return None
        timer = self.clock.callLater(self.ring_timeout, joined.cancel)
        try:
            yield joined
        except Exception:
            self.leave(participant)
            return None
        finally:
            if timer.active():
                timer.cancel()
        self._sessions[(sender, session_id.lower())] = participant
        return participant
