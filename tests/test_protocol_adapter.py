"""
The Twisted adapter (L{CommandProtocol}) over the framer, with a recording
session: pipelined commands, cut into any reads, reach the session whole
and in order; none reaches it while an earlier one's Deferred is pending,
the transport is paused exactly then, and what arrived meanwhile is taken
when the Deferred fires.
"""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msnp.config import ServerConfig
from msnp.msn import wire
from msnp.msn.protocol import CommandProtocol


class RecordingSession:
    """
    Answers C{SLW} with a Deferred the test fires; every other command at
    once.  Fails the test if a command arrives while one is pending.
    """

    def __init__(self, connection):
        self.connection = connection
        self.seen: list[wire.Command] = []
        self.pending: list[Deferred] = []

    def command_received(self, command):
        assert not self.pending, f"{command} arrived while an earlier command was pending"
        self.seen.append(command)
        if command.name == "SLW":
            d = Deferred()
            d.addCallback(lambda _: self.connection.send(b"SLW %d\r\n" % command.trid))
            self.pending.append(d)
            return d
        self.connection.send(b"%s %d\r\n" % (command.name.encode(), command.trid))
        return None

    def connection_lost(self):
        pass


class PayloadProtocol(CommandProtocol):
    payload_commands = frozenset({"PAY"})


class RecordingFactory(Factory):
    protocol = PayloadProtocol

    def __init__(self):
        self.config = attrs.evolve(ServerConfig(), command_burst=10**6, command_rate=1e6)
        self.clock = Clock()
        self.sessions = []

    def make_session(self, connection):
        session = RecordingSession(connection)
        self.sessions.append(session)
        return session


def command(name: str, trid: int, payload: bytes):
    if name == "PAY":
        return wire.format_payload("PAY", trid, ("x",), payload), wire.Command("PAY", trid, ("x",), payload)
    return wire.format_line(name, trid, "a"), wire.Command(name, trid, ("a",))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["SLW", "ZZZ", "PAY"]), st.binary(max_size=30)), min_size=1, max_size=20),
    st.lists(st.integers(1, 40), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_pipelined_commands_wait_for_pending_ones(script, sizes, fire_after_read):
    """
    Any pipelined stream, any reads, Deferreds fired after some reads:
    every command reaches the session once, in order, never while another
    is pending, and every answer is written in order.
    """
    factory = RecordingFactory()
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
    protocol.makeConnection(transport)
    session = factory.sessions[0]
    pieces = [command(name, trid, payload) for trid, (name, payload) in enumerate(script, 1)]
    stream = b"".join(data for data, _ in pieces)
    position = index = 0
    while position < len(stream):
        size = sizes[index % len(sizes)]
        protocol.dataReceived(stream[position : position + size])
        position += size
        assert (transport.producerState == "paused") == bool(session.pending)
        if session.pending and fire_after_read[index % len(fire_after_read)]:
            session.pending.pop().callback(None)
        index += 1
    while session.pending:
        session.pending.pop().callback(None)
        assert (transport.producerState == "paused") == bool(session.pending)
    assert session.seen == [expected for _, expected in pieces]
    assert transport.value() == b"".join(b"%s %d\r\n" % (name.encode(), trid) for trid, (name, _) in enumerate(script, 1))
    protocol.connectionLost(None)
