"""
The outbound RVP connection pool (L{msnp.rvp.pool}) with a recording
network and L{task.Clock}: kept-alive connections reused and closed when
idle, a bounded number per destination, one request at a time per order
key, queued presence NOTIFYs coalesced, overflow and unreachable
destinations refused (logged and counted), a kept-alive connection the peer
closed retried once, timeouts, Net::RVP's length-less answers, and stop.
Then the same pool over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from msnp import metrics
from msnp.rvp.outbound import OutboundClient
from msnp.rvp.pool import ConnectionPool, QueueFull, TimedOut, Unreachable

OK = b"HTTP/1.1 200 Successful\r\nContent-Length: 0\r\n\r\n"


class FakeNetwork:
    """
    Records each connection attempt; the test accepts or refuses it and
    plays the peer on a StringTransport.
    """

    def __init__(self):
        self.attempts: list[tuple[str, int, Protocol, Deferred]] = []
        self.accepted: list[tuple[Protocol, StringTransport]] = []

    def connect(self, host, port, protocol):
        d = Deferred()
        self.attempts.append((host, port, protocol, d))
        return d

    def accept(self):
        host, port, protocol, d = self.attempts.pop(0)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        self.accepted.append((protocol, transport))
        return protocol, transport

    def refuse(self):
        _, _, _, d = self.attempts.pop(0)
        d.errback(Failure(ConnectionRefusedError("refused")))


def close(protocol, reason=ConnectionDone):
    protocol.connectionLost(Failure(reason()))


class Outcome:
    """
    What a Deferred fired with (a value or a Failure, consumed), None
    until it fires.
    """

    def __init__(self, d: Deferred):
        self.value = None
        d.addBoth(self._keep)

    def _keep(self, result) -> None:
        self.value = result


def notify(pool, body=b"<x/>", order_key=None, coalesce_key=None, want_body=False) -> Outcome:
    headers = Headers({b"Host": [b"node.example:8080"]})
    return Outcome(pool.request("node.example", 8080, b"NOTIFY", b"/", headers, body, want_body, order_key, coalesce_key))


def outcome(sent: Outcome):
    return sent.value


def count(counter) -> float:
    return metrics.total(counter)


@pytest.fixture
def network():
    return FakeNetwork()


@pytest.fixture
def clock():
    return Clock()


def make_pool(clock, network, **limits):
    return ConnectionPool(clock, network.connect, timeout=30.0, **limits)


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_a_kept_alive_connection_is_reused_and_closed_when_idle(clock, network):
    """
    A second request after the first answer goes on the same connection;
    an idle connection is closed after the idle timeout.
    """
    pool = make_pool(clock, network, idle_timeout=30.0)
    reused = metrics.RVP_OUTBOUND_REUSED.value
    first = notify(pool, b"<one/>")
    protocol, transport = network.accept()
    assert b"<one/>" in transport.value()
    protocol.dataReceived(OK)
    assert outcome(first).status == 200
    clock.advance(0)
    transport.clear()
    second = notify(pool, b"<two/>")
    assert network.attempts == []  # no new connection
    assert b"<two/>" in transport.value()
    protocol.dataReceived(OK)
    assert outcome(second).status == 200
    assert metrics.RVP_OUTBOUND_REUSED.value == reused + 1
    clock.advance(0)
    assert not transport.disconnecting
    clock.advance(30.0)
    assert transport.disconnecting
    close(protocol)
    assert pool.connection_count("node.example", 8080) == 0


def test_connections_per_destination_are_bounded(clock, network):
    """
    Past C{max_connections} requests wait in the queue and go out as
    connections come free, each on a kept-alive one.
    """
    pool = make_pool(clock, network, max_connections=2)
    sent = [notify(pool, b"<n%d/>" % i) for i in range(5)]
    assert len(network.attempts) == 2
    assert pool.queued("node.example", 8080) == 3
    peers = [network.accept(), network.accept()]
    for _ in range(3):
        for protocol, _ in peers:
            if protocol.state == "WAITING":
                protocol.dataReceived(OK)
        clock.advance(0)
    assert [outcome(d).status for d in sent] == [200] * 5
    assert len(network.attempts) == 0 and len(network.accepted) == 2
    assert sum(t.value().count(b"NOTIFY ") for _, t in peers) == 5


def test_one_request_at_a_time_per_order_key(clock, network):
    """
    Two messages of one conversation are not sent side by side on two
    connections: the second waits for the first's answer.
    """
    pool = make_pool(clock, network, max_connections=4)
    first = notify(pool, b"<first/>", order_key="alice")
    second = notify(pool, b"<second/>", order_key="alice")
    other = notify(pool, b"<other/>", order_key="bob")
    assert len(network.attempts) == 2  # alice's first and bob's
    protocol, transport = network.accept()
    assert b"<first/>" in transport.value()
    protocol.dataReceived(OK)
    clock.advance(0)
    assert b"<second/>" in transport.value()
    protocol.dataReceived(OK)
    assert outcome(first).status == outcome(second).status == 200
    bob, bob_transport = network.accept()
    assert b"<other/>" in bob_transport.value()
    bob.dataReceived(OK)
    assert outcome(other).status == 200


def test_queued_presence_notifies_are_coalesced(clock, network):
    """
    While one NOTIFY of a subscription is out, later states wait as one
    request holding the latest; every caller gets its answer.
    """
    pool = make_pool(clock, network, max_connections=1)
    coalesced = count(metrics.RVP_OUTBOUND_COALESCED)
    states = [notify(pool, b"<%s/>" % s, coalesce_key="sub-1") for s in (b"busy", b"away", b"idle", b"online")]
    assert pool.queued("node.example", 8080) == 1
    assert count(metrics.RVP_OUTBOUND_COALESCED) == coalesced + 2
    protocol, transport = network.accept()
    protocol.dataReceived(OK)
    clock.advance(0)
    sent = transport.value()
    assert b"<busy/>" in sent and b"<online/>" in sent
    assert b"<away/>" not in sent and b"<idle/>" not in sent
    protocol.dataReceived(OK)
    assert [outcome(d).status for d in states] == [200] * 4


def test_a_full_queue_refuses_and_says_so(clock, network, logged):
    """
    Past C{max_queued} waiting requests a new one fails with QueueFull,
    counted and logged; nothing waiting is lost.
    """
    pool = make_pool(clock, network, max_connections=1, max_queued=2)
    dropped = metrics.RVP_OUTBOUND_DROPPED.labels("queue_full").value
    sent = [notify(pool, b"<m%d/>" % i, order_key="m") for i in range(3)]
    refused = notify(pool, b"<m3/>", order_key="m")
    failure = outcome(refused)
    assert isinstance(failure, Failure) and failure.check(QueueFull)
    assert metrics.RVP_OUTBOUND_DROPPED.labels("queue_full").value == dropped + 1
    assert any("refused" in (event.get("log_format") or "") for event in logged)
    protocol, transport = network.accept()
    for _ in range(3):
        protocol.dataReceived(OK)
        clock.advance(0)
    assert [outcome(d).status for d in sent] == [200] * 3


def test_an_unreachable_destination_gives_up_everything_waiting(clock, network):
    """
    A refused connection fails its request and every one queued behind it
    (Unreachable, counted); the next request tries again.
    """
    pool = make_pool(clock, network, max_connections=1)
    dropped = metrics.RVP_OUTBOUND_DROPPED.labels("unreachable").value
    sent = [notify(pool, b"<m%d/>" % i) for i in range(3)]
    network.refuse()
    for d in sent:
        failure = outcome(d)
        assert isinstance(failure, Failure) and failure.check(Unreachable)
    assert metrics.RVP_OUTBOUND_DROPPED.labels("unreachable").value == dropped + 3
    later = notify(pool)
    protocol, _ = network.accept()
    protocol.dataReceived(OK)
    assert outcome(later).status == 200


def test_peer_closing_an_idle_connection(clock, network):
    """
    A kept-alive connection the peer closed while idle is dropped from the
    pool; the next request opens a new one.
    """
    pool = make_pool(clock, network)
    first = notify(pool)
    protocol, _ = network.accept()
    protocol.dataReceived(OK)
    clock.advance(0)
    close(protocol)
    second = notify(pool, b"<again/>")
    assert len(network.attempts) == 1
    fresh, transport = network.accept()
    assert b"<again/>" in transport.value()
    fresh.dataReceived(OK)
    assert outcome(first).status == outcome(second).status == 200


def test_a_request_lost_with_a_kept_alive_connection_is_retried_once(clock, network):
    """
    The peer closes a kept-alive connection just as a request goes out on
    it (no byte of an answer): sent again on a new connection, counted.
    A request on a new connection that loses it is not retried.
    """
    pool = make_pool(clock, network)
    retried = count(metrics.RVP_OUTBOUND_RETRIED)
    notify(pool)
    protocol, _ = network.accept()
    protocol.dataReceived(OK)
    clock.advance(0)
    second = notify(pool, b"<second/>")
    close(protocol, ConnectionLost)
    assert outcome(second) is None
    clock.advance(0)
    fresh, transport = network.accept()
    assert b"<second/>" in transport.value()
    assert count(metrics.RVP_OUTBOUND_RETRIED) == retried + 1
    close(fresh, ConnectionLost)
    failure = outcome(second)
    assert isinstance(failure, Failure)
    assert count(metrics.RVP_OUTBOUND_RETRIED) == retried + 1


def test_no_answer_in_time_closes_the_connection(clock, network):
    """
    A request without an answer in C{timeout} seconds fails with TimedOut
    and its connection is closed (never retried).
    """
    pool = make_pool(clock, network)
    timeouts = metrics.RVP_OUTBOUND_DROPPED.labels("timeout").value
    d = notify(pool)
    protocol, transport = network.accept()
    clock.advance(30.0)
    assert transport.disconnecting
    close(protocol, ConnectionLost)
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(TimedOut)
    assert metrics.RVP_OUTBOUND_DROPPED.labels("timeout").value == timeouts + 1


def test_an_answer_without_length_is_not_waited_for(clock, network):
    """
    Net::RVP's listener answers without Content-Length and keeps the
    connection open: the status is taken at once and the connection
    closed; a wanted body is read to the end of the connection.
    """
    pool = make_pool(clock, network)
    d = notify(pool)
    protocol, transport = network.accept()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    assert outcome(d).status == 200
    assert transport.disconnecting
    close(protocol)
    wanted = notify(pool, want_body=True)
    protocol, transport = network.accept()
    protocol.dataReceived(b"HTTP/1.1 207 Multi-Status\r\n\r\n<body/>")
    assert outcome(wanted) is None
    close(protocol)
    assert outcome(wanted).body == b"<body/>"


def test_stop_gives_up_waiting_requests_and_closes_connections(clock, network):
    """
    Stopping fails what waits (counted) and fires once every connection is
    closed; later requests are refused.
    """
    pool = make_pool(clock, network, max_connections=1)
    out = notify(pool, order_key="a")
    waiting = notify(pool, order_key="a")
    protocol, transport = network.accept()
    stopped = Outcome(pool.stop())
    assert isinstance(outcome(waiting), Failure)
    assert transport.disconnecting and outcome(stopped) is None
    close(protocol, ConnectionLost)
    assert outcome(stopped) is not None
    assert isinstance(outcome(out), Failure)
    assert isinstance(outcome(notify(pool)), Failure)
    assert clock.getDelayedCalls() == []


class _Node(Protocol):
    """
    A local node answering every request 200 with Content-Length (closing
    after each answer when C{close_after} is set).
    """

    def connectionMade(self):
        self.factory.connections += 1
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.factory.bodies.append(rest[:length])
            self.transport.write(OK)
            if self.factory.close_after:
                self.transport.loseConnection()
                return


class _NodeFactory(Factory):
    protocol = _Node

    def __init__(self, close_after=False):
        self.connections = 0
        self.bodies: list[bytes] = []
        self.close_after = close_after


@pytest.mark.parametrize("close_after", [False, True])
@pytest_twisted.inlineCallbacks
def test_over_real_http_notifies_share_kept_alive_connections(close_after):
    """
    Forty NOTIFYs to one local node on 127.0.0.1 all arrive, over at most
    the pool's four connections when the node keeps them alive, and over a
    new one each when it closes after every answer.
    """
    factory = _NodeFactory(close_after)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = OutboundClient(reactor, timeout=10.0)
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/node"
        replies = yield defer.gatherResults(
            [client.request("NOTIFY", url, {"Subscription-Id": str(i)}, b"<n%d/>" % i) for i in range(40)]
        )
        assert [reply.status for reply in replies] == [200] * 40
        assert sorted(factory.bodies) == sorted(b"<n%d/>" % i for i in range(40))
        if close_after:
            assert factory.connections == 40
        else:
            assert factory.connections <= 4
    finally:
        yield client.stop()
        yield port.stopListening()


def test_a_retried_notify_gives_way_to_a_later_state_waiting(clock, network):
    """
    A presence NOTIFY lost with a kept-alive connection while a later state
    of the same subscription waits is not sent again: the later one
    answers for both.
    """
    pool = make_pool(clock, network)
    notify(pool)
    protocol, _ = network.accept()
    protocol.dataReceived(OK)
    clock.advance(0)
    older = notify(pool, b"<busy/>", coalesce_key="sub-1")
    newer = notify(pool, b"<away/>", coalesce_key="sub-1")
    close(protocol, ConnectionLost)
    clock.advance(0)
    fresh, transport = network.accept()
    assert b"<away/>" in transport.value() and b"<busy/>" not in transport.value()
    fresh.dataReceived(OK)
    assert outcome(older).status == outcome(newer).status == 200
