"""
The Twisted side of every role: a plain Protocol that feeds what it reads
to a L{msnp.msn.framing.Framer}, hands each command (with its payload) to
the role's session object in order, and writes what it answers.

A session method may return a Deferred (a store write, a login); the
adapter stops pulling frames and pauses the transport until it fires, so
pipelined commands are answered in the order they were sent.

Hardening lives here too, so that every role gets it: a line-length cut-off
that frees the buffer at once, a per-connection command rate limit, a cap on
what may queue for a client that stops reading, an idle lease, and a count
of connections per source address (see protocol-notes/hardening.md and
protocol-notes/framing.md).
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from msnp import metrics, write_through
from msnp.msn import dialects, wire
from msnp.msn.errors import INTERNAL_ERROR, CloseConnection, CommandError, code_for
from msnp.msn.framing import Framer, LineTooLong
from msnp.directory.interface import DirectoryUnavailable
from msnp.store.records import StoreUnavailable

# Which ServerConfig setting holds the idle lease of each role; roles not
# named here (the switchboard keeps its own idle rule) have none.
_LEASE_SETTINGS = {"notification": "notification_lease", "dispatch": "dispatch_lease"}


class TokenBucket:
    """
    At most C{burst} events at once, refilled at C{rate} per second of
    C{now()}.
    """

    # One or two per connection.
    __slots__ = ("_rate", "_burst", "_now", "_tokens", "_stamp")

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


# Command names counted under their own label; anything else a client
# sends is counted as "other".
SWITCHBOARD_COMMANDS = frozenset({"ANS", "CAL", "MSG", "OUT", "USR"})


def counted_command(name: str) -> str:
    if name in SWITCHBOARD_COMMANDS or dialects.is_ns_command(name):
        return name
    return metrics.OTHER_COMMAND


class CommandProtocol(Protocol, TimeoutMixin):
    """
    One client connection.  C{factory.make_session(self)} builds the role's
    session, which must offer C{command_received(command)} and
    C{connection_lost()}.
    """

    log = Logger()
    role = "connection"
    payload_commands: frozenset = frozenset()
    # Write straight to a plain TCP socket when nothing is queued: saves
    # the epoll registration and the extra reactor turn per reply (see
    # msnp.write_through).
    write_through = True

    def __init__(self) -> None:
        self.session = None
        self.framer: Optional[Framer] = None
        self._closed = False
        self._close_waiters: list = []
        self._admitted = False
        self._paused = False
        self._reading = False
        self._strikes = 0
        self._backlog_check = None
        # How this connection writes (msnp.write_through.outbound).
        self._out = None
        self._close_reason = ""
        self.peer = "?"
        self.address = "?"
        self._bytes_in = metrics.RECEIVED_BYTES.labels(self.role)
        self._bytes_out = metrics.SENT_BYTES.labels(self.role)

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
        self.max_line_length = config.max_line_length
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
        self.framer = Framer(self.parse_line, self.max_line_length)
        # Found once: the chain of transports does not change, and walking
        # it after every write costs more than the write itself.
        self._out = write_through.outbound(self.transport, self.write_through, bool(self.outbound_limit))
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
        if self.framer is not None:
            self.framer.close()
        if not self._admitted:
            return
        self._admitted = False
        connections_of(self.factory).forget(self, self.address)
        account = None
        if self.session is not None:
            session, self.session = self.session, None
            account = getattr(session, "handle", None)
            session.connection_lost()
        # One line per close, naming the account and why the server ended
        # it, when there is one.
        self.log.info(
            "{role} connection from {peer}{account_text} closed{reason_text}",
            role=self.role,
            peer=self.peer,
            account=account,
            reason=self._close_reason,
            account_text=f" ({account})" if account else "",
            reason_text=f": {self._close_reason}" if self._close_reason else "",
            msnp_event="disconnection",
        )
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # Output

    @property
    def writes_through(self) -> bool:
        """
        Whether this connection writes straight to its socket while
        nothing is queued for it.
        """
        return self.write_through and self.transport is not None and write_through.writes_through(self.transport)

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        self._bytes_out.value += len(data)
        if self._out.write(data) > self.outbound_limit:
            self._over_limit()

    def _over_limit(self) -> None:
        """
        More than the outbound limit is queued for the client.
        """
        if self._out.queued() > self.outbound_limit * OUTBOUND_HARD_FACTOR:
            self._drop_slow_reader()
        elif self._backlog_check is None:
            # A burst written within one turn of the reactor is over the
            # limit before the socket had a chance to take it; only a
            # client still behind after the grace period is too slow.
            self._backlog_check = self.callLater(self.outbound_grace, self._check_backlog)

    def _check_backlog(self) -> None:
        self._backlog_check = None
        if not self._closed and self._out.queued() > self.outbound_limit:
            self._drop_slow_reader()

    def _drop_slow_reader(self) -> None:
        # The client stopped reading: drop it and what is queued for it
        # rather than hold ever more memory.
        self._close_reason = "not reading what is sent"
        metrics.DISCONNECTIONS.labels(self.role, "slow_reader").inc()
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

    def parse_line(self, line: bytes) -> tuple[wire.Command, Optional[int]]:
        """
        Read one line from the client: this role's payload commands, with
        the payload limit in force now.
        """
        return wire.parse_client_line(line, self.payload_commands, self.payload_limit)

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._bytes_in.value += len(data)
        self.resetTimeout()
        self.framer.feed(data)
        if self._reading:
            # A frame being handled led back here; the loop below, further
            # up the stack, goes on with what was just fed.
            return
        # Frames are taken one at a time until the framer needs more
        # bytes, a command is waiting on a Deferred, or the connection is
        # closing.
        self._reading = True
        try:
            next_frame = self.framer.next_frame
            while not self._paused and not self._closed:
                frame = next_frame()
                if frame is None:
                    break
                self.frame_received(frame)
        finally:
            self._reading = False

    def frame_received(self, frame) -> None:
        """
        Act on one frame: run a command within its allowance, answer or
        close for a line that cannot be read.
        """
        if type(frame) is not wire.Command:
            self._unreadable(frame)
            return
        allowed = self.allowance_for(frame.name).take()
        if not allowed:
            # A refused payload command has had its payload read, so the
            # next line is found where the client put it.
            self._refuse_flood(frame.name, frame.trid)
            return
        self._strikes = 0
        self._dispatch(frame)

    def _unreadable(self, error: wire.WireError) -> None:
        if isinstance(error, LineTooLong):
            # The framer has dropped what it held; stop reading at once
            # rather than wait for the rest of a line that may never end.
            self._close_reason = error.reason
            metrics.DISCONNECTIONS.labels(self.role, "line_too_long").inc()
            self._closed = True
            self.transport.abortConnection()
            return
        allowed = self._rate.take()
        if allowed or (error.code is None and error.reason != wire.BLANK_LINE):
            self._wire_error(error)
        else:
            # Blank lines count too, or a flood of them would go on for
            # ever.
            self._refuse_flood(None, error.trid)

    def allowance_for(self, name: str) -> TokenBucket:
        """
        The rate limit command C{name} counts against.
        """
        return self._rate

    def _refuse_flood(self, name: Optional[str], trid: Optional[int]) -> None:
        self._strikes += 1
        if self._strikes > self.flood_strikes:
            metrics.DISCONNECTIONS.labels(self.role, "flood").inc()
            self.close("command flood")
        elif trid is not None:
            self.send_error(wire.flood_error_code(name), trid)

    def _wire_error(self, error: wire.WireError) -> None:
        if error.code is None:
            if error.reason != wire.BLANK_LINE:
                self.close(error.reason)
            return
        self.send_error(error.code, error.trid)

    def send_error(self, code: int, trid) -> None:
        metrics.ERRORS_SENT.labels(self.role, str(code)).inc()
        self.send(wire.format_error(code, trid))

    def _dispatch(self, command: wire.Command) -> None:
        session = self.session
        if session is None:
            return
        metrics.command_counter(self.role, counted_command(command.name)).inc()
        try:
            result = session.command_received(command)
        except Exception:
            self._command_failed(Failure(), command)
            return
        if isinstance(result, Deferred):
            if result.called:
                result.addErrback(self._command_failed, command)
                return
            self._pause_reading()
            result.addErrback(self._command_failed, command)
            result.addBoth(self._resume_reading)

    def _pause_reading(self) -> None:
        self._paused = True
        self.transport.pauseProducing()

    def _resume_reading(self, result) -> None:
        if self._closed:
            return
        self._paused = False
        self.transport.resumeProducing()
        # As a read of nothing: what waited meanwhile is taken now.
        self.dataReceived(b"")

    def _command_failed(self, failure: Failure, command: wire.Command) -> None:
        error = failure.value
        if isinstance(error, CommandError):
            self.send_error(error.code, command.trid)
            if error.close:
                self.close(error.reason or f"error {error.code}")
        elif isinstance(error, CloseConnection):
            self.close(error.reason)
        elif isinstance(error, (StoreUnavailable, DirectoryUnavailable)):
            # Any command that needed the database (or the cluster's
            # directory) while it is out of reach, a login too: nothing was
            # changed, and the client is told so.
            self.log.info(
                "{role}: {command} refused, database or directory unavailable: {error}",
                role=self.role,
                command=command.name,
                error=error,
            )
            self.send(wire.format_error(code_for(error), command.trid))
        else:
            self.log.failure("{role} failed on {command}", failure, role=self.role, command=command.name)
            self.send_error(INTERNAL_ERROR, command.trid)
