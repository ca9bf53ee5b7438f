"""
Outbound HTTP for RVP: per destination (host, port) a bounded queue and a
bounded set of kept-alive connections.

Presence NOTIFYs come in bursts (one CHG of a user with many watchers is
one NOTIFY per subscription) to destinations of every speed: a local node
on a LAN, a laptop on a slow link, a federated server.  Each destination
gets:

* at most C{max_connections} connections, kept alive between requests and
  closed after C{idle_timeout} seconds unused;
* a queue of at most C{max_queued} requests waiting for a connection.  A
  request carrying a C{coalesce_key} (a property subscription) replaces the
  waiting one with the same key: only the latest state matters, and both
  callers get the answer of the one sent.  When the queue is full a new
  request is refused (L{QueueFull}), logged and counted; when the
  destination cannot be reached, every request waiting for it is given up
  (logged and counted) rather than each waiting for its own connect
  timeout;
* order: requests of one C{order_key} (one subscription, one user's
  messages) are sent one at a time, in order, whatever the number of
  connections.

A kept-alive connection the peer closed while we sent on it (nothing of an
answer came back) is retried once on a new connection.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import (
    HTTP11ClientProtocol,
    Request,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from msnp import metrics

log = Logger()

MAX_CONNECTIONS = 4
MAX_QUEUED = 1000
IDLE_TIMEOUT = 30.0
MAX_REPLY_BODY = 256 * 1024


class QueueFull(Exception):
    """
    The destination already has as many requests waiting as it may.
    """


class Unreachable(Exception):
    """
    Given up: the destination could not be connected to.
    """


class TimedOut(Exception):
    """
    No answer in time; the connection was closed.
    """


@attrs.frozen
class Answer:
    """
    A status line, headers (names in lower case, the last value of each)
    and as much of the body as was wanted.
    """

    status: int
    headers: dict[str, str]
    body: bytes


@implementer(IBodyProducer)
class _Bytes:
    """
    A request body already in memory, written at once (no cooperator: no
    timers of the global reactor).
    """

    def __init__(self, body: bytes):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class _Read(Protocol):
    """
    Read a response body up to a limit.  An unwanted body delimited only by
    the end of the connection (Net::RVP's listener answers that way and
    keeps the connection open) is not waited for: the connection is closed.
    """

    def __init__(self, done: Deferred, limit: int):
        self.done = done
        self.limit = limit
        self.data = bytearray()

    def dataReceived(self, data: bytes) -> None:
        if self.done is None:
            return
        self.data += data
        if len(self.data) > self.limit:
            self.transport.stopProducing()
            self._finish()

    def connectionLost(self, reason) -> None:
        self._finish()

    def _finish(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            done.callback(bytes(self.data[: self.limit]))


class _Connection(HTTP11ClientProtocol):
    """
    One kept-alive connection of a destination.
    """

    def __init__(self, destination: "_Destination"):
        super().__init__(quiescentCallback=destination.quiescent)
        self.destination = destination
        self.idle_timer = None
        self.lost = False

    def connectionLost(self, reason=None) -> None:
        self.lost = True
        super().connectionLost(reason)
        self.destination.lost(self)


@attrs.define(eq=False)
class _Job:
    method: bytes
    path: bytes
    headers: Headers
    body: bytes
    want_body: bool
    order_key: object
    coalesce_key: object
    done: Deferred
    # Callers whose request this one replaced: they get its answer.
    also: list = attrs.Factory(list)
    retried: bool = False
    timed_out: bool = False


class _Destination:
    """
    The queue and connections of one (host, port).
    """

    def __init__(self, pool: "ConnectionPool", host: str, port: int):
        self.pool = pool
        self.host = host
        self.port = port
        self.queue: deque[_Job] = deque()
        self.waiting: dict[object, _Job] = {}  # coalesce key → queued job
        self.sending: set = set()  # order keys with a request out
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()
        self.connecting: dict[Deferred, _Job] = {}
        self.pump_call = None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def submit(self, job: _Job) -> None:
        if job.coalesce_key is not None:
            queued = self.waiting.get(job.coalesce_key)
            if queued is not None:
                # The waiting request takes the new content and keeps its place.
                queued.headers, queued.body, queued.want_body = job.headers, job.body, job.want_body
                queued.also.append(job.done)
                queued.also.extend(job.also)
                metrics.RVP_OUTBOUND_COALESCED.inc()
                return
        if len(self.queue) >= self.pool.max_queued:
            metrics.RVP_OUTBOUND_DROPPED.labels("queue_full").inc()
            log.warn(
                "RVP requests to {destination}: {count} waiting already; {method} refused",
                destination=self.name,
                count=len(self.queue),
                method=job.method.decode("ascii", "replace"),
            )
            _fail(job, QueueFull(f"{len(self.queue)} requests to {self.name} waiting already"))
            return
        self.queue.append(job)
        if job.coalesce_key is not None:
            self.waiting[job.coalesce_key] = job
        self.pump()

    def schedule_pump(self) -> None:
        if self.pump_call is None or not self.pump_call.active():
            self.pump_call = self.pool.clock.callLater(0, self.pump)

    def pump(self) -> None:
        while self.queue:
            job = self._next_job()
            if job is None:
                return
            if job.retried:
                # Sent again on a new connection; an idle one gives way.
                connection = None
                if len(self.connections) + len(self.connecting) >= self.pool.max_connections:
                    spare = self._idle_connection()
                    if spare is None:
                        return
                    spare.transport.abortConnection()
            else:
                connection = self._idle_connection()
                if connection is None and len(self.connections) + len(self.connecting) >= self.pool.max_connections:
                    return
            self._take(job)
            if connection is not None:
                self._send(job, connection, reused=True)
            else:
                self._connect(job)

    def _next_job(self) -> Optional[_Job]:
        for job in self.queue:
            if job.order_key is None or job.order_key not in self.sending:
                return job
        return None

    def _take(self, job: _Job) -> None:
        self.queue.remove(job)
        if job.coalesce_key is not None and self.waiting.get(job.coalesce_key) is job:
            del self.waiting[job.coalesce_key]
        if job.order_key is not None:
            self.sending.add(job.order_key)

    def _idle_connection(self) -> Optional[_Connection]:
        while self.idle:
            connection = self.idle.pop()
            _cancel(connection.idle_timer)
            connection.idle_timer = None
            if not connection.lost and connection.state == "QUIESCENT":
                return connection
        return None

    def _connect(self, job: _Job) -> None:
        connection = _Connection(self)
        d = self.pool.connect(self.host, self.port, connection)
        if d.called:
            d.addCallbacks(lambda _: self._connected(job, connection), lambda failure: self._unreachable(job, failure))
            return
        self.connecting[d] = job

        def connected(_):
            del self.connecting[d]
            self._connected(job, connection)

        def failed(failure):
            del self.connecting[d]
            self._unreachable(job, failure)

        d.addCallbacks(connected, failed)

    def _connected(self, job: _Job, connection: _Connection) -> None:
        if connection.lost:
            self._unreachable(job, Failure(ConnectError(string="closed at once")))
            return
        self.connections.add(connection)
        metrics.RVP_OUTBOUND_CONNECTIONS_OPENED.inc()
        self._send(job, connection, reused=False)

    def _unreachable(self, job: _Job, failure: Failure) -> None:
        # The others waiting would fail the same way, each after its own
        # connect timeout: give them up now.
        given_up = [job] + list(self.queue)
        self.queue.clear()
        self.waiting.clear()
        if job.order_key is not None:
            self.sending.discard(job.order_key)
        metrics.RVP_OUTBOUND_DROPPED.labels("unreachable").inc(len(given_up))
        log.warn(
            "RVP destination {destination} unreachable ({error}): {count} requests given up",
            destination=self.name,
            error=failure.getErrorMessage(),
            count=len(given_up),
        )
        for each in given_up:
            _fail(each, Unreachable(f"{self.name}: {failure.getErrorMessage()}"))
        self.pool.forget_if_unused(self)

    def _send(self, job: _Job, connection: _Connection, reused: bool) -> None:
        (metrics.RVP_OUTBOUND_REUSED if reused else metrics.RVP_OUTBOUND_FRESH).inc()
        request = Request(job.method, job.path, job.headers, _Bytes(job.body) if job.body else None, persistent=True)
        d = connection.request(request)
        timer = self.pool.clock.callLater(self.pool.timeout, self._timed_out, job, connection)

        def answered(response):
            done = Deferred()
            chunked = b"chunked" in b",".join(response.headers.getRawHeaders(b"transfer-encoding", [])).lower()
            delimited = response.length is not UNKNOWN_LENGTH or chunked
            reader = _Read(done, self.pool.max_body)
            headers = {
                name.decode("latin-1").lower(): values[-1].decode("latin-1") for name, values in response.headers.getAllRawHeaders()
            }
            if not job.want_body and not delimited:
                # Read to the end of the connection: not worth waiting for.
                done.callback(b"")
                connection.transport.loseConnection()
            else:
                response.deliverBody(reader)
            return done.addCallback(lambda body: Answer(response.code, headers, body))

        def finished(result):
            _cancel(timer)
            if job.order_key is not None:
                self.sending.discard(job.order_key)
            if isinstance(result, Failure) and not self.pool.stopped and self._should_retry(job, reused, result):
                job.retried = True
                metrics.RVP_OUTBOUND_RETRIED.inc()
                # Its siblings were opened at the same time: likely closed
                # too, and the retry must go on a new connection.
                stale, self.idle = self.idle, []
                for connection in stale:
                    _cancel(connection.idle_timer)
                    connection.idle_timer = None
                    connection.transport.loseConnection()
                newer = self.waiting.get(job.coalesce_key) if job.coalesce_key is not None else None
                if newer is not None:
                    # A later state of the subscription waits already: it answers for both.
                    newer.also.extend([job.done] + job.also)
                    metrics.RVP_OUTBOUND_COALESCED.inc()
                else:
                    self.queue.appendleft(job)
                    if job.coalesce_key is not None:
                        self.waiting[job.coalesce_key] = job
                self.schedule_pump()
                return
            if isinstance(result, Failure):
                reason = "timeout" if job.timed_out else "connection_lost"
                metrics.RVP_OUTBOUND_DROPPED.labels(reason).inc()
                log.info(
                    "RVP {method} to {destination} failed: {error}",
                    method=job.method.decode("ascii", "replace"),
                    destination=self.name,
                    error="no answer in time" if job.timed_out else result.getErrorMessage(),
                )
                if job.timed_out:
                    result = Failure(TimedOut(f"no answer from {self.name} in {self.pool.timeout:g} s"))
            self._done(job, result)
            self.schedule_pump()

        d.addCallback(answered).addBoth(finished)

    @staticmethod
    def _should_retry(job: _Job, reused: bool, failure: Failure) -> bool:
        # A kept-alive connection closed under us before any of the answer:
        # the peer had closed it (an idle timeout) and never read the request.
        if not reused or job.retried or job.timed_out:
            return False
        if failure.check(RequestNotSent, RequestTransmissionFailed):
            return True
        return failure.check(ResponseNeverReceived) is not None

    def _timed_out(self, job: _Job, connection: _Connection) -> None:
        job.timed_out = True
        if connection.transport is not None:
            connection.transport.abortConnection()

    def _done(self, job: _Job, result) -> None:
        waiters = [job.done] + job.also
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    # Connection life

    def quiescent(self, connection: _Connection) -> None:
        """
        An answer was read whole and the connection may carry another
        request: it is idle until the next request (sent from the reactor's
        next turn: the client protocol is still finishing this one).
        """
        if connection.lost:
            return
        self.idle.append(connection)
        connection.idle_timer = self.pool.clock.callLater(self.pool.idle_timeout, self._idle_too_long, connection)
        self.schedule_pump()

    def _idle_too_long(self, connection: _Connection) -> None:
        connection.idle_timer = None
        if connection in self.idle and connection.transport is not None:
            connection.transport.loseConnection()

    def lost(self, connection: _Connection) -> None:
        _cancel(connection.idle_timer)
        connection.idle_timer = None
        if connection in self.idle:
            self.idle.remove(connection)
        if connection in self.connections:
            self.connections.discard(connection)
            metrics.RVP_OUTBOUND_CONNECTIONS_CLOSED.inc()
            self.pool.connection_gone(connection)
        if self.queue:
            self.schedule_pump()
        else:
            self.pool.forget_if_unused(self)

    def unused(self) -> bool:
        return not (self.queue or self.connections or self.connecting or self.sending)

    def stop(self) -> None:
        _cancel(self.pump_call)
        queued = list(self.queue)
        self.queue.clear()
        self.waiting.clear()
        if queued:
            metrics.RVP_OUTBOUND_DROPPED.labels("stopped").inc(len(queued))
        for job in queued:
            _fail(job, CancelledError(f"stopped with {len(queued)} requests to {self.name} waiting"))
        for d in list(self.connecting):
            d.cancel()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abortConnection()


def _fail(job: _Job, error: Exception) -> None:
    failure = Failure(error)
    for d in [job.done] + job.also:
        d.errback(failure)


def _cancel(call) -> None:
    if call is not None and call.active():
        call.cancel()


class ConnectionPool:
    """
    Requests to any number of destinations, each with its own queue and
    connections (see the module's docstring).  C{connect(host, port,
    protocol)} connects C{protocol} and fires once it is connected.
    """

    def __init__(
        self,
        clock,
        connect: Callable[[str, int, Protocol], Deferred],
        timeout: float,
        max_connections: int = MAX_CONNECTIONS,
        max_queued: int = MAX_QUEUED,
        idle_timeout: float = IDLE_TIMEOUT,
        max_body: int = MAX_REPLY_BODY,
    ):
        self.clock = clock
        self.connect = connect
        self.timeout = timeout
        self.max_connections = max_connections
        self.max_queued = max_queued
        self.idle_timeout = idle_timeout
        self.max_body = max_body
        self._destinations: dict[tuple[str, int], _Destination] = {}
        self._closing: dict[_Connection, Deferred] = {}
        self.stopped = False

    def request(
        self,
        host: str,
        port: int,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes = b"",
        want_body: bool = False,
        order_key=None,
        coalesce_key=None,
    ) -> Deferred:
        """
        Queue a request; fires with its L{Answer}, or fails with
        L{QueueFull}, L{Unreachable}, L{TimedOut} or the connection's error.
        A C{coalesce_key} is also an order key.
        """
        done = Deferred()
        if self.stopped:
            done.errback(CancelledError("stopped"))
            return done
        if coalesce_key is not None:
            order_key = ("coalesce", coalesce_key)
        job = _Job(method, path, headers, body, want_body, order_key, coalesce_key, done)
        key = (host.lower(), port)
        destination = self._destinations.get(key)
        if destination is None:
            destination = self._destinations[key] = _Destination(self, key[0], port)
        destination.submit(job)
        return done

    def queued(self, host: str, port: int) -> int:
        destination = self._destinations.get((host.lower(), port))
        return len(destination.queue) if destination is not None else 0

    def connection_count(self, host: str, port: int) -> int:
        destination = self._destinations.get((host.lower(), port))
        return len(destination.connections) if destination is not None else 0

    def forget_if_unused(self, destination: _Destination) -> None:
        key = (destination.host, destination.port)
        if self._destinations.get(key) is destination and destination.unused():
            _cancel(destination.pump_call)
            del self._destinations[key]

    def connection_gone(self, connection: _Connection) -> None:
        d = self._closing.pop(connection, None)
        if d is not None:
            d.callback(None)

    def stop(self) -> Deferred:
        """
        Give up every waiting request and close every connection; fires
        once they are closed.
        """
        self.stopped = True
        waits = []
        for destination in list(self._destinations.values()):
            for connection in destination.connections:
                d = self._closing[connection] = Deferred()
                waits.append(d)
            destination.stop()
        return DeferredList(waits)
