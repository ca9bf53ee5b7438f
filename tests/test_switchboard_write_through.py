"""
The switchboard writes straight to the socket while nothing is queued for
it and leaves the rest to Twisted's queue: over real TCP, a burst to a
participant who stops reading comes out whole and in order once they read
again, and one who never reads again is still dropped at the outbound
limit.
"""

from __future__ import annotations

import socket

import pytest_twisted

from msnp.write_through import queued_bytes
from test_switchboard import close_all, two_party


def server_side(server, handle: str):
    """
    The switchboard connection of C{handle} at the server.
    """
    for connection in server.service.switchboard.connections:
        session = connection.session
        if session is not None and session.ticket is not None and session.ticket.handle == handle:
            return connection
    return None


def lift_rate_limits(server) -> None:
    server.config.command_rate = 1e9
    server.config.command_burst = 10**9


def payload_of(n: int) -> bytes:
    return b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nmessage %06d " % n + b"." * 150


@pytest_twisted.inlineCallbacks
def test_queued_burst_arrives_whole_and_in_order(server):
    """
    Bob stops reading while Alice sends a burst larger than the socket
    buffers hold: part of it waits in Twisted's queue.  When Bob reads
    again he gets every message byte-exact and in order, and Alice every
    ACK in order.
    """
    lift_rate_limits(server)
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    count = 6_000
    bob_at_server = server_side(server, "bob@example.com")
    assert bob_at_server.writes_through
    # A small send buffer, so that the burst cannot all fit in the kernel.
    bob_at_server.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    bob.transport.pauseProducing()
    alice.send_raw(b"".join(b"MSG %d A %d\r\n" % (n, len(payload_of(n))) + payload_of(n) for n in range(1, count + 1)))
    yield alice.wait_for_lines(count)
    assert [line.text for line in alice.received] == [f"ACK {n}" for n in range(1, count + 1)]
    assert queued_bytes(bob_at_server.transport) > 0, "the burst never reached Twisted's queue"
    alice.received.clear()
    bob_at_server.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    bob.transport.resumeProducing()
    yield bob.wait_for_lines(count, timeout=10)
    assert len(bob.received) == count
    for n, line in enumerate(bob.received, 1):
        assert line.text == f"MSG alice@example.com Alice {len(payload_of(n))}"
        assert line.payload == payload_of(n)
    bob.received.clear()
    # Nothing queued any more: the next message goes straight out.
    alice.send_payload("MSG 1 A", b"after")
    yield alice.expect_line("ACK 1")
    received = yield bob.expect_line("MSG alice@example.com Alice 5")
    assert received.payload == b"after"
    assert queued_bytes(bob_at_server.transport) == 0
    yield close_all(alice, bob, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_participant_who_stops_reading_is_dropped(server):
    """
    Bob never reads again: once more than the outbound limit waits for
    him the server drops him, Alice sees him leave and her messages are
    refused (NAK) from then on.
    """
    lift_rate_limits(server)
    server.config.max_outbound_buffer = 128 * 1024
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    bob.transport.pauseProducing()
    trid = 0
    sent = 0
    while server_side(server, "bob@example.com") is not None:
        assert sent < 200_000, "Bob was never dropped"
        batch = []
        for _ in range(500):
            trid += 1
            batch.append(b"MSG %d A %d\r\n" % (trid, len(payload_of(trid))) + payload_of(trid))
        alice.send_raw(b"".join(batch))
        sent += len(batch)
        while not any(line.text.endswith(f" {trid}") for line in alice.received):
            yield alice._wait(5)
    texts = [line.text for line in alice.received]
    assert "BYE bob@example.com" in texts
    alice.received.clear()
    alice.send_payload("MSG 1 A", b"anyone?")
    yield alice.expect_line("NAK 1")
    bob.transport.resumeProducing()
    yield bob.wait_closed()
    yield close_all(alice, alice_ns, bob_ns)
