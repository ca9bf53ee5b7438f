"""
SIP transactions with a recording sender and task.Clock: retransmission
schedules (Timer E/A doubling to T2), timeouts (F/B → 408), transport
failure (503), server-side absorption of retransmitted requests, Timer J,
INVITE server behaviour (100, ACK, Timer G/H), and CANCEL.
"""

from __future__ import annotations

from twisted.internet import defer, task

from msnp.sip.message import Headers, Request, Response, parse_datagram
from msnp.sip.transaction import Hop, Timers, TransactionLayer, response_to

UDP = Hop("udp", "192.0.2.9", 5060)
TCP = Hop("tcp", "192.0.2.9", 5060)


class RecordingSender:
    """
    Records what the layer sends, with the clock time; can be told to fail.
    """

    def __init__(self, clock):
        self.clock = clock
        self.sent: list[tuple[float, object, Hop]] = []
        self.fail = False

    def send(self, message, hop):
        if self.fail:
            return defer.fail(ConnectionRefusedError("refused"))
        # Through the wire format, as a real transport would.
        self.sent.append((self.clock.seconds(), parse_datagram(message.to_bytes()), hop))
        return defer.succeed(None)

    def sent_by(self, hop):
        return ("198.51.100.1", 5060)

    def times(self, method=None, status=None):
        out = []
        for when, message, _ in self.sent:
            if method and isinstance(message, Request) and message.method == method:
                out.append(when)
            if status and isinstance(message, Response) and message.status == status:
                out.append(when)
        return out


def make_layer():
    clock = task.Clock()
    sender = RecordingSender(clock)
    received = []
    layer = TransactionLayer(clock, sender, lambda request, txn, source: received.append((request, txn)))
    return clock, sender, layer, received


def new_request(method="MESSAGE", cseq=1):
    headers = Headers()
    headers.add("From", "<sip:alice@example.com>;tag=a1")
    headers.add("To", "<sip:kim@partner.example>")
    headers.add("Call-ID", "call-1")
    headers.add("CSeq", f"{cseq} {method}")
    headers.add("Max-Forwards", "70")
    return Request(method, "sip:kim@partner.example", headers, b"hi")


def incoming(method="MESSAGE", branch="z9hG4bKin1"):
    raw = (
        f"{method} sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5070;branch={branch};rport\r\n"
        f"From: <sip:kim@partner.example>;tag=k1\r\nTo: <sip:alice@example.com>\r\nCall-ID: in-1\r\n"
        f"CSeq: 1 {method}\r\nContact: <sip:kim@192.0.2.9:5070>\r\nContent-Length: 0\r\n\r\n"
    )
    return parse_datagram(raw.encode())


def advance(clock, until):
    """
    Run every timer due up to C{until}, each at its own time.
    """
    while True:
        calls = [c.getTime() for c in clock.getDelayedCalls()]
        if not calls or min(calls) > until:
            break
        clock.advance(max(0, min(calls) - clock.seconds()))
    clock.advance(max(0, until - clock.seconds()))


def test_non_invite_client_retransmits_then_times_out_with_408():
    """
    Timer E: T1, 2T1, 4T1, then capped at T2; Timer F at 64·T1 gives 408.
    """
    clock, sender, layer, _ = make_layer()
    transaction = layer.request(new_request(), UDP)
    results = []
    transaction.result.addCallback(results.append)
    advance(clock, 40)
    times = sender.times(method="MESSAGE")
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[4:]) == {4.0}
    assert times[-1] < 32.0
    assert results[0].status == 408 and results[0].made_up
    assert not clock.getDelayedCalls()


def test_non_invite_client_over_tcp_does_not_retransmit():
    clock, sender, layer, _ = make_layer()
    transaction = layer.request(new_request(), TCP)
    advance(clock, 10)
    assert len(sender.times(method="MESSAGE")) == 1
    request = sender.sent[0][1]
    assert request.top_via.transport == "TCP" and request.top_via.branch.startswith("z9hG4bK")
    layer.message_received(response_to(request, 200, to_tag="t"), TCP)
    assert transaction.result.result.status == 200
    assert not clock.getDelayedCalls()


def test_provisional_response_slows_retransmission_to_t2():
    clock, sender, layer, _ = make_layer()
    transaction = layer.request(new_request(), UDP)
    request = sender.sent[0][1]
    layer.message_received(response_to(request, 100), UDP)
    advance(clock, 12.1)
    times = sender.times(method="MESSAGE")
    assert [round(t, 2) for t in times] == [0.0, 0.5, 4.5, 8.5, 12.5][: len(times)]
    layer.message_received(response_to(request, 202, to_tag="t"), UDP)
    assert transaction.result.result.status == 202
    # Timer K keeps the transaction briefly to absorb retransmitted responses.
    advance(clock, 20)
    assert not clock.getDelayedCalls()


def test_transport_failure_is_503():
    clock, sender, layer, _ = make_layer()
    sender.fail = True
    transaction = layer.request(new_request(), TCP)
    assert transaction.result.result.status == 503
    assert not clock.getDelayedCalls()


def test_large_requests_move_from_udp_to_tcp():
    """
    RFC 3261 §18.1.1: over 1300 bytes (unknown MTU) goes congestion controlled.
    """
    clock, sender, layer, _ = make_layer()
    request = new_request()
    request.body = b"x" * 1400
    layer.request(request, UDP)
    assert sender.sent[0][2].transport == "tcp" and sender.sent[0][1].top_via.transport == "TCP"
    layer.close()


def test_server_absorbs_retransmissions_and_keeps_state_for_timer_j():
    clock, sender, layer, received = make_layer()
    layer.message_received(incoming(), UDP)
    layer.message_received(incoming(), UDP)
    assert len(received) == 1
    request, transaction = received[0]
    transaction.respond(response_to(request, 200, to_tag="x"))
    layer.message_received(incoming(), UDP)
    assert sender.times(status=200) == [0.0, 0.0]
    # The response went to the source port (rport) with received= stamped.
    response = sender.sent[0][1]
    assert response.top_via.params["rport"] == "5060" and sender.sent[0][2].port == 5060
    advance(clock, 32.1)
    assert not clock.getDelayedCalls()
    layer.message_received(incoming(), UDP)
    assert len(received) == 2


def test_invite_server_sends_100_retransmits_final_until_ack():
    clock, sender, layer, received = make_layer()
    layer.message_received(incoming("INVITE"), UDP)
    assert sender.times(status=100) == [0.0]
    request, transaction = received[0]
    transaction.respond(response_to(request, 486, to_tag="b"))
    advance(clock, 1.6)
    assert [round(t, 2) for t in sender.times(status=486)] == [0.0, 0.5, 1.5]
    ack = incoming("ACK")
    ack.headers.set("To", "<sip:alice@example.com>;tag=b")
    layer.message_received(ack, UDP)
    advance(clock, 10)
    assert len(sender.times(status=486)) == 3
    assert not clock.getDelayedCalls()


def test_invite_client_acks_non_2xx_and_hands_2xx_up():
    clock, sender, layer, _ = make_layer()
    transaction = layer.request(new_request("INVITE"), UDP)
    invite = sender.sent[0][1]
    layer.message_received(response_to(invite, 488, to_tag="z"), UDP)
    ack = sender.sent[-1][1]
    assert ack.method == "ACK" and ack.top_via.branch == invite.top_via.branch and ack.to.tag == "z"
    assert transaction.result.result.status == 488
    second = layer.request(new_request("INVITE", cseq=2), TCP)
    invite = sender.sent[-1][1]
    layer.message_received(response_to(invite, 200, to_tag="y"), TCP)
    assert second.result.result.status == 200
    assert sender.sent[-1][1].method == "INVITE"  # the TU sends the ACK of a 2xx
    layer.close()
    assert layer.request(new_request("INVITE", cseq=3), TCP).result.result.status == 503
    assert not clock.getDelayedCalls()


def test_cancel():
    clock, sender, layer, received = make_layer()
    layer.message_received(incoming("INVITE"), UDP)
    cancel = incoming("CANCEL")
    layer.message_received(cancel, UDP)
    statuses = [m.status for _, m, _ in sender.sent if isinstance(m, Response)]
    assert statuses == [100, 200, 487]
    unknown = incoming("CANCEL", branch="z9hG4bKother")
    layer.message_received(unknown, UDP)
    assert sender.sent[-1][1].status == 481
    layer.close()
    assert not clock.getDelayedCalls()
