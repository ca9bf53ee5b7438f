"""
The switchboard: conversations between two or more users.

A user asks the notification server for a switchboard (C{XFR t SB}) and gets
a cookie; logging in here with it (C{USR}) opens a new L{Conversation}.
Participants invite others with C{CAL}; the callee's notification session
rings them (C{RNG}) with a cookie of their own, which they bring here with
C{ANS}.  Messages go byte-exact to every other participant.

The switchboard never sees VER: each participant's dialect travels in the
L{SwitchboardTicket} behind their cookie, taken from their notification
session when the cookie was issued.  Cookies and the list of sessions live
in the directory so that another process can check them.
"""

from __future__ import annotations

import secrets
from typing import Optional

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import errors as core_errors
from msnp.core.conversations import Conversation, IParticipant, participant_key
from msnp import metrics
from msnp.msn import dialects, errors, phases, wire
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.phases import Phase
from msnp.msn.protocol import CommandProtocol, TokenBucket
from msnp.store.records import canonical_handle

log = Logger()

# Content type a MSG D payload must carry (MSNP9+ binary data).
P2P_CONTENT_TYPE = b"application/x-msnmsgrp2p"

# MSG relayed by the fast path counts as a command like any other.
_MSG_COMMANDS = metrics.command_counter("switchboard", "MSG")


@attrs.frozen
class SwitchboardTicket:
    """
    What a cookie admits: who, shown how, in which dialect, until when; and
    for an invitation (C{RNG}) the session it leads to.  A cookie from
    C{XFR SB} has no C{session_id}: it opens a new session.
    """

    handle: str
    encoded_name: str
    dialect_version: int
    caps: int
    expires: float
    session_id: Optional[str] = None
    name: str = ""
    caps_ex: int = 0
    # MSNP16+: the machine GUID of the endpoint the cookie was issued to.
    instance: str = ""

    @property
    def dialect(self) -> dialects.Dialect:
        return dialects.ALL_DIALECTS[self.dialect_version]


def new_cookie() -> str:
    """
    An unguessable cookie (about 100 random bits) in the dotted-decimal
    shape the original servers used, so that no client trips over it.
    """
    return ".".join(str(secrets.randbelow(10**10)) for _ in range(3))


def ticket_for(ns_session, expires: float, session_id: Optional[str] = None) -> SwitchboardTicket:
    """
    The ticket of the user signed in on notification session C{ns_session}.
    """
    me = ns_session.me
    return SwitchboardTicket(
        handle=me.handle,
        encoded_name=wire.url_encode(me.name),
        dialect_version=ns_session.dialect.version,
        caps=me.client_caps,
        expires=expires,
        session_id=session_id,
        name=me.name,
        caps_ex=me.client_caps_ex,
        instance=getattr(ns_session, "machine_guid", ""),
    )


def grant_switchboard(directory, clock, config, ns_session) -> Deferred:
    """
    Issue the cookie for C{XFR t SB}: bound to C{ns_session}'s account,
    single-use, valid for C{config.cookie_lifetime} seconds.  Fires with
    the cookie once the directory holds it.
    """
    now = clock.seconds()
    cookie = new_cookie()
    d = directory.add_cookie(cookie, ticket_for(ns_session, now + config.cookie_lifetime), now)
    return d.addCallback(lambda _: cookie)


@implementer(IParticipant)
class SwitchboardSession:
    """
    One switchboard connection: logged out until C{USR} or C{ANS}, then a
    participant in one L{Conversation}.
    """

    role = "switchboard"

    def __init__(self, connection, server: "SwitchboardServer"):
        self.connection = connection
        self.server = server
        self.config = server.config
        self.phase = Phase.CONNECTED
        self.ticket: Optional[SwitchboardTicket] = None
        self.conversation: Optional[Conversation] = None
        self._calls = TokenBucket(server.call_rate, server.call_burst, server.clock.seconds)
        self.relay_prefix = b""
        self.ack_letters: frozenset = frozenset()

    @property
    def handle(self) -> str:
        return self.ticket.handle

    @property
    def name(self) -> str:
        return self.ticket.name

    @property
    def encoded_name(self) -> str:
        return self.ticket.encoded_name

    @property
    def caps(self) -> int:
        return self.ticket.caps

    @property
    def caps_ex(self) -> int:
        return self.ticket.caps_ex

    @property
    def instance(self) -> str:
        return self.ticket.instance

    @property
    def dialect(self) -> dialects.Dialect:
        return self.ticket.dialect

    @property
    def in_conversation(self) -> bool:
        return self.conversation is not None

    def send(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.send(data)

    def deliver(self, data: bytes) -> bool:
        """
        Send C{data}; whether it reached a connection still open.
        """
        return self.connection is not None and self.connection.deliver(data)

    # As a participant

    def joined(self, newcomer) -> None:
        names = _names_of(self.dialect, newcomer)
        if self.conversation is not None and (newcomer.handle == self.handle or self._user_already_there(newcomer)):
            # Another endpoint of a user already here: only MSNP16+ clients
            # see it, by its own name.
            names = names[:1] if self.dialect.has_multiple_points_of_presence and len(names) > 1 else []
        name, caps, caps_ex = _encoded_name_of(newcomer), getattr(newcomer, "caps", 0), getattr(newcomer, "caps_ex", 0)
        if names:
            self.deliver(b"".join(self.dialect.joi(who, name, caps, caps_ex) for who in names))

    def left(self, leaver, idle: bool) -> None:
        # Per endpoint from MSNP16 (handle;{guid}); the bare handle once the
        # user's last endpoint has left.
        names = _names_of(self.dialect, leaver)
        if self.conversation is not None and self.conversation.has_user(leaver.handle):
            names = names[:1] if len(names) > 1 else []
        if names:
            self.deliver(b"".join(wire.format_line("BYE", None, who, 1 if idle else None) for who in names))

    def _user_already_there(self, newcomer) -> bool:
        return any(p is not newcomer and p is not self for p in self.conversation.endpoints_of(newcomer.handle))

    def message(self, sender, payload: bytes, now: Optional[float] = None) -> bool:
        connection = self.connection
        if connection is None:
            return False
        try:
            prefix = sender.relay_prefix
        except AttributeError:
            # A participant of another front-end.
            prefix = _relay_prefix(sender.handle, _encoded_name_of(sender))
        data = prefix + b"%d\r\n" % len(payload) + payload
        # The connection's send(), written out, and being sent a message
        # counts as activity: this runs for every recipient of every message.
        if connection._closed:
            return False
        connection._last_heard = connection._seconds() if now is None else now
        connection._bytes_out.value += len(data)
        if connection._out.write(data) > connection.outbound_limit:
            connection._over_limit()
        return not connection._closed

    # Dispatch

    def command_received(self, command: wire.Command):
        name = command.name
        phases.check(self.role, phases.SWITCHBOARD, name, self.phase, default=frozenset())
        return getattr(self, "do_" + name)(command)

    # Logging in

    def do_USR(self, command):
        if len(command.args) != 2:
            raise CommandError(errors.AUTHENTICATION_FAILED, "malformed USR", close=True)
        handle, cookie = command.args

        def admitted(ticket):
            if ticket.session_id is not None:
                raise CommandError(errors.AUTHENTICATION_FAILED, "invitation cookie used to open a session", close=True)
            return self.server.open_conversation().addCallback(opened, ticket)

        def opened(conversation, ticket):
            if self.connection is None:
                self.server.close_conversation(conversation)
                return
            self._enter(ticket, conversation)
            self.send(wire.format_line("USR", command.trid, "OK", ticket.handle, ticket.encoded_name))
            conversation.join(self)
            log.info("{handle} opened switchboard session {session}", handle=ticket.handle, session=conversation.session_id)

        return self._redeem(cookie, handle, admitted)

    def do_ANS(self, command):
        if len(command.args) != 3:
            raise CommandError(errors.AUTHENTICATION_FAILED, "malformed ANS", close=True)
        handle, cookie, session_id = command.args

        def admitted(ticket):
            if ticket.session_id is None or ticket.session_id != session_id:
                raise CommandError(errors.AUTHENTICATION_FAILED, "cookie is for another session", close=True)
            conversation = self.server.conversations.get(session_id)
            if conversation is None or conversation.ended:
                raise CommandError(errors.AUTHENTICATION_FAILED, "session has ended", close=True)
            if participant_key(ticket) in conversation.participants:
                raise CommandError(errors.AUTHENTICATION_FAILED, "already in the session", close=True)
            self._enter(ticket, conversation)
            present = conversation.join(self)
            # MSNP16+: a participant with a point of presence is listed as
            # handle;{guid} and again as the bare handle; earlier dialects
            # see each user once.
            entries = []
            named = set()
            for other in _shown_to(self.dialect, present, self):
                names = _names_of(self.dialect, other)
                if other.handle in named:
                    names = names[:1]
                named.add(other.handle)
                entries.extend((who, other) for who in names)
            total = len(entries)
            lines = [
                self.dialect.iro(
                    command.trid, index, total, who, _encoded_name_of(other), getattr(other, "caps", 0), getattr(other, "caps_ex", 0)
                )
                for index, (who, other) in enumerate(entries, 1)
            ]
            lines.append(wire.format_line("ANS", command.trid, "OK"))
            self.send(b"".join(lines))
            log.info("{handle} joined switchboard session {session}", handle=ticket.handle, session=session_id)

        return self._redeem(cookie, handle, admitted)

    def _redeem(self, cookie: str, handle: str, admitted) -> Deferred:
        """
        Take C{cookie} from the directory (whatever happens next, it is
        used up) and call C{admitted(ticket)} if it belongs to C{handle}
        and has not expired; otherwise 911 and close.
        """
        self.phase = Phase.ADMITTING
        d = self.server.directory.redeem_cookie(cookie, self.server.clock.seconds())

        # MSNP16+ clients name their endpoint: handle;{machine-guid}.
        handle, _, instance = handle.partition(";")

        def redeemed(ticket):
            if self.connection is None:
                return None
            if instance and (ticket is None or instance.strip("{}").lower() != ticket.instance.lower()):
                ticket = None
            if ticket is None or ticket.handle != canonical_handle(handle):
                log.info("switchboard login refused for {handle}", handle=handle[: wire.MAX_HANDLE_BYTES])
                raise CommandError(errors.AUTHENTICATION_FAILED, "bad switchboard cookie", close=True)
            return admitted(ticket)

        return d.addCallback(redeemed)

    def _enter(self, ticket: SwitchboardTicket, conversation: Conversation) -> None:
        self.ticket = ticket
        self.conversation = conversation
        self.phase = Phase.IN_CONVERSATION
        # Fixed for the whole session: the name travels in the ticket and
        # a later change at the notification server does not reach it.
        self.relay_prefix = _relay_prefix(ticket.handle, ticket.encoded_name)
        self.ack_letters = frozenset(letter.encode("ascii") for letter in ticket.dialect.msg_ack_types)
        self.connection.logged_in()

    # In a conversation

    def do_CAL(self, command):
        if len(command.args) != 1:
            raise CloseConnection("malformed CAL")
        token = command.args[0]
        if not wire.is_valid_handle(token):
            raise CommandError(errors.INVALID_USERNAME)
        if not self._calls.take():
            raise CommandError(errors.CALLING_TOO_RAPIDLY)
        callee = canonical_handle(token)
        conversation = self.conversation
        now = self.server.clock.seconds()
        if callee == self.handle and self.dialect.has_multiple_points_of_presence:
            # WLM 2009 calls itself to bring the chat to its other points
            # of presence (rung here, all but this one), and waits for its
            # own JOI before it sends.
            self.send(
                wire.format_line("CAL", command.trid, "RINGING", conversation.session_id)
                + self.dialect.joi(self.handle, self.encoded_name, self.caps, self.caps_ex)
            )
            expires = now + self.config.cookie_lifetime
            d = self.server.messenger.conversations.invite(conversation, self, callee, expires, except_instance=self.instance)
            return d.addErrback(lambda failure: failure.trap(core_errors.UserOffline) and None)
        if callee == self.handle or conversation.has_user(callee) or conversation.is_ringing(callee, now):
            raise CommandError(errors.ALREADY_THERE)
        limit = self.config.max_sb_participants
        if limit and len(conversation.participants) + conversation.ringing_count(now) >= limit:
            raise CommandError(errors.SESSION_OVERLOAD)
        expires = now + self.config.cookie_lifetime
        d = self.server.messenger.conversations.invite(conversation, self, callee, expires)

        def ringing(_):
            self.send(wire.format_line("CAL", command.trid, "RINGING", conversation.session_id))

        def refused(failure):
            failure.trap(core_errors.UserOffline)
            raise CommandError(errors.USER_OFFLINE)

        return d.addCallbacks(ringing, refused)

    def do_MSG(self, command):
        args = command.args
        if len(args) != 1 or args[0] not in self.dialect.msg_ack_types:
            raise CloseConnection("bad MSG acknowledgement type")
        ack = args[0]
        payload = command.payload
        if ack == "D" and not _is_data_message(payload):
            raise CommandError(errors.MALFORMED_DATA_MESSAGE)
        delivered = self.conversation.relay(self, payload)
        if isinstance(delivered, Deferred):
            delivered.addCallback(_acknowledge_later, self.connection, ack.encode("ascii"), command.trid)
            return
        if ack == "A" or ack == "D":
            self.send((b"ACK %d\r\n" if delivered else b"NAK %d\r\n") % command.trid)
        elif ack == "N" and not delivered:
            self.send(b"NAK %d\r\n" % command.trid)

    # Leaving

    def do_OUT(self, command):
        self._leave()
        raise CloseConnection("left the switchboard")

    def idled_out(self) -> None:
        """
        Silent for the idle timeout: removed with C{BYE handle 1}.
        """
        self._leave(idle=True)
        if self.connection is not None:
            self.connection.close("idle in the switchboard")

    def _leave(self, idle: bool = False) -> None:
        conversation, self.conversation = self.conversation, None
        if conversation is None:
            return
        conversation.leave(self, idle)
        if conversation.ended:
            self.server.close_conversation(conversation)
            log.info("switchboard session {session} ended", session=conversation.session_id)

    def shut_down(self) -> None:
        # The connection closes next; the others learn it through BYE.
        self._leave()

    def connection_lost(self) -> None:
        self._leave()
        self.connection = None


def _relay_prefix(handle: str, encoded_name: str) -> bytes:
    return ("MSG %s %s " % (handle, encoded_name)).encode("utf-8")


def _shown_to(dialect: dialects.Dialect, present: list, me) -> list:
    """
    The participants a newcomer of C{dialect} is told of: every endpoint
    from MSNP16, else one per user (not the newcomer's own).
    """
    if dialect.has_multiple_points_of_presence:
        return present
    seen, shown = {me.handle}, []
    for other in present:
        if other.handle not in seen:
            seen.add(other.handle)
            shown.append(other)
    return shown


def _names_of(dialect: dialects.Dialect, participant) -> list[str]:
    """
    How C{participant} is named in JOI/IRO to a client of C{dialect}:
    from MSNP16, C{handle;{guid}} and then the bare handle when it has a
    point of presence.
    """
    instance = getattr(participant, "instance", "")
    if instance and dialect.has_multiple_points_of_presence:
        return [f"{participant.handle};{{{instance}}}", participant.handle]
    return [participant.handle]


def _encoded_name_of(participant) -> str:
    encoded = getattr(participant, "encoded_name", None)
    return encoded if encoded is not None else wire.url_encode(participant.name)


def _acknowledge_later(delivered: bool, connection, letter: bytes, trid: int) -> None:
    """
    ACK or NAK a message whose delivery was only known later (a federated
    participant's server answered), unless the sender has gone.
    """
    if letter == b"A" or letter == b"D":
        answer = (b"ACK %d\r\n" if delivered else b"NAK %d\r\n") % trid
    elif letter == b"N" and not delivered:
        answer = b"NAK %d\r\n" % trid
    else:
        return
    if connection is not None:
        connection.deliver(answer)


def _is_data_message(payload: bytes) -> bool:
    """
    Whether a MSG D payload is what D is for: binary peer-to-peer data.
    """
    head = payload.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            return value.strip().lower().startswith(P2P_CONTENT_TYPE)
    return False


class SwitchboardProtocol(CommandProtocol):
    """
    A switchboard connection: closed if it does not log in within
    C{sb_auth_timeout}; once in a conversation, removed with C{BYE handle
    1} after C{sb_idle_timeout} in which it sent nothing and was sent no
    message.

    Messages are most of what a switchboard reads, so once in a
    conversation the framer tries the plain C{MSG} parser first
    (L{wire.plain_msg_parser}), and a message it takes is relayed straight
    from its frame; anything else, or a message that needs an answer other
    than ACK/NAK, goes through the general parser and L{SwitchboardSession}.
    """

    role = "switchboard"
    payload_commands = frozenset({"MSG"})
    # Whether plain messages take the fast path (tests turn it off to
    # compare).
    fast_path = True

    _login_deadline = None
    _idle_call = None
    _idle_timeout = 0.0
    _last_heard = 0.0

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.session is None:
            return
        factory = self.factory
        config = factory.config
        # A longer MSG is refused by closing before its payload is read.
        self.payload_limit = config.max_sb_payload
        self.callLater = factory.clock.callLater
        self._seconds = factory.clock.seconds
        self._messages = TokenBucket(
            max(config.sb_message_rate, config.command_rate),
            max(config.sb_message_burst, config.command_burst),
            factory.clock.seconds,
        )
        # A fixed deadline, not an idle timer: talking without logging in
        # does not buy time.
        self._login_deadline = self.callLater(config.sb_auth_timeout, self._login_overdue)

    def _login_overdue(self) -> None:
        self._login_deadline = None
        self.close("no switchboard login in time")

    def logged_in(self) -> None:
        deadline, self._login_deadline = self._login_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()
        # Activity only stamps the time; the timer looks at the stamp when
        # it fires, instead of being moved on every message.
        self._idle_timeout = self.factory.config.sb_idle_timeout
        self._last_heard = self._seconds()
        if self._idle_timeout:
            self._idle_call = self.callLater(self._idle_timeout, self._idle_due)
        session = self.session
        if self.fast_path and session is not None:
            self.framer.parse_fast = wire.plain_msg_parser(session.ack_letters, self.payload_limit)

    def _idle_due(self) -> None:
        self._idle_call = None
        if self._closed:
            return
        remaining = self._last_heard + self._idle_timeout - self._seconds()
        if remaining > 0:
            self._idle_call = self.callLater(remaining, self._idle_due)
        else:
            self.timeoutConnection()

    def connectionLost(self, reason=None) -> None:
        deadline, self._login_deadline = self._login_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()
        idle, self._idle_call = self._idle_call, None
        if idle is not None and idle.active():
            idle.cancel()
        super().connectionLost(reason)

    def allowance_for(self, name: str) -> TokenBucket:
        return self._messages if name == "MSG" else self._rate

    def deliver(self, data: bytes) -> bool:
        """
        Send C{data}; False when this connection is closing or closed, or
        was dropped for not reading.
        """
        if self._closed:
            return False
        self.send(data)
        return not self._closed

    def timeoutConnection(self) -> None:
        session = self.session
        if session is not None and session.in_conversation:
            session.idled_out()
        else:
            self.close("idle in the switchboard")

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        As for every role (L{CommandProtocol.dataReceived}, written out
        here because this loop carries every message), with plain messages
        (the tuples the fast parser makes) relayed here, exactly as
        L{SwitchboardSession.do_MSG} would; one that could get another
        answer goes the general way.
        """
        if self._closed:
            return
        self._last_heard = now = self._seconds()
        self._bytes_in.value += len(data)
        framer = self.framer
        # A read that is one whole plain MSG (the usual one) skips the
        # framer's queue.
        pending = None if self._reading or self._paused else framer.whole_fast_frame(data)
        if pending is None:
            framer.feed(data)
            if self._reading:
                return
        self._reading = True
        try:
            while True:
                if pending is not None:
                    frame, pending = pending, None
                else:
                    if framer.drained or self._paused or self._closed:
                        break
                    frame = framer.next_frame()
                    if frame is None:
                        break
                if type(frame) is tuple:
                    session = self.session
                    conversation = session.conversation if session is not None else None
                    trid, letter, payload = frame
                    if (
                        conversation is not None
                        and (letter != b"D" or _is_data_message(payload))
                        and self._messages.take(now)
                    ):
                        self._strikes = 0
                        _MSG_COMMANDS.value += 1
                        delivered = conversation.relay(session, payload, now)
                        if delivered.__class__ is not bool:
                            delivered.addCallback(_acknowledge_later, self, letter, trid)
                            continue
                        if letter == b"A" or letter == b"D":
                            answer = (b"ACK %d\r\n" if delivered else b"NAK %d\r\n") % trid
                        elif letter == b"N" and not delivered:
                            answer = b"NAK %d\r\n" % trid
                        else:
                            continue
                        # send(), written out as in SwitchboardSession.message().
                        if not self._closed:
                            self._bytes_out.value += len(answer)
                            if self._out.write(answer) > self.outbound_limit:
                                self._over_limit()
                        continue
                    frame = wire.plain_msg_command(frame)
                self.frame_received(frame)
        finally:
            self._reading = False


class SwitchboardServer(Factory):
    """
    Everything switchboard sessions share, and the conversations held here.
    C{call_burst} invitations may be sent at once by one connection, then
    C{call_rate} per second; more is answered with 713; C{MSG} likewise
    past the config's C{sb_message_burst} and C{sb_message_rate} (see
    protocol-notes/switchboard.md).
    """

    protocol = SwitchboardProtocol
    call_burst = 10
    call_rate = 1.0

    def __init__(self, config, messenger, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.messenger = messenger
        self.directory = messenger.directory
        self.clock = clock
        self.conversations: dict[str, Conversation] = {}

    def make_session(self, connection) -> SwitchboardSession:
        return SwitchboardSession(connection, self)

    def open_conversation(self) -> Deferred:
        """
        A new, empty conversation under an id no other has, held here.
        """

        def opened(conversation):
            self.conversations[conversation.session_id] = conversation
            metrics.SWITCHBOARD_SESSIONS.inc()
            return conversation

        return self.messenger.conversations.open(self.config.switchboard_address).addCallback(opened)

    def close_conversation(self, conversation: Conversation) -> None:
        if self.conversations.get(conversation.session_id) is conversation:
            del self.conversations[conversation.session_id]
            self.messenger.conversations.close(conversation)
