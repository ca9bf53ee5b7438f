"""
The Twisted side of every role: a LineReceiver that frames commands with
L{msnp.wire}, reads payloads byte-exact, hands each command to the role's
session object in order, and writes what it answers.

A session method may return a Deferred (a store write, a login); reading
pauses until it fires, so pipelined commands are answered in the order they
were sent.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from msnp import wire
from msnp.errors import INTERNAL_ERROR, CloseConnection, CommandError


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

    def __init__(self) -> None:
        self.session = None
        self._payload_command: Optional[wire.Command] = None
        self._payload_needed = 0
        self._payload_chunks: list[bytes] = []
        self._closed = False
        self._close_waiters: list = []
        self.peer = "?"

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
        self.MAX_LENGTH = self.factory.config.max_line_length
        self.payload_limit = self.factory.config.max_payload_length
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self.callLater = self.factory.clock.callLater
        self.session = self.factory.make_session(self)
        self.log.info("{role} connection from {peer}", role=self.role, peer=self.peer)

    def connectionLost(self, reason: Failure = None) -> None:
        self._closed = True
        self.setTimeout(None)
        if self.session is not None:
            session, self.session = self.session, None
            session.connection_lost()
        self.log.info("{role} connection from {peer} closed", role=self.role, peer=self.peer)
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # Output

    def send(self, data: bytes) -> None:
        if not self._closed:
            self.transport.write(data)

    def close(self, reason: str = "") -> None:
        """
        Close deliberately once what was written has been sent.
        """
        if not self._closed:
            self._closed = True
            if reason:
                self.log.info("{role} closing {peer}: {reason}", role=self.role, peer=self.peer, reason=reason)
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.close("timed out")

    # Input

    def lineReceived(self, line: bytes) -> None:
        if self._closed:
            return
        try:
            command, length = wire.parse_client_line(line, self.payload_commands, self.payload_limit)
        except wire.WireError as error:
            self._wire_error(error)
            return
        if length:
            self._payload_command = command
            self._payload_needed = length
            self._payload_chunks = []
            self.setRawMode()
            return
        if length == 0:
            command = wire.Command(command.name, command.trid, command.args, b"")
        self._dispatch(command)

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
        self._dispatch(command)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.close("line too long")

    def _wire_error(self, error: wire.WireError) -> None:
        if error.code is None:
            if error.reason != "blank line":
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
        else:
            self.log.failure("{role} failed on {command}", failure, role=self.role, command=command.name)
            self.send(wire.format_error(INTERNAL_ERROR, command.trid))
