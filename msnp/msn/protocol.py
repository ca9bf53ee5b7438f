"""
The Twisted side of every role: a LineReceiver that frames commands with
L{msnp.msn.wire}, reads payloads byte-exact, hands each command to the role's
session object in order, and writes what it answers.

A session method may return a Deferred (a store write, a login); reading
pauses until it fires, so pipelined commands are answered in the order they
were sent.

Hardening lives here too, so that every role gets it: a line-length cut-off
that frees the buffer at once, a per-connection command rate limit, a cap on
what may queue for a client that stops reading, an idle lease, and a count
of connections per source address (see protocol-notes/hardening.md).
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from msnp.msn import wire
from msnp.msn.errors import INTERNAL_ERROR, CloseConnection, CommandError, code_for
from msnp.store.records import StoreUnavailable

# Which ServerConfig setting holds the idle lease of each role; roles not
# named here (the switchboard keeps its own idle rule) have none.
_LEASE_SETTINGS = {"notification": "notification_lease", "dispatch": "dispatch_lease"}


class TokenBucket:
    """
    At most C{burst} events at once, refilled at C{rate} per second of
    C{now()}.
    """

    def __init__(self, rate: float, burst: int, now: Callable[[], float]):
        self._rate = rate
        self._burst = burst
        self._now = now
        self._tokens = float(burst)
        self._stamp = now()

    def take(self, now: Optional[float] = None) -> bool:
        """
        Take one event if the allowance has one; C{now} saves reading the
        clock again when the caller just did.
        """
        if now is None:
            now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ConnectionRegistry:
    """
    The open connections of one listening role, counted per source address
    so that one address cannot take them all.
    """

    def __init__(self, per_address_limit: int):
        self.per_address_limit = per_address_limit
        self._by_address: dict[str, set] = {}

    def admit(self, connection, address: str) -> bool:
        held = self._by_address.setdefault(address, set())
        if self.per_address_limit and len(held) >= self.per_address_limit:
            if not held:
                del self._by_address[address]
            return False
        held.add(connection)
        return True

    def forget(self, connection, address: str) -> None:
        held = self._by_address.get(address)
        if held is not None:
            held.discard(connection)
            if not held:
                del self._by_address[address]

    def count(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def __iter__(self) -> Iterator:
        return iter([c for held in self._by_address.values() for c in held])

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_address.values())


def connections_of(factory) -> ConnectionRegistry:
    """
    The registry of C{factory}'s open connections, made on first use from
    its config.
    """
    registry = getattr(factory, "connections", None)
    if registry is None:
        registry = ConnectionRegistry(factory.config.max_connections_per_address)
        factory.connections = registry
    return registry


# Past this many times the outbound limit a client is dropped at once,
# without waiting out the grace period.
OUTBOUND_HARD_FACTOR = 4


def send_queue_of(transport):
    """
    The transport under C{transport} (itself, or the TCP transport under a
    TLS one) whose C{dataBuffer}, C{offset} and C{_tempDataLen} say what
    the peer has not taken yet; None when there is none.
    """
    while transport is not None:
        if all(hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def outbound_buffered(transport) -> int:
    """
    Bytes written to C{transport} that the peer has not taken yet.
    """
    queue = send_queue_of(transport)
    if queue is None:
        return 0
    return len(queue.dataBuffer) - queue.offset + queue._tempDataLen


class CommandProtocol(LineReceiver, TimeoutMixin):
    """
    One client connection.  C{factory.make_session(self)} builds the role's
    session, which must offer C{command_received(command)} and
    C{connection_lost()}.
    """

    delimiter = b"\n"
    log = Logger()
    role = "connection"
    payload_commands: frozenset = frozenset()
    # Write straight to a plain TCP socket when nothing is queued for it:
    # saves the epoll registration and the extra reactor turn per reply.
    write_through = True

    def __init__(self) -> None:
        self.session = None
        self._payload_command: Optional[wire.Command] = None
        self._payload_needed = 0
        self._payload_chunks: list[bytes] = []
        self._closed = False
        self._close_waiters: list = []
        self._admitted = False
        self._payload_refused = False
        self._strikes = 0
        self._backlog_check = None
        self._send_queue = None
        self._direct_socket = None
        self._close_reason = ""
        self.peer = "?"
        self.address = "?"

    def on_closed(self, waiter) -> None:
        """
        Fire the Deferred C{waiter} when this connection has closed.
        """
        if self.session is None and self._closed:
            waiter.callback(None)
        else:
            self._close_waiters.append(waiter)

    # Connection lifecycle

    def connectionMade(self) -> None:
        config = self.factory.config
        clock = self.factory.clock
        self.MAX_LENGTH = config.max_line_length
        self.payload_limit = config.max_payload_length
        self.outbound_limit = config.max_outbound_buffer
        self.outbound_grace = config.outbound_grace
        self.flood_strikes = config.flood_strikes
        self._rate = TokenBucket(config.command_rate, config.command_burst, clock.seconds)
        peer = self.transport.getPeer()
        self.address = str(getattr(peer, "host", peer))
        self.peer = f"{self.address}:{getattr(peer, 'port', '')}"
        self.callLater = clock.callLater
        if not connections_of(self.factory).admit(self, self.address):
            self.log.info("{role} refused {peer}: too many connections from that address", role=self.role, peer=self.peer)
            self._closed = True
            self.transport.abortConnection()
            return
        self._admitted = True
        # Found once: the chain of transports does not change, and walking
        # it after every write costs more than the write itself.
        if self.outbound_limit:
            self._send_queue = send_queue_of(self.transport)
        if (
            self.write_through
            and isinstance(self.transport, tcp.Connection)
            and not self.transport.TLS
            and send_queue_of(self.transport) is self.transport
        ):
            # Only where Twisted's queue is the one send() knows how to
            # read; any other transport takes the ordinary write path.
            self._direct_socket = self.transport.socket
        # Replies and notifications are small lines: without this, Nagle
        # holds each one back until the client's delayed ACK (~40 ms).
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        self.session = self.factory.make_session(self)
        self.log.info("{role} connection from {peer}", role=self.role, peer=self.peer)
        lease = getattr(config, _LEASE_SETTINGS.get(self.role, ""), None)
        if lease:
            self.setTimeout(lease)

    def connectionLost(self, reason: Failure = None) -> None:
        self._closed = True
        self.setTimeout(None)
        if self._backlog_check is not None:
            self._backlog_check.cancel()
            self._backlog_check = None
        self._buffer = b""
        self._payload_chunks = []
        if not self._admitted:
            return
        self._admitted = False
        connections_of(self.factory).forget(self, self.address)
        if self.session is not None:
            session, self.session = self.session, None
            session.connection_lost()
        if self._close_reason:
            # One line per close: why the server ended it, if it did.
            self.log.info("{role} connection from {peer} closed: {reason}", role=self.role, peer=self.peer, reason=self._close_reason)
        else:
            self.log.info("{role} connection from {peer} closed", role=self.role, peer=self.peer)
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # Output

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        direct = self._direct_socket
        if direct is not None:
            transport = self.transport
            # Nothing queued: hand the bytes to the socket now instead of
            # waking the reactor for writability and writing them later.
            if not transport._tempDataLen and transport.offset == len(transport.dataBuffer) and not transport.disconnecting:
                try:
                    sent = direct.send(data)
                except OSError:
                    # Full or failing: Twisted queues it and finds the error.
                    sent = 0
                if sent == len(data):
                    return
                data = data[sent:]
        self.transport.write(data)
        queue = self._send_queue
        if queue is None:
            return
        queued = len(queue.dataBuffer) - queue.offset + queue._tempDataLen
        limit = self.outbound_limit
        if queued <= limit:
            return
        if queued > limit * OUTBOUND_HARD_FACTOR:
            self._drop_slow_reader()
        elif self._backlog_check is None:
            # A burst written within one turn of the reactor is over the
            # limit before the socket had a chance to take it; only a
            # client still behind after the grace period is too slow.
            self._backlog_check = self.callLater(self.outbound_grace, self._check_backlog)

    def _check_backlog(self) -> None:
        self._backlog_check = None
        if not self._closed and outbound_buffered(self._send_queue) > self.outbound_limit:
            self._drop_slow_reader()

    def _drop_slow_reader(self) -> None:
        # The client stopped reading: drop it and what is queued for it
        # rather than hold ever more memory.
        self._close_reason = "not reading what is sent"
        self._closed = True
        self.transport.abortConnection()

    def shut_down(self) -> None:
        """
        The server is stopping: say so (C{OUT SSD}) and close.
        """
        session = self.session
        if session is not None and hasattr(session, "shut_down"):
            session.shut_down()
        else:
            self.send(wire.format_line("OUT", None, "SSD"))
        self.close("server shutting down")

    def close(self, reason: str = "") -> None:
        """
        Close deliberately once what was written has been sent.
        """
        if not self._closed:
            self._closed = True
            self._close_reason = reason
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.close("silent for too long")

    # Input

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self.resetTimeout()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._closed:
            return
        try:
            command, length = wire.parse_client_line(line, self.payload_commands, self.payload_limit)
        except wire.WireError as error:
            allowed = self._rate.take()
            if allowed or (error.code is None and error.reason != wire.BLANK_LINE):
                self._wire_error(error)
            else:
                # Blank lines count too, or a flood of them would go on
                # for ever.
                self._refuse_flood(None, error.trid)
            return
        allowed = self.allowance_for(command.name).take()
        if allowed:
            self._strikes = 0
        if length:
            # The payload is read even when the command is refused, so the
            # next line is found where the client put it.
            self._payload_command = command
            self._payload_refused = not allowed
            self._payload_needed = length
            self._payload_chunks = []
            self.setRawMode()
            return
        if not allowed:
            self._refuse_flood(command.name, command.trid)
            return
        if length == 0:
            command = wire.Command(command.name, command.trid, command.args, b"")
        self._dispatch(command)

    def allowance_for(self, name: str) -> TokenBucket:
        """
        The rate limit command C{name} counts against.
        """
        return self._rate

    def _refuse_flood(self, name: Optional[str], trid: Optional[int]) -> None:
        self._strikes += 1
        if self._strikes > self.flood_strikes:
            self.close("command flood")
        elif trid is not None:
            self.send(wire.format_error(wire.flood_error_code(name), trid))

    def rawDataReceived(self, data: bytes) -> None:
        taken = data[: self._payload_needed]
        self._payload_chunks.append(taken)
        self._payload_needed -= len(taken)
        if self._payload_needed:
            return
        pending = self._payload_command
        command = wire.Command(pending.name, pending.trid, pending.args, b"".join(self._payload_chunks))
        self._payload_command = None
        self._payload_chunks = []
        # Still inside dataReceived: the rest only joins the buffer and is
        # parsed as lines after this command.
        self.setLineMode(data[len(taken) :])
        if self._payload_refused:
            self._payload_refused = False
            self._refuse_flood(command.name, command.trid)
            return
        self._dispatch(command)

    def lineLengthExceeded(self, line: bytes) -> None:
        # LineReceiver has already emptied its buffer; stop reading at once
        # rather than wait for the rest of a line that may never end.
        self._buffer = b""
        self._close_reason = f"line longer than {self.MAX_LENGTH} bytes"
        self._closed = True
        self.transport.abortConnection()

    def _wire_error(self, error: wire.WireError) -> None:
        if error.code is None:
            if error.reason != wire.BLANK_LINE:
                self.close(error.reason)
            return
        self.send(wire.format_error(error.code, error.trid))

    def _dispatch(self, command: wire.Command) -> None:
        session = self.session
        if session is None:
            return
        try:
            result = session.command_received(command)
        except Exception:
            self._command_failed(Failure(), command)
            return
        if isinstance(result, Deferred):
            if result.called:
                result.addErrback(self._command_failed, command)
                return
            self.pauseProducing()
            result.addErrback(self._command_failed, command)
            result.addBoth(self._resume)

    def _resume(self, result) -> None:
        if not self._closed:
            self.resumeProducing()

    def _command_failed(self, failure: Failure, command: wire.Command) -> None:
        error = failure.value
        if isinstance(error, CommandError):
            self.send(wire.format_error(error.code, command.trid))
            if error.close:
                self.close(error.reason or f"error {error.code}")
        elif isinstance(error, CloseConnection):
            self.close(error.reason)
        elif isinstance(error, StoreUnavailable):
            # Any command that needed the database while it is out of reach
            # (a login too): nothing was changed, and the client is told so.
            self.log.info(
                "{role}: {command} refused, database unavailable: {error}",
                role=self.role,
                command=command.name,
                error=error,
            )
            self.send(wire.format_error(code_for(error), command.trid))
        else:
            self.log.failure("{role} failed on {command}", failure, role=self.role, command=command.name)
            self.send(wire.format_error(INTERNAL_ERROR, command.trid))
