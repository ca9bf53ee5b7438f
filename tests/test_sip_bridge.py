"""
MSN users and SIP users of a federated domain, end to end: a live msnp
server with its SIP edge bridged to the core, MSN scripted clients over
TCP, and the RFC-written test peer (tests/sippeer.py) as partner.example's
server over UDP and TCP.  Transcripts of what each side sees: the reverse
list notice and 403 until consent, NOTIFY on MSN presence changes,
federated contacts on the forward list shown NLN/FLN/ILN, messages and
typing both ways through switchboard conversations (RNG, JOI, MSG, ACK,
NAK, BYE), pager mode and OCS-style IM sessions, and privacy.
"""

from __future__ import annotations

import base64
import re
import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from conftest import RunningServer, ENDPOINTS
from msnclient import answer_ring, go_online, open_switchboard
from msnp.config import ServerConfig
from msnp.service import MessengerService
from msnp.sip.edge import SipSettings
from msnp.sip.grammar import URI
from msnp.sip.peers import Peer
from ns_steps import sign_in
from sippeer import Dialog, SipPeer, contact_uri, random_token

KIM = "kim@partner.example"
ALICE = "alice@example.com"
TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
TYPING = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: alice@example.com\r\n\r\n\r\n"
ISCOMPOSING = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
    b"<state>active</state><contenttype>text/plain</contenttype></isComposing>\n"
)


def pidf(entity: str, basic: str, note: str = "") -> bytes:
    note_element = f"<note>{note}</note>" if note else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}">'
        f'<tuple id="t1"><status><basic>{basic}</basic></status>{note_element}</tuple></presence>\n'
    ).encode("utf-8")


class Federation:
    """
    The server (example.com, SIP edge on UDP and TCP) and partner.example's
    server as the test peer.
    """

    def __init__(self, transport: str, db_path: str):
        self.transport = transport
        self.peer = SipPeer(transport)
        self.peer.start(None)
        uri = URI.parse(f"sip:127.0.0.1:{self.peer.port};transport={transport}")
        settings = SipSettings(
            domains=["example.com"],
            peers=[Peer("partner.example", uri)],
            stream_endpoints=["tcp:0:interface=127.0.0.1"],
            udp_port=0,
            notify_interval=0.0,
        )
        service = MessengerService(ServerConfig(), db_path, dict(ENDPOINTS), reactor, sip_settings=settings)
        service.startService()
        self.server = RunningServer(service, db_path)
        self.sip_port = service.sip.sip.port(transport)
        self.peer.target = ("127.0.0.1", self.sip_port)

    @property
    def bridge(self):
        return self.server.service.sip.bridge

    @defer.inlineCallbacks
    def ready(self):
        yield self.server.service._store_ready
        yield self.server.service.sip.started

    @defer.inlineCallbacks
    def stop(self):
        yield self.server.stop()
        yield self.peer.stop()

    def contact(self, user="kim") -> str:
        return f"<sip:{user}@127.0.0.1:{self.peer.port};transport={self.transport}>"

    def subscribe(self, target=ALICE, sender=KIM, expires=600):
        self.from_tag = random_token()
        self.call_id = random_token()
        headers = [
            ("From", f'"Kim" <sip:{sender}>;tag={self.from_tag}'),
            ("To", f"<sip:{target}>"),
            ("Call-ID", self.call_id),
            ("CSeq", "1 SUBSCRIBE"),
            ("Contact", self.contact()),
            ("Event", "presence"),
            ("Expires", str(expires)),
        ]
        return self.peer.request("SUBSCRIBE", f"sip:{target}", headers)

    def message(self, body: bytes, content_type="text/plain;charset=UTF-8", target=ALICE, sender=KIM):
        headers = [
            ("From", f"<sip:{sender}>;tag={random_token()}"),
            ("To", f"<sip:{target}>"),
            ("Call-ID", random_token()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", content_type),
        ]
        return self.peer.request("MESSAGE", f"sip:{target}", headers, body, timeout=25.0)

    @defer.inlineCallbacks
    def answer_subscribe(self, basic="open", note="Online"):
        """
        Take the edge's SUBSCRIBE for kim, accept it and NOTIFY kim's state;
        returns the peer's side of the dialog.
        """
        subscribe = yield self.peer.next_request("SUBSCRIBE")
        assert subscribe.get("event") == "presence" and "application/pidf+xml" in subscribe.get("accept")
        tag = self.peer.respond(subscribe, 200, headers=[("Expires", "600"), ("Contact", self.contact())])
        dialog = Dialog(self.peer, subscribe.get("call-id"), f"<sip:{KIM}>;tag={tag}", subscribe.get("from"), contact_uri(subscribe), cseq=0)
        answer = yield self.notify(dialog, basic, note)
        assert answer.status == 200
        return subscribe, dialog

    def notify(self, dialog, basic, note="", state="active;expires=600"):
        headers = [("Event", "presence"), ("Subscription-State", state), ("Contact", self.contact())]
        body = b""
        if basic is not None:
            headers.append(("Content-Type", "application/pidf+xml"))
            body = pidf(f"sip:{KIM}", basic, note)
        return dialog.request("NOTIFY", headers, body)


@pytest.fixture(params=["udp", "tcp"])
def fed(request, tmp_path, accounts_database):
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    federation = Federation(request.param, str(db_path))
    pytest_twisted.blockon(federation.ready())
    yield federation
    pytest_twisted.blockon(federation.stop())


@defer.inlineCallbacks
def online(fed, handle=ALICE, dialect="MSNP7"):
    client = yield sign_in(fed.server, handle, dialect)
    yield go_online(client)
    return client


@defer.inlineCallbacks
def next_notify(fed, expect_state=None):
    notify = yield fed.peer.next_request("NOTIFY")
    fed.peer.respond(notify, 200)
    if expect_state is not None:
        assert notify.get("subscription-state").startswith(expect_state), notify.get("subscription-state")
    return notify


@pytest_twisted.inlineCallbacks
def test_sip_watcher_waits_for_consent_and_lands_on_the_reverse_list(fed):
    """
    OCS PIC steps 2-4: kim's SUBSCRIBE is 403 until alice allows kim; alice
    learns through her reverse list that kim added her; once she allows kim
    the next SUBSCRIBE gets 200 and NOTIFYs follow her MSN state.
    """
    alice = yield online(fed)
    response = yield fed.subscribe()
    assert response.status == 403 and "PRESENCE_FILTERED" in response.get("ms-diagnostics")
    yield alice.expect(r"ADD 0 RL \d+ kim@partner\.example Kim")

    alice.send("ADD 20 AL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 20 AL \d+ kim@partner\.example kim@partner\.example")
    response = yield fed.subscribe()
    assert response.status == 200
    notify = yield next_notify(fed, "active")
    assert "<basic>open</basic>" in notify.text and "<note>Online</note>" in notify.text

    alice.send("CHG 21 BSY")
    yield alice.expect_line("CHG 21 BSY")
    notify = yield next_notify(fed, "active")
    assert "<rpid:busy/>" in notify.text

    # A second SUBSCRIBE does not put kim on the reverse list twice.
    yield alice.expect_silence()

    # Signing out is basic closed; signing in again, open.
    yield alice.disconnect()
    notify = yield next_notify(fed, "active")
    assert "<basic>closed</basic>" in notify.text
    alice = yield online(fed)
    notify = yield next_notify(fed, "active")
    assert "<basic>open</basic>" in notify.text

    # Blocking kim ends the subscription (RFC 6665 "rejected") and later
    # SUBSCRIBEs are refused.
    alice.send("REM 22 AL kim@partner.example")
    yield alice.expect(r"REM 22 AL \d+ kim@partner\.example")
    alice.send("ADD 23 BL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 23 BL \d+ kim@partner\.example kim@partner\.example")
    notify = yield next_notify(fed, "terminated;reason=rejected")
    assert not notify.body
    response = yield fed.subscribe()
    assert response.status == 403
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_withdrawn_consent_ends_the_subscription_at_once(fed):
    """
    Taking kim off the allow list under BLP AL (no MSN watcher's view
    changes) and, while alice is hidden, any privacy edit reach kim's
    subscription at once: NOTIFY terminated;reason=rejected, not at the
    next refresh.
    """
    alice = yield online(fed)
    alice.send("ADD 20 AL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 20 AL \d+ kim@partner\.example kim@partner\.example")
    response = yield fed.subscribe()
    assert response.status == 200
    yield next_notify(fed, "active")
    yield alice.expect(r"ADD 0 RL \d+ kim@partner\.example Kim")
    alice.send("REM 21 AL kim@partner.example")
    yield alice.expect(r"REM 21 AL \d+ kim@partner\.example")
    notify = yield next_notify(fed, "terminated;reason=rejected")
    assert not notify.body and notify.get("call-id") == fed.call_id

    alice.send("ADD 22 AL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 22 AL \d+ kim@partner\.example kim@partner\.example")
    response = yield fed.subscribe()
    assert response.status == 200
    notify = yield next_notify(fed, "active")
    assert "<basic>open</basic>" in notify.text
    alice.send("CHG 23 HDN")
    yield alice.expect_line("CHG 23 HDN")
    notify = yield next_notify(fed, "active")
    assert "<basic>closed</basic>" in notify.text
    alice.send("REM 24 AL kim@partner.example")
    yield alice.expect(r"REM 24 AL \d+ kim@partner\.example")
    notify = yield next_notify(fed, "terminated;reason=rejected")
    assert notify.get("call-id") == fed.call_id
    response = yield fed.subscribe()
    assert response.status == 403
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_reverse_list_entry_is_committed_and_listed(fed):
    """
    kim is on alice's reverse list when she signs in later (the entry was
    committed), and her LST RL shows kim.
    """
    alice = yield sign_in(fed.server, ALICE)
    response = yield fed.subscribe()
    assert response.status == 403
    yield alice.expect(r"ADD 0 RL \d+ kim@partner\.example Kim")
    yield alice.disconnect()
    user = yield fed.server.store.load_user(ALICE)
    assert user.lists["RL"] == {KIM: "Kim"}
    alice = yield sign_in(fed.server, ALICE)
    alice.send("LST 6 RL")
    yield alice.expect(r"LST 6 RL \d+ 1 1 kim@partner\.example Kim")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_federated_contact_on_the_forward_list_is_watched(fed):
    """
    alice adds kim from her MSN client: accepted (not 205), the server
    SUBSCRIBEs to kim at partner.example on her behalf, and kim's NOTIFYs
    show as NLN/BSY/FLN; signing in again shows kim with ILN.
    """
    alice = yield online(fed)
    alice.send("ADD 30 FL kim@partner.example Kim")
    yield alice.expect(r"ADD 30 FL \d+ kim@partner\.example Kim( 0)?")
    subscribe, dialog = yield fed.answer_subscribe("open", "Online")
    # From alice, with her friendly name for kim's reverse list.
    assert subscribe.get("from").startswith(f'"Alice" <sip:{ALICE}>;tag=')
    yield alice.expect_line("NLN NLN kim@partner.example kim@partner.example")
    answer = yield fed.notify(dialog, "open", "Busy")
    assert answer.status == 200
    yield alice.expect_line("NLN BSY kim@partner.example kim@partner.example")
    yield alice.disconnect()

    alice = yield sign_in(fed.server, ALICE)
    alice.send("CHG 5 NLN")
    yield alice.expect_line("CHG 5 NLN")
    yield alice.expect_line("ILN 5 BSY kim@partner.example kim@partner.example")
    answer = yield fed.notify(dialog, "closed")
    assert answer.status == 200
    yield alice.expect_line("FLN kim@partner.example")

    # Off the forward list: the subscription ends with Expires 0.
    alice.send("REM 31 FL kim@partner.example")
    yield alice.expect(r"REM 31 FL \d+ kim@partner\.example")
    unsubscribe = yield fed.peer.next_request("SUBSCRIBE")
    assert unsubscribe.get("expires") == "0" and unsubscribe.tag("to") == dialog.local.split("tag=")[1]
    fed.peer.respond(unsubscribe, 200)
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_contacts_of_other_domains_are_still_refused(fed):
    """
    Only configured peer domains are accepted on the lists.
    """
    alice = yield online(fed)
    alice.send("ADD 40 FL kim@elsewhere.example Kim")
    yield alice.expect_line("205 40")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_pager_mode_message_rings_alice_and_replies_go_back(fed):
    """
    kim's MESSAGE opens a switchboard conversation: alice is rung (RNG from
    kim), joins and gets the text as MSG, and kim's MESSAGE is answered 200
    only then.  Typing goes both ways; alice's reply is a MESSAGE from
    alice, ACKed when kim's server took it and NAKed when it refused.
    """
    alice = yield online(fed)
    sent = fed.message("Hello Alice \u263a\nsecond line".encode("utf-8"))
    sb, ring, roster = yield answer_ring(alice, ALICE)
    assert ring[3] == KIM
    assert roster == ["IRO 1 1 1 kim@partner.example kim@partner.example"]
    msg = yield sb.next()
    assert re.fullmatch(r"MSG kim@partner\.example kim@partner\.example \d+", msg.text)
    response = yield sent
    assert response.status == 200
    assert msg.payload.startswith(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n")
    assert msg.payload.endswith("Hello Alice \u263a\r\nsecond line".encode("utf-8"))

    response = yield fed.message(ISCOMPOSING, "application/im-iscomposing+xml")
    assert response.status == 200
    typing = yield sb.next()
    assert typing.name == "MSG" and b"text/x-msmsgscontrol" in typing.payload and b"TypingUser: kim@partner.example" in typing.payload

    sb.send_payload("MSG 2 U", TYPING)
    composing = yield fed.peer.next_request("MESSAGE")
    fed.peer.respond(composing, 200)
    assert composing.get("content-type") == "application/im-iscomposing+xml" and b"<state>active</state>" in composing.body

    sb.send_payload("MSG 3 A", TEXT + "Hi Kim \u00e9".encode("utf-8"))
    message = yield fed.peer.next_request("MESSAGE")
    assert message.get("from").startswith(f"<sip:{ALICE}>") and message.uri == f"sip:{KIM}"
    assert message.get("content-type").startswith("text/plain") and message.text == "Hi Kim \u00e9"
    fed.peer.respond(message, 200)
    yield sb.expect_line("ACK 3")

    sb.send_payload("MSG 4 A", TEXT + b"are you there?")
    message = yield fed.peer.next_request("MESSAGE")
    fed.peer.respond(message, 480, "Temporarily Unavailable")
    yield sb.expect_line("NAK 4")

    # A file-transfer invitation cannot cross: NAK at once.
    sb.send_payload("MSG 5 A", b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nApplication-Name: File Transfer\r\n")
    yield sb.expect_line("NAK 5")

    # alice leaves: the conversation ends; kim's next message rings again.
    sb.send("OUT")
    yield sb.wait_closed()
    sent = fed.message(b"still there?")
    sb, ring, roster = yield answer_ring(alice, ALICE)
    yield sb.expect(r"MSG kim@partner\.example kim@partner\.example \d+")
    response = yield sent
    assert response.status == 200
    yield sb.disconnect()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_message_to_an_offline_or_blocking_user_is_480(fed):
    """
    Nobody to ring: 480, and a blocked SIP user is told the same (blocking
    is not revealed); typing alone opens no conversation.
    """
    response = yield fed.message(b"anyone?")
    assert response.status == 480
    response = yield fed.message(b"hi", target="nobody@example.com")
    assert response.status == 404
    alice = yield online(fed)
    response = yield fed.message(ISCOMPOSING, "application/im-iscomposing+xml")
    assert response.status == 200
    alice.send("ADD 50 BL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 50 BL \d+ kim@partner\.example kim@partner\.example")
    response = yield fed.message(b"let me in")
    assert response.status == 480
    yield alice.expect_silence()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_alice_calls_a_federated_contact_from_a_switchboard(fed):
    """
    kim shown online (NOTIFY open) can be called: CAL → RINGING, JOI kim at
    once (the edge stands for kim), and MSG goes out as MESSAGE; kim's
    answer comes back into the same conversation; when alice leaves, kim's
    participant leaves too.
    """
    alice = yield online(fed)
    alice.send("ADD 60 FL kim@partner.example Kim")
    yield alice.expect(r"ADD 60 FL .*")
    yield fed.answer_subscribe("open", "Online")
    yield alice.expect_line("NLN NLN kim@partner.example kim@partner.example")
    sb = yield open_switchboard(alice, ALICE)
    sb.send("CAL 2 kim@partner.example")
    yield sb.expect(r"CAL 2 RINGING \d+")
    yield sb.expect_line("JOI kim@partner.example kim@partner.example")
    sb.send_payload("MSG 3 A", TEXT + b"ping")
    message = yield fed.peer.next_request("MESSAGE")
    assert message.text == "ping"
    fed.peer.respond(message, 200)
    yield sb.expect_line("ACK 3")
    response = yield fed.message(b"pong")
    assert response.status == 200
    pong = yield sb.next()
    assert pong.text.startswith("MSG kim@partner.example") and pong.payload.endswith(b"pong")
    assert len(fed.bridge.pairs) == 1
    sb.send("OUT")
    yield sb.wait_closed()
    for _ in range(100):
        if not fed.bridge.pairs:
            break
        yield _sleep(0.01)
    assert not fed.bridge.pairs and not fed.server.service.switchboard.conversations
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_calling_a_contact_not_seen_online_is_217(fed):
    alice = yield online(fed)
    sb = yield open_switchboard(alice, ALICE)
    sb.send("CAL 2 kim@partner.example")
    yield sb.expect_line("217 2")
    yield sb.disconnect()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_ocs_style_session_reaches_alice(fed):
    """
    OCS PIC steps 6-9: INVITE (first message in ms-text-format) → alice
    rung and given it → 200 with SDP → ACK; in-dialog MESSAGE → MSG, INFO
    KeyboardActivity → typing MSG; BYE → alice sees kim leave.
    """
    alice = yield online(fed)
    call_id, from_tag = random_token(), random_token()
    first = base64.b64encode("Hallo from OCS".encode("utf-8")).decode("ascii")
    sdp = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain\r\n"
    headers = [
        ("From", f"<sip:{KIM}>;tag={from_tag}"),
        ("To", f"<sip:{ALICE}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", fed.contact()),
        ("ms-text-format", f"text/plain; charset=UTF-8;ms-body={first}"),
        ("Content-Type", "application/sdp"),
    ]
    invited = fed.peer.request("INVITE", f"sip:{ALICE}", headers, sdp, timeout=25.0)
    sb, ring, roster = yield answer_ring(alice, ALICE)
    msg = yield sb.next()
    assert msg.payload.endswith(b"Hallo from OCS")
    response = yield invited
    assert response.status == 200 and b"m=message" in response.body
    dialog = Dialog(fed.peer, call_id, f"<sip:{KIM}>;tag={from_tag}", f"<sip:{ALICE}>;tag={response.tag('to')}", contact_uri(response))
    dialog.ack(1)
    answer = yield dialog.request("MESSAGE", [("Content-Type", "text/plain;charset=UTF-8")], b"in the session")
    assert answer.status == 200
    msg = yield sb.next()
    assert msg.payload.endswith(b"in the session")
    answer = yield dialog.request(
        "INFO", [("Content-Type", "application/xml")], b'<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>'
    )
    assert answer.status == 200
    typing = yield sb.next()
    assert b"text/x-msmsgscontrol" in typing.payload

    # alice's reply goes in the session (in-dialog MESSAGE, CSeq 1 of ours).
    sb.send_payload("MSG 2 A", TEXT + b"reply")
    message = yield fed.peer.next_request("MESSAGE")
    assert message.get("call-id") == call_id and message.text == "reply"
    fed.peer.respond(message, 200)
    yield sb.expect_line("ACK 2")

    answer = yield dialog.request("BYE")
    assert answer.status == 200
    yield sb.expect_line("BYE kim@partner.example")
    yield sb.disconnect()
    yield alice.disconnect()


def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
