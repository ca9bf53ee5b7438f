"""
The Twisted side of the RVP HTTP server: one L{HttpConnection} per TCP
connection moves bytes between L{RequestParser} and a request handler,
answers pipelined requests in order, and closes idle or stalled
connections.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from msnp.rvp.httpwire import HttpError, Limits, Request, RequestParser, Response, response

log = Logger()

MAX_PIPELINED = 8


class HttpConnection(Protocol):
    def __init__(self, handler: Callable[[Request, str], Deferred], limits: Limits, clock, idle_timeout: float, request_timeout: float):
        self._handler = handler
        self._parser = RequestParser(limits)
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        # [Deferred of the response, close after it?, the response once ready]
        self._queue: list[list] = []
        self._timer = None
        self._closing = False
        self._paused = False
        self.address = ""

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.address = getattr(peer, "host", "")
        self.factory.connections.add(self)
        self._arm_timer()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        for item in self._parser.feed(data):
            if isinstance(item, HttpError):
                error = response(item.status, (item.reason + "\r\n").encode("utf-8") if item.reason else b"", "text/plain" if item.reason else None)
                self._enqueue(_ready(error), close=True)
                self._closing = True
                break
            self._enqueue(maybeDeferred(self._handler, item, self.address), close=not item.keep_alive)
            if not item.keep_alive:
                self._closing = True
                break
        if len(self._queue) >= MAX_PIPELINED and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pauseProducing()
        self._arm_timer()

    def _enqueue(self, d: Deferred, close: bool) -> None:
        entry = [d, close, None]
        self._queue.append(entry)

        def ready(result: Response) -> None:
            entry[2] = result
            self._flush()

        d.addErrback(self._failed)
        d.addCallback(ready)

    @staticmethod
    def _failed(failure) -> Response:
        if not failure.check(CancelledError):
            log.failure("RVP request handler failed", failure)
        return response(500)

    def _flush(self) -> None:
        while self._queue and self._queue[0][2] is not None:
            _, close, result = self._queue.pop(0)
            if self.transport is None:
                return
            self.transport.write(result.render(close=close))
            if close:
                self._cancel_timer()
                self.transport.loseConnection()
                self._queue.clear()
                return
        if self._paused and len(self._queue) < MAX_PIPELINED and self.transport is not None:
            self._paused = False
            self.transport.resumeProducing()
        self._arm_timer()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if self.transport is None or self._closing and not self._queue:
            return
        if self._queue:
            return  # a handler is working; its own timeouts apply
        delay = self._request_timeout if self._parser.in_progress else self._idle_timeout
        self._timer = self._clock.callLater(delay, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._parser.in_progress and self.transport is not None:
            self.transport.write(response(408).render(close=True))
        if self.transport is not None:
            self.transport.loseConnection()
        self._closing = True

    def connectionLost(self, reason) -> None:
        self.factory.connections.discard(self)
        self._cancel_timer()
        self._closing = True
        entries, self._queue = self._queue, []
        self.transport = None
        for d, _, result in entries:
            if result is None:
                d.cancel()


def _ready(value: Response) -> Deferred:
    d = Deferred()
    d.callback(value)
    return d


class HttpFactory(Factory):
    noisy = False

    def __init__(self, handler, clock, limits: Limits = Limits(), idle_timeout: float = 120.0, request_timeout: float = 30.0):
        self.handler = handler
        self.clock = clock
        self.limits = limits
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.connections: set[HttpConnection] = set()

    def buildProtocol(self, addr):
        connection = HttpConnection(self.handler, self.limits, self.clock, self.idle_timeout, self.request_timeout)
        connection.factory = self
        return connection

    def close_all(self) -> None:
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.loseConnection()
