"""
The one module that reads Twisted's private state (L{msnp.write_through}).

Over a real TCP connection these tests check, on the installed Twisted, the
exact meaning the module relies on: a write waits in the transport's queue
(C{dataBuffer}, C{offset}, C{_tempDataLen}) until the reactor turns, the
count of what waits goes back to nothing once sent, and a write straight to
the socket is taken only while nothing waits, so order is kept.  If Twisted
renames or changes any of it, these fail here rather than the server
misbehaving.  A Twisted release outside the checked range fails loudly too:
the module then falls back to public API, which these tests also drive.
"""

from __future__ import annotations

import attrs
import pytest
import pytest_twisted
import twisted
from twisted.internet import defer, reactor, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msnp import write_through
from msnp.config import ServerConfig
from msnp.msn.dispatch import DispatchServer


def test_installed_twisted_was_checked():
    """
    The running Twisted is one whose send queue msnp.write_through was
    checked against; a newer one silently turns the speed-up off, so this
    says so.
    """
    version = (twisted.version.major, twisted.version.minor)
    assert write_through.internals_known(), (
        f"Twisted {twisted.version.public()} is outside msnp.write_through.CHECKED_TWISTED "
        f"{write_through.CHECKED_TWISTED}: check that FileDescriptor still queues writes in dataBuffer/offset/"
        "_tempDataLen as these tests expect, then widen the range"
    )
    assert version >= write_through.CHECKED_TWISTED[0]


def test_version_check():
    """
    Releases outside the checked range are not trusted.
    """
    oldest, newest = write_through.CHECKED_TWISTED
    assert write_through.internals_known(oldest) and write_through.internals_known(newest)
    assert not write_through.internals_known((oldest[0], oldest[1] - 1))
    assert not write_through.internals_known((newest[0], newest[1] + 1))
    assert not write_through.internals_known((newest[0] + 1, 0))


class Collecting(Protocol):
    def connectionMade(self):
        self.received = b""
        self.factory.connected.callback(self)

    def dataReceived(self, data):
        self.received += data


class Idle(Protocol):
    def connectionMade(self):
        self.factory.connected.callback(self)


def until(predicate, timeout: float = 5.0) -> defer.Deferred:
    """
    Fires once C{predicate()} holds, polling the reactor.
    """
    deadline = reactor.seconds() + timeout
    d = defer.Deferred()

    def poll():
        if predicate():
            d.callback(None)
        elif reactor.seconds() > deadline:
            d.errback(AssertionError("condition never held"))
        else:
            reactor.callLater(0.005, poll)

    poll()
    return d


@defer.inlineCallbacks
def tcp_pair():
    """
    A server-side TCP transport and the client protocol at the other end,
    over 127.0.0.1.
    """
    server_factory = Factory.forProtocol(Idle)
    server_factory.connected = defer.Deferred()
    port = reactor.listenTCP(0, server_factory, interface="127.0.0.1")
    client_factory = ClientFactory.forProtocol(Collecting)
    client_factory.connected = defer.Deferred()
    reactor.connectTCP("127.0.0.1", port.getHost().port, client_factory)
    server = yield server_factory.connected
    client = yield client_factory.connected
    return port, server, client


@defer.inlineCallbacks
def close_pair(port, server, client):
    server.transport.loseConnection()
    client.transport.loseConnection()
    yield port.stopListening()
    yield until(lambda: not server.transport.connected and not client.transport.connected)


@pytest_twisted.inlineCallbacks
def test_twisted_send_queue_means_what_msnp_reads():
    """
    On a plain TCP transport: a write waits in the queue until the reactor
    turns (the queue counts it), is then sent (the count is back to 0),
    and the module writes through only while nothing waits.
    """
    port, server, client = yield tcp_pair()
    try:
        transport = server.transport
        assert isinstance(transport, tcp.Connection) and not transport.TLS
        assert write_through.send_queue_of(transport) is transport
        assert isinstance(transport.offset, int) and isinstance(transport._tempDataLen, int)
        assert len(transport.dataBuffer) == transport.offset == transport._tempDataLen == 0
        assert write_through.writes_through(transport)
        assert write_through.queued_bytes(transport) == 0

        transport.write(b"first ")
        assert write_through.queued_bytes(transport) == 6, "a write no longer waits in _tempDataLen"
        writer = write_through.outbound(transport)
        write, queued = writer.write, writer.queued
        # Something waits: the next write must queue behind it.
        assert write(b"second ") == 13
        assert queued() == 13
        yield until(lambda: client.received == b"first second ")
        assert queued() == 0, "the queue did not go back to empty once sent"
        assert len(transport.dataBuffer) == transport.offset

        # Nothing waits: the bytes go straight to the socket.
        assert write(b"third") == 0
        assert transport._tempDataLen == 0 and queued() == 0
        yield until(lambda: client.received == b"first second third")
    finally:
        yield close_pair(port, server, client)


@pytest_twisted.inlineCallbacks
def test_unchecked_twisted_uses_public_api(monkeypatch):
    """
    On a Twisted outside the checked range nothing private is read: writes
    go through C{transport.write}, and the backlog is judged from the
    producer the transport pauses when its buffer is full.
    """
    monkeypatch.setattr(write_through, "internals_known", lambda version=None: False)
    port, server, client = yield tcp_pair()
    try:
        transport = server.transport
        assert not write_through.writes_through(transport)
        assert write_through.queued_bytes(transport) == 0
        writer = write_through.outbound(transport)
        write, queued = writer.write, writer.queued
        assert isinstance(transport.producer, write_through.ProducerGauge)
        assert write(b"hello") == 0
        yield until(lambda: client.received == b"hello")
        # Past bufferSize the transport pauses the gauge; it counts from
        # there until the transport has drained and resumes it.
        client.transport.pauseProducing()
        chunk = b"x" * 65536
        written = 0
        while queued() == 0:
            write(chunk)
            written += len(chunk)
            assert written < 64 * 1024 * 1024, "the transport never paused its producer"
        assert queued() >= transport.bufferSize
        before = queued()
        write(b"y" * 100)
        assert queued() == before + 100
        client.transport.resumeProducing()
        yield until(lambda: queued() == 0, timeout=10)
        yield until(lambda: len(client.received) == 5 + written + 100, timeout=10)
        transport.unregisterProducer()
    finally:
        yield close_pair(port, server, client)


def open_dispatch(**settings):
    factory = DispatchServer(attrs.evolve(ServerConfig(), **settings), Clock())
    address = IPv4Address("TCP", "10.0.0.9", 9)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return factory, protocol, transport


@pytest.mark.parametrize("catches_up", [True, False])
def test_slow_reader_rule_without_internals(monkeypatch, catches_up):
    """
    With the internals untrusted the slow-reader rule still holds: a
    client whose transport stays paused past the grace period is dropped,
    one that drains in time is kept.
    """
    monkeypatch.setattr(write_through, "internals_known", lambda version=None: False)
    factory, protocol, transport = open_dispatch(max_outbound_buffer=1000, outbound_grace=2.0)
    gauge = transport.producer
    assert isinstance(gauge, write_through.ProducerGauge)
    protocol.send(b"x" * 1500)
    assert not transport.disconnecting
    gauge.pauseProducing()
    protocol.send(b"x" * 1500)
    if catches_up:
        gauge.resumeProducing()
    factory.clock.advance(2.0)
    assert transport.disconnecting is not catches_up
    protocol.connectionLost(None)
    assert not factory.clock.getDelayedCalls()
