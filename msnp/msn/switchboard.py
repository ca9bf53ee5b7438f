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
from twisted.protocols.basic import LineReceiver

from msnp.msn import dialects, errors, wire
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.protocol import CommandProtocol, TokenBucket
from msnp.store.records import canonical_handle

log = Logger()

# Content type a MSG D payload must carry (MSNP9+ binary data).
P2P_CONTENT_TYPE = b"application/x-msnmsgrp2p"


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
    The ticket of the user behind notification session C{ns_session}.
    """
    return SwitchboardTicket(
        handle=ns_session.handle,
        encoded_name=wire.url_encode(ns_session.user.friendly_name),
        dialect_version=ns_session.dialect.version,
        caps=ns_session.caps,
        expires=expires,
        session_id=session_id,
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


class Conversation:
    """
    One switchboard session: its participants in the order they joined and
    the invitations still ringing.
    """

    def __init__(self, session_id: str, address: str):
        self.session_id = session_id
        self.address = address
        self.participants: dict[str, "SwitchboardSession"] = {}
        self._ringing: dict[str, float] = {}  # callee -> when the invitation lapses

    def __repr__(self) -> str:
        return f"<Conversation {self.session_id} {list(self.participants)}>"

    @property
    def ended(self) -> bool:
        return not self.participants

    def is_ringing(self, handle: str, now: float) -> bool:
        expires = self._ringing.get(handle)
        if expires is None:
            return False
        if expires <= now:
            del self._ringing[handle]
            return False
        return True

    def ringing_count(self, now: float) -> int:
        return sum(1 for handle in list(self._ringing) if self.is_ringing(handle, now))

    def ring(self, handle: str, expires: float) -> None:
        self._ringing[handle] = expires

    def join(self, newcomer: "SwitchboardSession") -> list["SwitchboardSession"]:
        """
        Add C{newcomer}; tell the others (C{JOI}) and return who was there
        before, in joining order, for the newcomer's roster.
        """
        present = list(self.participants.values())
        self._ringing.pop(newcomer.handle, None)
        self.participants[newcomer.handle] = newcomer
        rendered: dict = {}
        for other in present:
            line = rendered.get(other.dialect)
            if line is None:
                line = rendered[other.dialect] = other.dialect.joi(newcomer.handle, newcomer.encoded_name, newcomer.caps)
            other.deliver(line)
        return present

    def leave(self, leaver: "SwitchboardSession", idle: bool = False) -> None:
        """
        Take C{leaver} out and tell the rest (C{BYE handle}, or
        C{BYE handle 1} when the server removed them for idling).
        """
        if self.participants.get(leaver.handle) is not leaver:
            return
        del self.participants[leaver.handle]
        line = wire.format_line("BYE", None, leaver.handle, 1 if idle else None)
        for other in list(self.participants.values()):
            other.deliver(line)

    def relay(self, sender: "SwitchboardSession", payload: bytes, now: Optional[float] = None) -> bool:
        """
        Send C{payload} from C{sender} to every other participant at time
        C{now} (read from the clock if not given); True when all of them
        (at least one) received it.
        """
        # One write per participant: header and payload together.
        data = sender.relay_prefix + b"%d\r\n" % len(payload) + payload
        delivered = None
        for other in self.participants.values():
            if other is sender:
                continue
            connection = other.connection
            if connection is not None and connection.relay_message(data, now):
                if delivered is None:
                    delivered = True
            else:
                delivered = False
        return bool(delivered)


class SwitchboardSession:
    """
    One switchboard connection: logged out until C{USR} or C{ANS}, then a
    participant in one L{Conversation}.
    """

    def __init__(self, connection, server: "SwitchboardServer"):
        self.connection = connection
        self.server = server
        self.config = server.config
        self.ticket: Optional[SwitchboardTicket] = None
        self.conversation: Optional[Conversation] = None
        self._logging_in = False
        self._calls = TokenBucket(server.call_rate, server.call_burst, server.clock.seconds)
        self.relay_prefix = b""
        self.ack_letters: frozenset = frozenset()

    @property
    def handle(self) -> str:
        return self.ticket.handle

    @property
    def encoded_name(self) -> str:
        return self.ticket.encoded_name

    @property
    def caps(self) -> int:
        return self.ticket.caps

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

    # Dispatch

    def command_received(self, command: wire.Command):
        name = command.name
        if name == "OUT":
            return self.do_OUT(command)
        if name in ("USR", "ANS"):
            if self.ticket is not None or self._logging_in:
                raise CommandError(errors.ALREADY_LOGGED_IN)
            return getattr(self, "do_" + name)(command)
        if name in ("CAL", "MSG"):
            if self.conversation is None:
                raise CommandError(errors.NOT_LOGGED_IN)
            return getattr(self, "do_" + name)(command)
        raise CommandError(errors.SYNTAX_ERROR)

    # Logging in

    def do_USR(self, command):
        if len(command.args) != 2:
            raise CommandError(errors.AUTHENTICATION_FAILED, "malformed USR", close=True)
        handle, cookie = command.args

        def admitted(ticket):
            if ticket.session_id is not None:
                raise CommandError(errors.AUTHENTICATION_FAILED, "invitation cookie used to open a session", close=True)
            conversation = self.server.open_conversation()
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
            conversation = self.server.directory.find_conversation(session_id)
            if conversation is None or conversation.ended:
                raise CommandError(errors.AUTHENTICATION_FAILED, "session has ended", close=True)
            if ticket.handle in conversation.participants:
                raise CommandError(errors.AUTHENTICATION_FAILED, "already in the session", close=True)
            self._enter(ticket, conversation)
            present = conversation.join(self)
            total = len(present)
            lines = [
                self.dialect.iro(command.trid, index, total, other.handle, other.encoded_name, other.caps)
                for index, other in enumerate(present, 1)
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
        self._logging_in = True
        d = self.server.directory.redeem_cookie(cookie, self.server.clock.seconds())

        def redeemed(ticket):
            self._logging_in = False
            if self.connection is None:
                return None
            if ticket is None or ticket.handle != canonical_handle(handle):
                log.info("switchboard login refused for {handle}", handle=handle[: wire.MAX_HANDLE_BYTES])
                raise CommandError(errors.AUTHENTICATION_FAILED, "bad switchboard cookie", close=True)
            return admitted(ticket)

        return d.addCallback(redeemed)

    def _enter(self, ticket: SwitchboardTicket, conversation: Conversation) -> None:
        self.ticket = ticket
        self.conversation = conversation
        # Fixed for the whole session: the name travels in the ticket and
        # a later change at the notification server does not reach it.
        self.relay_prefix = ("MSG %s %s " % (ticket.handle, ticket.encoded_name)).encode("utf-8")
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
        clock = self.server.clock
        now = clock.seconds()
        if callee == self.handle or callee in conversation.participants or conversation.is_ringing(callee, now):
            raise CommandError(errors.ALREADY_THERE)
        limit = self.config.max_sb_participants
        if limit and len(conversation.participants) + conversation.ringing_count(now) >= limit:
            raise CommandError(errors.SESSION_OVERLOAD)
        directory = self.server.directory
        callee_session = directory.find(callee)
        if callee_session is None or not callee_session.accepts_invitation_from(self.handle):
            raise CommandError(errors.USER_OFFLINE)
        expires = now + self.config.cookie_lifetime
        cookie = new_cookie()
        ticket = ticket_for(callee_session, expires, conversation.session_id)
        d = directory.add_cookie(cookie, ticket, now)

        def stored(_):
            conversation.ring(callee, expires)
            callee_session.ring(
                conversation.session_id, conversation.address, cookie, self.handle, self.encoded_name
            )
            self.send(wire.format_line("CAL", command.trid, "RINGING", conversation.session_id))

        return d.addCallback(stored)

    def do_MSG(self, command):
        args = command.args
        if len(args) != 1 or args[0] not in self.dialect.msg_ack_types:
            raise CloseConnection("bad MSG acknowledgement type")
        ack = args[0]
        payload = command.payload
        if ack == "D" and not _is_data_message(payload):
            raise CommandError(errors.MALFORMED_DATA_MESSAGE)
        delivered = self.conversation.relay(self, payload)
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
            self.server.directory.remove_conversation(conversation)
            log.info("switchboard session {session} ended", session=conversation.session_id)

    def shut_down(self) -> None:
        # The connection closes next; the others learn it through BYE.
        self._leave()

    def connection_lost(self) -> None:
        self._leave()
        self.connection = None


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
    conversation a read that starts with whole C{MSG} commands in the shape
    clients send (L{wire.parse_plain_msg}) is relayed straight from the
    bytes; anything else, or a message that needs an answer other than
    ACK/NAK, goes through the general parser and L{SwitchboardSession}.
    """

    role = "switchboard"
    payload_commands = frozenset({"MSG"})

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

    def relay_message(self, data: bytes, now: Optional[float] = None) -> bool:
        """
        Deliver a relayed C{MSG}; being sent a message counts as activity.
        """
        if self._closed:
            return False
        self._last_heard = self._seconds() if now is None else now
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
        if self._closed:
            return
        self._last_heard = self._seconds()
        session = self.session
        if (
            session is not None
            and session.conversation is not None
            and self.line_mode
            and not self._busyReceiving
            and not self.paused
        ):
            if self._buffer:
                data = self._buffer + data
                self._buffer = b""
            data = self._relay_plain_messages(session, data)
            if not data or self._closed:
                return
        LineReceiver.dataReceived(self, data)

    def _relay_plain_messages(self, session: SwitchboardSession, data: bytes) -> bytes:
        """
        Relay the whole plain C{MSG} commands at the start of C{data} and
        return what follows them, for the general path.  Each one is
        handled exactly as L{SwitchboardSession.do_MSG} would; anything
        that could get another answer stops the loop before it is taken.
        """
        conversation = session.conversation
        letters = session.ack_letters
        payload_limit = self.payload_limit
        line_limit = self.MAX_LENGTH
        messages = self._messages
        now = self._last_heard
        position = 0
        end = len(data)
        while position < end:
            newline = data.find(b"\n", position)
            if newline < 0 or newline - position > line_limit:
                break
            parsed = wire.parse_plain_msg(data[position:newline], letters, payload_limit)
            if parsed is None:
                break
            trid, letter, length = parsed
            start = newline + 1
            stop = start + length
            if stop > end:
                break
            payload = data[start:stop]
            if letter == b"D" and not _is_data_message(payload):
                break
            if not messages.take(now):
                break
            self._strikes = 0
            position = stop
            delivered = conversation.relay(session, payload, now)
            if letter == b"A" or letter == b"D":
                self.send((b"ACK %d\r\n" if delivered else b"NAK %d\r\n") % trid)
            elif letter == b"N" and not delivered:
                self.send(b"NAK %d\r\n" % trid)
            if self._closed:
                return b""
        return data[position:] if position else data


class SwitchboardServer(Factory):
    """
    Everything switchboard sessions share.  C{call_burst} invitations may
    be sent at once by one connection, then C{call_rate} per second; more
    is answered with 713; C{MSG} likewise past the config's
    C{sb_message_burst} and C{sb_message_rate} (see
    protocol-notes/switchboard.md).
    """

    protocol = SwitchboardProtocol
    call_burst = 10
    call_rate = 1.0

    def __init__(self, config, directory, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.directory = directory
        self.clock = clock

    def make_session(self, connection) -> SwitchboardSession:
        return SwitchboardSession(connection, self)

    def open_conversation(self) -> Conversation:
        """
        A new, empty session under an id no other session has.
        """
        while True:
            conversation = Conversation(str(secrets.randbelow(9 * 10**8) + 10**8), self.config.switchboard_address)
            if self.directory.add_conversation(conversation):
                return conversation
