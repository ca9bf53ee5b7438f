"""
The SIP edge over real UDP and TCP on 127.0.0.1, driven by the test peer
(tests/sippeer.py) as the federated domain partner.example, with a
recording fake of the messenger behind L{IMessengerLink}: presence
subscriptions both ways, pager-mode and session IM both ways, typing, and
every refusal (403, 404, 405, 415, 420, 423, 481, 489, 501).
"""

from __future__ import annotations

import base64

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface import implementer
from zope.interface.verify import verifyObject

from msnp.sip.edge import SipService, SipSettings
from msnp.sip.grammar import Address, URI
from msnp.sip.link import ALLOWED, BLOCKED, FILTERED, DeliveryFailed, IMessengerLink, ISipFederation, Left, PresenceView, Text, Typing
from msnp.sip.peers import Peer
from sippeer import Dialog, SipPeer, contact_uri, random_token

KIM = "kim@partner.example"
ALICE = "alice@example.com"


@implementer(IMessengerLink)
class FakeMessenger:
    """
    Local accounts, privacy and status in dictionaries; records what the
    edge tells it.
    """

    def __init__(self):
        self.accounts = {ALICE, "bob@example.com"}
        self.access = {}  # (owner, watcher) -> access
        self.status = {ALICE: "NLN"}
        self.names = {ALICE: 'Alice "A\\" \u00e9\r\n'}
        self.calls = []
        self.refuse_delivery = None
        self._waiters = []

    def account_exists(self, handle):
        return defer.succeed(handle in self.accounts)

    def presence_for(self, owner, watcher):
        access = self.access.get((owner, watcher), FILTERED)
        return defer.succeed(PresenceView(access, self.status.get(owner) if access == ALLOWED else None))

    def display_name(self, handle):
        return defer.succeed(self.names.get(handle, ""))

    def watcher_subscribed(self, owner, watcher, name):
        self._record(("watcher_subscribed", owner, watcher))
        return defer.succeed(None)

    def contact_presence(self, owner, contact, status):
        self._record(("contact_presence", owner, contact, status))

    def deliver(self, sender, recipient, event):
        if self.refuse_delivery:
            return defer.fail(DeliveryFailed(self.refuse_delivery))
        self._record(("deliver", sender, recipient, event))
        return defer.succeed(None)

    def _record(self, call):
        self.calls.append(call)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    @defer.inlineCallbacks
    def wait_for(self, call, timeout=5.0):
        deadline = reactor.seconds() + timeout
        while call not in self.calls:
            if reactor.seconds() > deadline:
                raise AssertionError(f"{call} not seen; calls: {self.calls}")
            d = defer.Deferred()
            self._waiters.append(d)
            timer = reactor.callLater(0.1, lambda: d.called or d.callback(None))
            yield d
            if timer.active():
                timer.cancel()


class Setup:
    def __init__(self, transport):
        self.transport = transport
        self.link = FakeMessenger()
        self.peer = SipPeer(transport)
        self.peer.start(None)
        uri = URI.parse(f"sip:127.0.0.1:{self.peer.port};transport={transport}")
        self.settings = SipSettings(
            domains=["example.com"],
            peers=[Peer("partner.example", uri)],
            stream_endpoints=["tcp:0:interface=127.0.0.1"],
            udp_port=0,
            notify_interval=0.0,
        )
        self.service = SipService(reactor, self.settings, self.link)
        self.service.startService()
        self.edge_port = self.service.port(transport)
        self.peer.target = ("127.0.0.1", self.edge_port)

    @property
    def edge(self):
        return self.service.edge

    @defer.inlineCallbacks
    def stop(self):
        yield self.service.stopService()
        yield self.peer.stop()

    def subscribe(self, target=ALICE, expires=600, extra=(), call_id=None, from_tag=None):
        self.call_id = call_id or random_token()
        self.from_tag = from_tag or random_token()
        headers = [
            ("From", f'"Kim" <sip:{KIM}>;tag={self.from_tag}'),
            ("To", f"<sip:{target}>"),
            ("Call-ID", self.call_id),
            ("CSeq", "1 SUBSCRIBE"),
            ("Contact", f"<sip:kim@127.0.0.1:{self.peer.port};transport={self.transport}>"),
            ("Event", "presence"),
            ("Expires", str(expires)),
        ] + list(extra)
        return self.peer.request("SUBSCRIBE", f"sip:{target}", headers)

    def message(self, body: bytes, content_type="text/plain;charset=UTF-8", target=ALICE, sender=KIM, extra=()):
        headers = [
            ("From", f"<sip:{sender}>;tag={random_token()}"),
            ("To", f"<sip:{target}>"),
            ("Call-ID", random_token()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", content_type),
        ] + list(extra)
        return self.peer.request("MESSAGE", f"sip:{target}", headers, body)


@pytest.fixture(params=["udp", "tcp"])
def sip(request):
    setup = Setup(request.param)
    yield setup
    pytest_twisted.blockon(setup.stop())


def test_interfaces(sip):
    verifyObject(ISipFederation, sip.edge)
    verifyObject(IMessengerLink, sip.link)


@pytest_twisted.inlineCallbacks
def test_filtered_watcher_gets_403_and_lands_on_the_reverse_list(sip):
    """
    OCS PIC step 2: until alice authorises kim, 403 with ms-diagnostics;
    alice's reverse list learns of kim all the same.
    """
    response = yield sip.subscribe()
    assert response.status == 403
    assert "PRESENCE_FILTERED" in response.get("ms-diagnostics")
    assert ("watcher_subscribed", ALICE, KIM) in sip.link.calls


@pytest_twisted.inlineCallbacks
def test_authorised_subscription_notify_refresh_and_unsubscribe(sip):
    sip.link.access[(ALICE, KIM)] = ALLOWED
    response = yield sip.subscribe()
    assert response.status == 200 and int(response.get("expires")) == 600
    notify = yield sip.peer.next_request("NOTIFY")
    assert notify.get("subscription-state").startswith("active;expires=")
    assert notify.get("content-type") == "application/pidf+xml"
    assert "<basic>open</basic>" in notify.text and "<note>Online</note>" in notify.text
    assert notify.tag("from") == response.tag("to") and notify.tag("to") == sip.from_tag
    sip.peer.respond(notify, 200)

    # alice goes busy: a NOTIFY with the MSN state in note and RPID.
    sip.link.status[ALICE] = "BSY"
    yield sip.edge.presence_changed(ALICE)
    notify = yield sip.peer.next_request("NOTIFY")
    assert "<basic>open</basic>" in notify.text and "<rpid:busy/>" in notify.text
    sip.peer.respond(notify, 200)

    dialog = Dialog(sip.peer, sip.call_id, f"<sip:{KIM}>;tag={sip.from_tag}", f"<sip:{ALICE}>;tag={response.tag('to')}", contact_uri(response))
    refresh = yield dialog.request("SUBSCRIBE", [("Event", "presence"), ("Expires", "300"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    assert refresh.status == 200 and refresh.get("expires") == "300"
    notify = yield sip.peer.next_request("NOTIFY")
    sip.peer.respond(notify, 200)

    # Offline is basic closed.
    sip.link.status[ALICE] = None
    yield sip.edge.presence_changed(ALICE)
    notify = yield sip.peer.next_request("NOTIFY")
    assert "<basic>closed</basic>" in notify.text
    sip.peer.respond(notify, 200)

    gone = yield dialog.request("SUBSCRIBE", [("Event", "presence"), ("Expires", "0"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    assert gone.status == 200
    notify = yield sip.peer.next_request("NOTIFY")
    assert notify.get("subscription-state") == "terminated;reason=timeout"
    sip.peer.respond(notify, 200)
    assert not sip.edge.notifier.subscriptions
    again = yield dialog.request("SUBSCRIBE", [("Event", "presence"), ("Expires", "300"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    assert again.status == 481


@pytest_twisted.inlineCallbacks
def test_blocking_terminates_the_subscription(sip):
    sip.link.access[(ALICE, KIM)] = ALLOWED
    response = yield sip.subscribe(extra=[("Accept", "application/xpidf+xml, application/pidf+xml")])
    assert response.status == 200
    notify = yield sip.peer.next_request("NOTIFY")
    assert notify.get("content-type") == "application/xpidf+xml"
    assert '<msnsubstatus substatus="online"/>' in notify.text
    sip.peer.respond(notify, 200)
    sip.link.access[(ALICE, KIM)] = BLOCKED
    yield sip.edge.presence_changed(ALICE)
    notify = yield sip.peer.next_request("NOTIFY")
    assert notify.get("subscription-state") == "terminated;reason=rejected"
    assert not notify.body
    sip.peer.respond(notify, 200)
    response = yield sip.subscribe()
    assert response.status == 403


@pytest_twisted.inlineCallbacks
def test_notify_refused_by_the_watcher_ends_the_subscription(sip):
    sip.link.access[(ALICE, KIM)] = ALLOWED
    yield sip.subscribe()
    notify = yield sip.peer.next_request("NOTIFY")
    sip.peer.respond(notify, 481, "Call/Transaction Does Not Exist")
    for _ in range(50):
        if not sip.edge.notifier.subscriptions:
            break
        yield deferLater(0.05)
    assert not sip.edge.notifier.subscriptions


def deferLater(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.inlineCallbacks
def test_refusals(sip):
    """
    Each bad SUBSCRIBE or request gets the protocol's own answer.
    """
    response = yield sip.subscribe(extra=[("Event", "presence.winfo")])
    # two Event headers: the first (presence) counts; use a clean one
    bad_event = yield sip.peer.request(
        "SUBSCRIBE",
        f"sip:{ALICE}",
        [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>"), ("Call-ID", random_token()), ("CSeq", "1 SUBSCRIBE"),
         ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>"), ("Event", "dialog")],
    )
    assert bad_event.status == 489 and bad_event.get("allow-events") == "presence"
    brief = yield sip.subscribe(expires=5)
    assert brief.status == 423 and brief.get("min-expires") == "60"
    unknown = yield sip.subscribe(target="nobody@example.com")
    assert unknown.status == 404
    foreign = yield sip.subscribe(target="someone@elsewhere.example")
    assert foreign.status == 404
    unacceptable = yield sip.subscribe(extra=[("Accept", "application/rlmi+xml")])
    assert unacceptable.status == 406
    stray = yield sip.peer.request(
        "NOTIFY", f"sip:{ALICE}",
        [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>;tag=nosuch"), ("Call-ID", random_token()), ("CSeq", "1 NOTIFY"),
         ("Event", "presence"), ("Subscription-State", "active")],
    )
    assert stray.status == 481
    bye = yield sip.peer.request(
        "BYE", f"sip:{ALICE}", [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>;tag=x"), ("Call-ID", random_token()), ("CSeq", "1 BYE")]
    )
    assert bye.status == 481
    register = yield sip.peer.request(
        "REGISTER", "sip:example.com", [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{KIM}>"), ("Call-ID", random_token()), ("CSeq", "1 REGISTER")]
    )
    assert register.status == 405 and "SUBSCRIBE" in register.get("allow")
    unknown_method = yield sip.peer.request(
        "FROBNICATE", f"sip:{ALICE}", [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>"), ("Call-ID", random_token()), ("CSeq", "1 FROBNICATE")]
    )
    assert unknown_method.status == 501
    required = yield sip.message(b"hi", extra=[("Require", "100rel")])
    assert required.status == 420 and required.get("unsupported") == "100rel"
    html = yield sip.message(b"<b>hi</b>", content_type="text/html")
    assert html.status == 415 and "text/plain" in html.get("accept")
    options = yield sip.peer.request(
        "OPTIONS", f"sip:{ALICE}", [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>"), ("Call-ID", random_token()), ("CSeq", "1 OPTIONS")]
    )
    assert options.status == 200 and "MESSAGE" in options.get("allow")


@pytest_twisted.inlineCallbacks
def test_requests_from_outside_the_peer_are_forbidden(sip):
    stranger = yield sip.message(b"hi", sender="eve@elsewhere.example")
    assert stranger.status == 403
    sip.link.access[(ALICE, KIM)] = ALLOWED
    # The right domain from the wrong address: the peer is configured at
    # 127.0.0.1, so pretend it lives elsewhere.
    sip.edge.peers.peers["partner.example"].hops = []
    sip.edge.peers.peers["partner.example"].uri = URI.parse("sip:192.0.2.55:5060")
    sip.edge.peers.peers["partner.example"].resolved_at = -1e18
    spoofed = yield sip.subscribe()
    assert spoofed.status == 403
    assert ("watcher_subscribed", ALICE, KIM) not in sip.link.calls


@pytest_twisted.inlineCallbacks
def test_bad_bytes_get_400_or_are_dropped(sip):
    data, _ = sip.peer.build("MESSAGE", f"sip:{ALICE}", [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>"), ("Call-ID", "c1"), ("CSeq", "x MESSAGE")])
    sip.peer.send_raw(data)
    for _ in range(50):
        responses = [m for m in sip.peer.received if not m.is_request]
        if responses:
            break
        yield deferLater(0.05)
    assert responses[0].status == 400
    # Still serving afterwards.
    response = yield sip.message(b"still there?")
    assert response.status == 200


@pytest_twisted.inlineCallbacks
def test_pager_mode_messages_and_typing_reach_the_user(sip):
    response = yield sip.message("Grüße, alice".encode("utf-8"))
    assert response.status == 200 and not response.body
    assert ("deliver", KIM, ALICE, Text("Grüße, alice")) in sip.link.calls
    composing = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
        b"<state>active</state><refresh>60</refresh></isComposing>"
    )
    response = yield sip.message(composing, content_type="application/im-iscomposing+xml")
    assert response.status == 200
    assert ("deliver", KIM, ALICE, Typing()) in sip.link.calls
    cpim = b"From: <sip:kim@partner.example>\r\nTo: <sip:alice@example.com>\r\n\r\nContent-Type: text/plain\r\n\r\nvia cpim"
    response = yield sip.message(cpim, content_type="message/cpim")
    assert response.status == 200 and ("deliver", KIM, ALICE, Text("via cpim")) in sip.link.calls
    sip.link.refuse_delivery = 480
    response = yield sip.message(b"anyone?")
    assert response.status == 480
    response = yield sip.message(b"\xff\xfe", content_type="text/plain")
    assert response.status == 400


@pytest_twisted.inlineCallbacks
def test_ocs_style_im_session(sip):
    """
    INVITE with m=message SDP and ms-text-format, 200 with To tag and SDP,
    ACK, in-dialog MESSAGE, INFO KeyboardActivity, BYE (sip.md §8).
    """
    call_id, tag = random_token(), random_token()
    sdp = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5061 sip null\r\na=accept-types:text/plain\r\n"
    first = base64.b64encode("hello from OC".encode()).decode()
    response = yield sip.peer.request(
        "INVITE",
        f"sip:{ALICE}",
        [
            ("From", f"<sip:{KIM}>;tag={tag};epid=abc123"),
            ("To", f"<sip:{ALICE}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port};transport={sip.transport};opaque=user:epid:x;gruu>"),
            ("ms-text-format", f"text/plain; charset=UTF-8;ms-body={first}"),
            ("Content-Type", "application/sdp"),
        ],
        sdp,
    )
    assert response.status == 200 and response.get("content-type") == "application/sdp"
    assert b"m=message" in response.body
    assert ("deliver", KIM, ALICE, Text("hello from OC")) in sip.link.calls
    dialog = Dialog(sip.peer, call_id, f"<sip:{KIM}>;tag={tag};epid=abc123", f"<sip:{ALICE}>;tag={response.tag('to')}", contact_uri(response))
    dialog.ack(1)
    reply = yield dialog.request("MESSAGE", [("Content-Type", "text/plain; charset=UTF-8")], b"hi")
    assert reply.status == 200 and ("deliver", KIM, ALICE, Text("hi")) in sip.link.calls
    info = yield dialog.request("INFO", [("Content-Type", "application/xml")], b'<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>')
    assert info.status == 200 and ("deliver", KIM, ALICE, Typing()) in sip.link.calls
    old = yield dialog.request("MESSAGE", [("Content-Type", "text/plain")], b"late", cseq=2)
    assert old.status == 500
    bye = yield dialog.request("BYE")
    assert bye.status == 200
    yield sip.link.wait_for(("deliver", KIM, ALICE, Left()))
    after = yield dialog.request("MESSAGE", [("Content-Type", "text/plain")], b"gone?")
    assert after.status == 481


@pytest_twisted.inlineCallbacks
def test_invite_without_a_text_session_is_488(sip):
    response = yield sip.peer.request(
        "INVITE", f"sip:{ALICE}",
        [("From", f"<sip:{KIM}>;tag=1"), ("To", f"<sip:{ALICE}>"), ("Call-ID", random_token()), ("CSeq", "1 INVITE"),
         ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>"), ("Content-Type", "application/sdp")],
        b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
    )
    assert response.status == 488


@pytest_twisted.inlineCallbacks
def test_watching_a_federated_contact(sip):
    """
    alice watches kim: SUBSCRIBE goes to the peer, its NOTIFYs become MSN
    states; unwatch unsubscribes in the dialog.
    """
    sip.edge.watch(ALICE, KIM)
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    assert subscribe.uri == f"sip:{KIM}" and subscribe.get("event") == "presence"
    assert "application/pidf+xml" in subscribe.get("accept")
    # alice's friendly name, quoted, for kim's side to show.
    assert subscribe.get("from").startswith('"Alice \\"A\\\\\\" \u00e9" <sip:alice@example.com>;tag=')
    assert Address.parse(subscribe.get("from")).display == 'Alice "A\\" \u00e9'
    tag = sip.peer.respond(subscribe, 200, headers=[("Expires", "600"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    dialog = Dialog(sip.peer, subscribe.get("call-id"), f"<sip:{KIM}>;tag={tag}", subscribe.get("from"), contact_uri(subscribe), cseq=0)
    pidf = (
        b'<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:kim@partner.example">'
        b'<tuple id="t1"><status><basic>open</basic></status><note>Away</note></tuple></presence>'
    )
    reply = yield dialog.request("NOTIFY", [("Event", "presence"), ("Subscription-State", "active;expires=600"), ("Content-Type", "application/pidf+xml")], pidf)
    assert reply.status == 200
    assert ("contact_presence", ALICE, KIM, "AWY") in sip.link.calls
    closed = pidf.replace(b"open", b"closed")
    yield dialog.request("NOTIFY", [("Event", "presence"), ("Subscription-State", "active;expires=500"), ("Content-Type", "application/pidf+xml")], closed)
    assert ("contact_presence", ALICE, KIM, None) in sip.link.calls
    sip.edge.unwatch(ALICE, KIM)
    unsubscribe = yield sip.peer.next_request("SUBSCRIBE")
    assert unsubscribe.get("expires") == "0" and unsubscribe.tag("to") == tag
    sip.peer.respond(unsubscribe, 200)


@pytest_twisted.inlineCallbacks
def test_notify_before_the_2xx_makes_the_dialog(sip):
    sip.edge.watch(ALICE, KIM)
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    tag = random_token()
    dialog = Dialog(sip.peer, subscribe.get("call-id"), f"<sip:{KIM}>;tag={tag}", subscribe.get("from"), contact_uri(subscribe), cseq=0)
    pidf = b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:kim@partner.example"><tuple id="a"><status><basic>open</basic></status></tuple></presence>'
    reply = yield dialog.request(
        "NOTIFY",
        [("Event", "presence"), ("Subscription-State", "active;expires=600"), ("Content-Type", "application/pidf+xml"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")],
        pidf,
    )
    assert reply.status == 200
    assert ("contact_presence", ALICE, KIM, "NLN") in sip.link.calls
    sip.peer.respond(subscribe, 200, headers=[("Expires", "600"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")], to_tag=tag)
    sip.edge.unwatch(ALICE, KIM)
    unsubscribe = yield sip.peer.next_request("SUBSCRIBE")
    sip.peer.respond(unsubscribe, 200)


@pytest_twisted.inlineCallbacks
def test_refused_watch_shows_offline_and_retries_when_the_contact_subscribes(sip):
    sip.link.status[ALICE] = "NLN"
    sip.link.calls.append(("contact_presence", ALICE, KIM, "NLN"))
    sip.edge.watcher.watch(ALICE, KIM).status = "NLN"
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    sip.peer.respond(subscribe, 403, "Forbidden")
    yield sip.link.wait_for(("contact_presence", ALICE, KIM, None))
    # kim subscribes to alice: that is the moment to try again.
    yield sip.subscribe()
    again = yield sip.peer.next_request("SUBSCRIBE")
    assert again.get("call-id") != subscribe.get("call-id")
    sip.peer.respond(again, 403, "Forbidden")
    yield deferLater(0.1)


def accept_watch(sip, subscribe):
    """
    The peer accepts the edge's SUBSCRIBE for kim; the peer's side of the
    dialog.
    """
    tag = sip.peer.respond(subscribe, 200, headers=[("Expires", "600"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    return Dialog(sip.peer, subscribe.get("call-id"), f"<sip:{KIM}>;tag={tag}", subscribe.get("from"), contact_uri(subscribe), cseq=0)


@defer.inlineCallbacks
def watch_refused(sip):
    for _ in range(100):
        if sip.edge.watcher.watches[(ALICE, KIM)].state == "refused":
            return
        yield deferLater(0.05)
    raise AssertionError("alice's subscription to kim was not refused")


@pytest_twisted.inlineCallbacks
def test_allowing_a_refused_watcher_prompts_it_at_once(sip):
    """
    kim was refused (403, or terminated when blocked); once alice allows
    kim, alice's own subscription to kim is refreshed at once, the
    prompt on which kim's server subscribes again (as this edge does in
    L{test_refused_watch_shows_offline_and_retries_when_the_contact_subscribes})
    rather than after its retry interval.  Nothing is sent while kim is
    still refused, nor once kim is in.
    """
    sip.edge.watch(ALICE, KIM)
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    dialog = accept_watch(sip, subscribe)
    response = yield sip.subscribe()
    assert response.status == 403
    yield sip.edge.presence_changed(ALICE)
    yield sip.peer.expect_no_request("SUBSCRIBE")

    sip.link.access[(ALICE, KIM)] = ALLOWED
    yield sip.edge.presence_changed(ALICE)
    prompt = yield sip.peer.next_request("SUBSCRIBE")
    assert prompt.get("call-id") == subscribe.get("call-id") and prompt.tag("from") == subscribe.tag("from")
    assert prompt.tag("to") == dialog.local.rpartition("tag=")[2] and prompt.get("expires") != "0"
    sip.peer.respond(prompt, 200, headers=[("Expires", "600")])
    response = yield sip.subscribe()
    assert response.status == 200
    notify = yield sip.peer.next_request("NOTIFY")
    sip.peer.respond(notify, 200)
    yield sip.edge.presence_changed(ALICE)
    yield sip.peer.expect_no_request("SUBSCRIBE")

    # Blocked (the subscription ends), then unblocked: prompted again.
    sip.link.access[(ALICE, KIM)] = BLOCKED
    yield sip.edge.presence_changed(ALICE)
    notify = yield sip.peer.next_request("NOTIFY")
    assert notify.get("subscription-state") == "terminated;reason=rejected"
    sip.peer.respond(notify, 200)
    sip.link.access[(ALICE, KIM)] = ALLOWED
    yield sip.edge.presence_changed(ALICE)
    prompt = yield sip.peer.next_request("SUBSCRIBE")
    assert prompt.get("call-id") == subscribe.get("call-id")
    sip.peer.respond(prompt, 200, headers=[("Expires", "600")])
    sip.edge.unwatch(ALICE, KIM)
    unsubscribe = yield sip.peer.next_request("SUBSCRIBE")
    sip.peer.respond(unsubscribe, 200)


@pytest_twisted.inlineCallbacks
def test_allowing_a_refused_watcher_retries_a_refused_watch_at_once(sip):
    response = yield sip.subscribe()
    assert response.status == 403
    sip.edge.watch(ALICE, KIM)
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    sip.peer.respond(subscribe, 403, "Forbidden")
    yield watch_refused(sip)
    sip.link.access[(ALICE, KIM)] = ALLOWED
    yield sip.edge.presence_changed(ALICE)
    again = yield sip.peer.next_request("SUBSCRIBE")
    assert again.get("call-id") != subscribe.get("call-id") and again.tag("to") is None
    sip.peer.respond(again, 403, "Forbidden")
    yield deferLater(0.1)


@pytest_twisted.inlineCallbacks
def test_a_block_while_a_subscribe_is_decided_still_ends_it(sip):
    """
    kim's SUBSCRIBE would be allowed on a view read just before alice
    blocks kim: the view is read again before the answer, which is 403.
    """
    sip.link.access[(ALICE, KIM)] = ALLOWED
    held = []
    read_now = sip.link.presence_for

    def read_later(owner, watcher):
        d = defer.Deferred()
        held.append((read_now(owner, watcher), d))
        return d

    sip.link.presence_for = read_later
    answer = sip.subscribe()
    for _ in range(100):
        if held:
            break
        yield deferLater(0.05)
    sip.link.presence_for = read_now
    sip.link.access[(ALICE, KIM)] = BLOCKED
    yield sip.edge.presence_changed(ALICE)
    view, d = held[0]
    view.addCallback(d.callback)
    response = yield answer
    assert response.status == 403
    assert not sip.edge.notifier.subscriptions
    yield sip.peer.expect_no_request("NOTIFY")


@pytest_twisted.inlineCallbacks
def test_a_refresh_from_the_contact_retries_a_refused_watch(sip):
    """
    The other end of the prompt: kim's server refreshes kim's subscription
    to alice, and alice's refused subscription to kim is tried again at
    once.
    """
    sip.link.access[(ALICE, KIM)] = ALLOWED
    response = yield sip.subscribe()
    assert response.status == 200
    notify = yield sip.peer.next_request("NOTIFY")
    sip.peer.respond(notify, 200)
    sip.edge.watch(ALICE, KIM)
    subscribe = yield sip.peer.next_request("SUBSCRIBE")
    sip.peer.respond(subscribe, 403, "Forbidden")
    yield watch_refused(sip)
    dialog = Dialog(sip.peer, sip.call_id, f"<sip:{KIM}>;tag={sip.from_tag}", f"<sip:{ALICE}>;tag={response.tag('to')}", contact_uri(response))
    refresh = yield dialog.request("SUBSCRIBE", [("Event", "presence"), ("Expires", "600"), ("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port}>")])
    assert refresh.status == 200
    again = yield sip.peer.next_request("SUBSCRIBE")
    assert again.get("call-id") != subscribe.get("call-id")
    sip.peer.respond(again, 403, "Forbidden")
    notify = yield sip.peer.next_request("NOTIFY")
    sip.peer.respond(notify, 200)
    yield deferLater(0.1)


@pytest_twisted.inlineCallbacks
def test_sending_to_a_federated_user(sip):
    d = sip.edge.send(ALICE, KIM, Text("héllo kim"))
    message = yield sip.peer.next_request("MESSAGE")
    assert message.get("content-type") == "text/plain;charset=UTF-8" and message.text == "héllo kim"
    assert message.uri == f"sip:{KIM}" and ALICE in message.get("from")
    sip.peer.respond(message, 200)
    yield d
    # Typing as isComposing; a 415 stops it for good.
    d = sip.edge.send(ALICE, KIM, Typing())
    composing = yield sip.peer.next_request("MESSAGE")
    assert composing.get("content-type") == "application/im-iscomposing+xml" and b"<state>active</state>" in composing.body
    sip.peer.respond(composing, 415, "Unsupported Media Type", headers=[("Accept", "text/plain")])
    yield d
    yield sip.edge.send(ALICE, KIM, Typing())
    yield sip.peer.expect_no_request("MESSAGE")
    # A refusal is a delivery failure with the peer's status.
    d = sip.edge.send(ALICE, KIM, Text("there?"))
    message = yield sip.peer.next_request("MESSAGE")
    sip.peer.respond(message, 480, "Temporarily Unavailable")
    with pytest.raises(DeliveryFailed) as failure:
        yield d
    assert failure.value.status == 480


@pytest_twisted.inlineCallbacks
def test_session_peer_gets_an_invite_then_in_dialog_messages(sip):
    sip.edge.peers.peers["partner.example"].session_im = True
    d = sip.edge.send(ALICE, KIM, Text("first"))
    invite = yield sip.peer.next_request("INVITE")
    assert b"m=message" in invite.body
    tag = sip.peer.respond(invite, 200, headers=[("Contact", f"<sip:kim@127.0.0.1:{sip.peer.port};transport={sip.transport}>"), ("Content-Type", "application/sdp")], body=invite.body)
    ack = yield sip.peer.next_request("ACK")
    assert ack.tag("to") == tag
    message = yield sip.peer.next_request("MESSAGE")
    assert message.text == "first" and message.tag("to") == tag
    sip.peer.respond(message, 200)
    yield d
    d = sip.edge.send(ALICE, KIM, Typing())
    info = yield sip.peer.next_request("INFO")
    assert b"KeyboardActivity" in info.body
    sip.peer.respond(info, 200)
    yield d
    yield sip.edge.send(ALICE, KIM, Left())
    bye = yield sip.peer.next_request("BYE")
    sip.peer.respond(bye, 200)
