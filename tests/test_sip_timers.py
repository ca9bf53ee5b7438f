"""
The edge's own timers on task.Clock, with a recording sender instead of
sockets: subscription expiry and NOTIFY coalescing at the notifier,
refresh and retry at the watcher, and 2xx-to-INVITE retransmission until
the ACK (or BYE when none comes).
"""

from __future__ import annotations

from twisted.internet import task

from msnp.sip.edge import SipEdge, SipSettings
from msnp.sip.grammar import URI
from msnp.sip.link import ALLOWED
from msnp.sip.message import Request, Response, parse_datagram
from msnp.sip.peers import Peer
from msnp.sip.transaction import Hop, response_to
from test_sip_edge import ALICE, KIM, FakeMessenger
from test_sip_transaction import RecordingSender, advance

PEER = Hop("udp", "192.0.2.9", 5060)


def make_edge(**settings):
    clock = task.Clock()
    sender = RecordingSender(clock)
    link = FakeMessenger()
    config = SipSettings(domains=["example.com"], peers=[Peer("partner.example", URI.parse("sip:192.0.2.9:5060"))], udp_port=0, **settings)
    edge = SipEdge(config, link, sender, clock)
    return clock, sender, link, edge


def feed(edge, text: str, hop=PEER):
    message = parse_datagram(text.replace("\n", "\r\n").encode())
    edge.agent.layer.message_received(message, hop)
    return message


def subscribe(edge, expires=600, branch="z9hG4bKs1"):
    return feed(
        edge,
        f"SUBSCRIBE sip:{ALICE} SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch={branch}\nFrom: <sip:{KIM}>;tag=k1\n"
        f"To: <sip:{ALICE}>\nCall-ID: sub-1\nCSeq: 1 SUBSCRIBE\nContact: <sip:kim@192.0.2.9:5060>\nEvent: presence\n"
        f"Expires: {expires}\nContent-Length: 0\n\n",
    )


def sent(sender, method=None, status=None):
    """
    What the edge sent: requests once per transaction (UDP retransmissions
    share the branch), responses as often as sent.
    """
    out, branches = [], set()
    for _, message, _ in sender.sent:
        if method and isinstance(message, Request) and message.method == method:
            if message.top_via.branch not in branches:
                branches.add(message.top_via.branch)
                out.append(message)
        if status and isinstance(message, Response) and message.status == status:
            out.append(message)
    return out


def answer_all(edge, sender, method, status=200):
    for request in sent(sender, method=method):
        if not getattr(request, "answered", False):
            request.answered = True
            edge.agent.layer.message_received(response_to(request, status, to_tag="k1"), PEER)


def test_subscription_expires_with_a_terminated_notify():
    clock, sender, link, edge = make_edge()
    link.access[(ALICE, KIM)] = ALLOWED
    subscribe(edge, expires=600)
    clock.advance(0)
    [ok] = sent(sender, status=200)
    assert ok.headers.get("Expires") == "600"
    answer_all(edge, sender, "NOTIFY")
    advance(clock, 599)
    assert len(sent(sender, method="NOTIFY")) == 1
    advance(clock, 601)
    last = sent(sender, method="NOTIFY")[-1]
    assert last.headers.get("Subscription-State") == "terminated;reason=timeout"
    answer_all(edge, sender, "NOTIFY")
    assert not edge.notifier.subscriptions
    advance(clock, 700)
    edge.agent.close()
    assert not clock.getDelayedCalls()


def test_flapping_status_is_coalesced_to_one_notify_per_interval():
    clock, sender, link, edge = make_edge(notify_interval=5.0)
    link.access[(ALICE, KIM)] = ALLOWED
    subscribe(edge)
    clock.advance(0)
    answer_all(edge, sender, "NOTIFY")
    for status in ("BSY", "AWY", "BRB"):
        link.status[ALICE] = status
        edge.presence_changed(ALICE)
        clock.advance(1)
    assert len(sent(sender, method="NOTIFY")) == 1
    advance(clock, 5.0)
    notifies = sent(sender, method="NOTIFY")
    assert len(notifies) == 2 and b"Be Right Back" in notifies[-1].body
    answer_all(edge, sender, "NOTIFY")
    edge.agent.close()
    for subscription in list(edge.notifier.subscriptions.values()):
        subscription.cancel_timers()
    assert not clock.getDelayedCalls()


def test_watcher_refreshes_before_expiry_and_retries_after_refusal():
    clock, sender, link, edge = make_edge(retry_interval=300.0)
    edge.watch(ALICE, KIM)
    clock.advance(0)
    [first] = sent(sender, method="SUBSCRIBE")
    response = response_to(first, 200, to_tag="n1")
    response.headers.add("Expires", "100")
    response.headers.add("Contact", "<sip:kim@192.0.2.9:5060>")
    edge.agent.layer.message_received(response, PEER)
    advance(clock, 79)
    assert len(sent(sender, method="SUBSCRIBE")) == 1
    advance(clock, 81)
    refresh = sent(sender, method="SUBSCRIBE")[-1]
    assert refresh.to.tag == "n1" and refresh.cseq.number == 2 and refresh.call_id == first.call_id
    edge.agent.layer.message_received(response_to(refresh, 403), PEER)
    assert ("contact_presence", ALICE, KIM, None) not in link.calls  # never shown online: nothing to take back
    advance(clock, 81 + 299)
    assert len(sent(sender, method="SUBSCRIBE")) == 2
    advance(clock, 81 + 301)
    retry = sent(sender, method="SUBSCRIBE")[-1]
    assert retry.call_id != first.call_id and retry.to.tag is None
    edge.unwatch(ALICE, KIM)
    edge.agent.close()
    assert not clock.getDelayedCalls()


def test_2xx_to_invite_is_retransmitted_until_ack_else_bye():
    clock, sender, link, edge = make_edge()
    feed(
        edge,
        f"INVITE sip:{ALICE} SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKi1\nFrom: <sip:{KIM}>;tag=k1\n"
        f"To: <sip:{ALICE}>\nCall-ID: inv-1\nCSeq: 1 INVITE\nContact: <sip:kim@192.0.2.9:5060>\nContent-Length: 0\n\n",
    )
    clock.advance(0)
    advance(clock, 2.0)
    times = [when for when, message, _ in sender.sent if isinstance(message, Response) and message.status == 200]
    assert [round(t, 2) for t in times] == [0.0, 0.5, 1.5]
    advance(clock, 40)
    byes = sent(sender, method="BYE")
    assert len(byes) == 1
    answer_all(edge, sender, "BYE")
    assert not edge.im.sessions
    advance(clock, 100)
    edge.agent.close()
    assert not clock.getDelayedCalls()


def test_refusal_overtaken_by_the_contacts_own_subscribe_is_retried_at_once():
    """
    Two servers adding each other: the contact's SUBSCRIBE (their consent)
    arrives before the 403 that answers ours, on another connection; the
    refusal then is stale, and ours is sent again at once, not in 300 s.
    """
    clock, sender, link, edge = make_edge(retry_interval=300.0)
    edge.watch(ALICE, KIM)
    clock.advance(0)
    [first] = sent(sender, method="SUBSCRIBE")
    subscribe(edge)  # kim subscribes to alice meanwhile
    clock.advance(0)
    edge.agent.layer.message_received(response_to(first, 403), PEER)
    clock.advance(0)
    subscribes = sent(sender, method="SUBSCRIBE")
    assert len(subscribes) == 2 and subscribes[-1].call_id != first.call_id
    # A plain refusal waits for the retry interval as before.
    edge.agent.layer.message_received(response_to(subscribes[-1], 403), PEER)
    advance(clock, 299)
    assert len(sent(sender, method="SUBSCRIBE")) == 2
    edge.unwatch(ALICE, KIM)
    edge.agent.close()
    assert not clock.getDelayedCalls()


def test_route_by_contact_addresses_requests_to_the_learned_contact():
    """
    A peer with route=contact: new requests to kim go to the Contact kim
    last sent (To stays kim's address of record); without it, to the AOR.
    """
    clock = task.Clock()
    sender = RecordingSender(clock)
    link = FakeMessenger()
    peer = Peer("partner.example", URI.parse("sip:192.0.2.9:5060"), contact_routing=True)
    edge = SipEdge(SipSettings(domains=["example.com"], peers=[peer], udp_port=0), link, sender, clock)
    edge.watch(ALICE, KIM)
    clock.advance(0)
    [first] = sent(sender, method="SUBSCRIBE")
    assert first.uri == f"sip:{KIM}"
    subscribe(edge)  # Contact: <sip:kim@192.0.2.9:5060>
    clock.advance(0)
    edge.agent.layer.message_received(response_to(first, 403), PEER)
    clock.advance(0)
    again = sent(sender, method="SUBSCRIBE")[-1]
    assert again.uri == "sip:kim@192.0.2.9:5060" and again.to.uri.address_of_record == KIM
    edge.unwatch(ALICE, KIM)
    edge.agent.close()
    for subscription in list(edge.notifier.subscriptions.values()):
        subscription.cancel_timers()
