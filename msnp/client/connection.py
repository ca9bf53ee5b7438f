"""
One connection to an MSN server (dispatch, notification or switchboard),
as the client sees it: requests with their own transaction IDs, each
answered through a Deferred, and every other line handed to the owner.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Optional

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from msnp.msn import wire
from msnp.msn.dialects import Dialect
from msnp.msn.framing import Framer, LineTooLong

# What a client accepts from a server: lines as long as the server's own
# limit, payloads (a GCF file, a long message) up to 1 MiB.
MAX_SERVER_LINE = wire.DEFAULT_MAX_LINE
MAX_SERVER_PAYLOAD = 1 << 20


def server_framer(dialect: Callable[[], Optional[Dialect]]) -> Framer:
    """
    A framer for what a server sends, read with the rules of the dialect
    C{dialect()} names at the time (MSNP2's until VER has chosen one).
    """

    def parse(line: bytes):
        chosen = dialect()
        rules = chosen.server_lines if chosen is not None else wire.SERVER_LINES_MSNP2
        return wire.parse_server_line(line, rules, MAX_SERVER_PAYLOAD)

    return Framer(parse, MAX_SERVER_LINE)


class ServerError(Exception):
    """
    The server answered a request with an error number.
    """

    def __init__(self, code: int, command: str = ""):
        super().__init__(f"{command} refused with {code}" if command else f"error {code}")
        self.code = code
        self.command = command


class ConnectionClosed(Exception):
    """
    The connection ended before the answer came.
    """


class _Pending:
    def __init__(self, name: str, answers: frozenset, refusals: frozenset):
        self.name = name
        self.answers = answers
        self.refusals = refusals
        self.deferred: defer.Deferred = defer.Deferred()


class CommandConnection(Protocol):
    """
    Sends commands and matches the answers by TrID.  A request is answered
    by the first line with its TrID whose name is the request's own (or one
    of C{answers}); other lines with that TrID (ILN after CHG, IRO before
    ANS OK, the lists after an MSNP2-7 SYN) and every untagged line go to
    C{on_command}, in the order they arrived.
    """

    log = Logger()

    def __init__(self, on_command: Callable[[wire.Command], None] = lambda command: None):
        self.on_command = on_command
        self.dialect: Optional[Dialect] = None
        self._framer = server_framer(lambda: self.dialect)
        self._trids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self.closed = defer.Deferred()
        self.is_closed = False

    # Sending

    def next_trid(self) -> int:
        return next(self._trids)

    def request(
        self,
        name: str,
        *args: object,
        payload: Optional[bytes] = None,
        answers: Iterable[str] = (),
        refusals: Iterable[str] = (),
    ) -> defer.Deferred:
        """
        Send C{name args} with a fresh TrID (and C{payload}); the Deferred
        fires with the answering L{wire.Command}, or fails with
        L{ServerError} (an error number, or one of C{refusals}, such as NAK)
        or L{ConnectionClosed}.
        """
        if self.is_closed:
            return defer.fail(ConnectionClosed(name))
        trid = self.next_trid()
        pending = _Pending(name, frozenset(answers) | {name}, frozenset(refusals))
        self._pending[trid] = pending
        self.write_command(name, trid, args, payload)
        return pending.deferred

    def write_command(self, name: str, trid: Optional[int], args, payload: Optional[bytes] = None) -> None:
        if self.is_closed:
            return
        if payload is None:
            self.transport.write(wire.format_line(name, trid, *args))
        else:
            self.transport.write(wire.format_payload(name, trid, args, payload))

    def close(self) -> defer.Deferred:
        if not self.is_closed:
            self.transport.loseConnection()
        return self.closed

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        framer = self._framer
        framer.feed(data)
        while not self.is_closed:
            frame = framer.next_frame()
            if frame is None:
                return
            if isinstance(frame, LineTooLong) or (isinstance(frame, wire.WireError) and frame.code is None):
                self.log.warn("server stream unreadable: {reason}", reason=frame.reason)
                self.transport.loseConnection()
                return
            if isinstance(frame, wire.WireError):
                self.log.warn("unreadable line from the server: {reason}", reason=frame.reason)
                continue
            self._received(frame)

    def _received(self, command: wire.Command) -> None:
        pending = self._pending.get(command.trid) if command.trid is not None else None
        if pending is not None:
            if command.name.isdigit():
                del self._pending[command.trid]
                pending.deferred.errback(ServerError(int(command.name), pending.name))
                return
            if command.name in pending.refusals:
                del self._pending[command.trid]
                pending.deferred.errback(ServerError(0, f"{pending.name} ({command.name})"))
                return
            if command.name in pending.answers:
                del self._pending[command.trid]
                pending.deferred.callback(command)
                return
        self.on_command(command)

    def connectionLost(self, reason=None) -> None:
        self.is_closed = True
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.deferred.errback(ConnectionClosed(request.name))
        self.closed.callback(None)
