"""
Conversations over real TCP: XFR SB at the notification server, switchboard
login, invitations (CAL/RNG/ANS), the roster, message delivery with
ACK/NAK, and leaving.
"""

import re

import pytest
import pytest_twisted
from twisted.internet import defer

from msnclient import answer_ring, connect, go_online, login, open_switchboard, request_switchboard

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DAVE = "dave@example.com"

TEXT = (
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "X-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n"
    "\r\n"
    "Hello, Bob! \u00e9\u00e8 \u2603"
).encode("utf-8")

TYPING = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: alice@example.com\r\n\r\n\r\n"

INVITATION = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n"
    b"\r\n"
    b"Application-Name: File Transfer\r\n"
    b"Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n"
    b"Invitation-Command: INVITE\r\n"
    b"Invitation-Cookie: 21335\r\n"
    b"Application-File: notes.txt\r\n"
    b"Application-FileSize: 1024\r\n"
    b"\r\n"
)


@defer.inlineCallbacks
def online(server, handle, dialect="MSNP7"):
    """
    Log C{handle} in at the notification server and set it online.
    """
    from conftest import ACCOUNTS

    password = ACCOUNTS[handle][0] if handle in ACCOUNTS else "pw"
    client = yield login(server.notification_port, handle, password, dialect)
    yield go_online(client)
    return client


@defer.inlineCallbacks
def two_party(server, dialects=("MSNP7", "MSNP7")):
    """
    Alice opens a switchboard and invites Bob, who answers; returns the
    notification and switchboard clients and the session id.
    """
    alice_ns = yield online(server, ALICE, dialects[0])
    bob_ns = yield online(server, BOB, dialects[1])
    alice = yield open_switchboard(alice_ns, ALICE)
    alice.send(f"CAL 2 {BOB}")
    calling = yield alice.expect(r"CAL 2 RINGING (\d+)")
    bob, ring, roster = yield answer_ring(bob_ns, BOB)
    assert ring[0] == calling.group(1)
    assert roster == ["IRO 1 1 1 alice@example.com Alice"]
    yield alice.expect_line("JOI bob@example.com Bob")
    return alice_ns, bob_ns, alice, bob, calling.group(1)


@defer.inlineCallbacks
def close_all(*clients):
    for client in clients:
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_xfr_sb_needs_a_visible_status(server):
    """
    XFR SB is refused with 913 before the first CHG and while hidden; once
    online it gives the switchboard's address and a cookie.  Any other XFR
    type is a bad parameter.
    """
    alice = yield login(server.notification_port, ALICE, "pw-alice")
    alice.send("XFR 5 SB")
    yield alice.expect_line("913 5")
    yield go_online(alice, 6, "HDN")
    alice.send("XFR 7 SB")
    yield alice.expect_line("913 7")
    alice.send("CHG 8 NLN")
    yield alice.expect_line("CHG 8 NLN")
    alice.send("XFR 9 SB")
    yield alice.expect(rf"XFR 9 SB 127\.0\.0\.1:{server.switchboard_port} CKI [0-9.]+")
    alice.send("XFR 10 NS")
    yield alice.expect_line("201 10")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_cookies_are_fresh_for_every_request(server):
    """
    Two XFR SB requests never get the same cookie.
    """
    alice = yield online(server, ALICE)
    _, first = yield request_switchboard(alice, 10)
    _, second = yield request_switchboard(alice, 11)
    assert first != second
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_rng_line_shape(server):
    """
    The callee's notification connection gets RNG with the session id, the
    switchboard address, CKI, its own cookie and the caller's handle and
    URL-encoded name.
    """
    alice_ns = yield online(server, ALICE)
    alice_ns.send("REA 20 alice@example.com Alice%20in%20Wonderland")
    yield alice_ns.expect(r"REA 20 \d+ alice@example.com Alice%20in%20Wonderland")
    bob_ns = yield online(server, BOB)
    alice = yield open_switchboard(alice_ns, ALICE)
    alice.send(f"CAL 2 {BOB}")
    calling = yield alice.expect(r"CAL 2 RINGING (\d+)")
    ring = yield bob_ns.next()
    assert re.fullmatch(
        rf"RNG {calling.group(1)} 127\.0\.0\.1:{server.switchboard_port} CKI [0-9.]+ "
        r"alice@example\.com Alice%20in%20Wonderland",
        ring.text,
    ), ring.text
    yield close_all(alice, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_typing_notices_and_invitations_relayed_untouched(server):
    """
    Typing notices (usually sent with U) and file-transfer invitations are
    passed through byte for byte, in order.
    """
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    alice.send_payload("MSG 3 U", TYPING)
    alice.send_payload("MSG 4 N", INVITATION)
    typing = yield bob.expect_line(f"MSG alice@example.com Alice {len(TYPING)}")
    assert typing.payload == TYPING
    invitation = yield bob.expect_line(f"MSG alice@example.com Alice {len(INVITATION)}")
    assert invitation.payload == INVITATION
    yield alice.expect_silence()
    yield close_all(alice, bob, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_cal_errors(server):
    """
    CAL yourself, someone already there or already ringing → 215; a
    malformed handle → 208 and the caller stays; offline, unknown, not yet
    online (no CHG), hidden, IMS OFF or blocking the caller → 217.
    """
    alice_ns = yield online(server, ALICE)
    bob_ns = yield online(server, BOB)
    carol_ns = yield login(server.notification_port, CAROL, "pw-carol")  # no CHG yet
    alice = yield open_switchboard(alice_ns, ALICE)

    alice.send(f"CAL 2 {ALICE}")
    yield alice.expect_line("215 2")
    alice.send(f"CAL 3 {BOB}")
    yield alice.expect(r"CAL 3 RINGING \d+")
    alice.send("CAL 4 BOB@example.com")
    yield alice.expect_line("215 4")
    alice.send("CAL 5 not-a-handle")
    yield alice.expect_line("208 5")
    alice.send(f"CAL 6 {DAVE}")
    yield alice.expect_line("217 6")
    alice.send("CAL 7 nobody@example.com")
    yield alice.expect_line("217 7")
    alice.send(f"CAL 8 {CAROL}")
    yield alice.expect_line("217 8")

    yield go_online(carol_ns, 9, "HDN")
    alice.send(f"CAL 9 {CAROL}")
    yield alice.expect_line("217 9")

    carol_ns.send("CHG 10 NLN")
    yield carol_ns.expect_line("CHG 10 NLN")
    carol_ns.send("IMS 11 OFF")
    yield carol_ns.expect_line("IMS 11 0 OFF")
    alice.send(f"CAL 10 {CAROL}")
    yield alice.expect_line("217 10")

    carol_ns.send("IMS 12 ON")
    yield carol_ns.expect_line("IMS 12 0 ON")
    carol_ns.send(f"ADD 13 BL {ALICE} Alice")
    yield carol_ns.expect(rf"ADD 13 BL \d+ {ALICE} Alice")
    alice.send(f"CAL 11 {CAROL}")
    yield alice.expect_line("217 11")

    carol_ns.send(f"REM 14 BL {ALICE}")
    yield carol_ns.expect(rf"REM 14 BL \d+ {ALICE}")
    alice.send(f"CAL 12 {CAROL}")
    yield alice.expect(r"CAL 12 RINGING \d+")
    yield carol_ns.expect(r"RNG .*")
    yield close_all(alice, alice_ns, bob_ns, carol_ns)


@pytest_twisted.inlineCallbacks
def test_callee_with_blp_bl_hides_from_strangers(server):
    """
    A callee whose BLP is BL is invisible to callers not on their AL: 217;
    putting the caller on the AL lets the call through.
    """
    alice_ns = yield online(server, ALICE)
    bob_ns = yield online(server, BOB)
    bob_ns.send("BLP 20 BL")
    yield bob_ns.expect(r"BLP 20 \d+ BL")
    alice = yield open_switchboard(alice_ns, ALICE)
    alice.send(f"CAL 2 {BOB}")
    yield alice.expect_line("217 2")
    bob_ns.send(f"ADD 21 AL {ALICE} Alice")
    yield bob_ns.expect(rf"ADD 21 AL \d+ {ALICE} Alice")
    alice.send(f"CAL 3 {BOB}")
    yield alice.expect(r"CAL 3 RINGING \d+")
    yield close_all(alice, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_calling_too_rapidly(server):
    """
    Past the invitation burst, CAL is answered with 713 and the caller
    stays connected.
    """
    server.service.switchboard.call_burst = 3
    server.service.switchboard.call_rate = 0.001
    alice_ns = yield online(server, ALICE)
    alice = yield open_switchboard(alice_ns, ALICE)
    for trid in (2, 3, 4):
        alice.send(f"CAL {trid} {DAVE}")
        yield alice.expect_line(f"217 {trid}")
    alice.send(f"CAL 5 {DAVE}")
    yield alice.expect_line("713 5")
    alice.send_payload("MSG 6 A", TEXT)
    yield alice.expect_line("NAK 6")
    yield close_all(alice, alice_ns)


@pytest_twisted.inlineCallbacks
def test_forged_reused_and_foreign_cookies(server):
    """
    A made-up cookie, a cookie used a second time, someone else's cookie and
    an invitation cookie used to open a session each get 911 and a close.
    """
    alice_ns = yield online(server, ALICE)
    bob_ns = yield online(server, BOB)
    port = server.switchboard_port

    forged = yield connect(port)
    forged.send(f"USR 1 {ALICE} 1234567890.1234567890.1234567890")
    yield forged.expect_line("911 1")
    yield forged.expect_close()

    _, cookie = yield request_switchboard(alice_ns, 10)
    first = yield connect(port)
    first.send(f"USR 1 {ALICE} {cookie}")
    yield first.expect_line(f"USR 1 OK {ALICE} Alice")
    again = yield connect(port)
    again.send(f"USR 1 {ALICE} {cookie}")
    yield again.expect_line("911 1")
    yield again.expect_close()

    _, cookie = yield request_switchboard(alice_ns, 11)
    thief = yield connect(port)
    thief.send(f"USR 1 {BOB} {cookie}")
    yield thief.expect_line("911 1")
    yield thief.expect_close()
    # The attempt used the cookie up.
    late = yield connect(port)
    late.send(f"USR 1 {ALICE} {cookie}")
    yield late.expect_line("911 1")
    yield late.expect_close()

    first.send(f"CAL 2 {BOB}")
    yield first.expect(r"CAL 2 RINGING \d+")
    ring = yield bob_ns.expect(r"RNG (\d+) \S+ CKI (\S+) .*")
    wrong_use = yield connect(port)
    wrong_use.send(f"USR 1 {BOB} {ring.group(2)}")
    yield wrong_use.expect_line("911 1")
    yield wrong_use.expect_close()
    yield close_all(first, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_bad_answers(server):
    """
    ANS with the wrong session id, someone else's handle or a forged cookie
    → 911 and close.
    """
    alice_ns = yield online(server, ALICE)
    bob_ns = yield online(server, BOB)
    alice = yield open_switchboard(alice_ns, ALICE)
    port = server.switchboard_port
    for trid, mangle in enumerate(
        (
            lambda sid, cookie: f"{BOB} {cookie} 1{sid}",
            lambda sid, cookie: f"{CAROL} {cookie} {sid}",
            lambda sid, cookie: f"{BOB} 1{cookie} {sid}",
        ),
        2,
    ):
        alice.send(f"CAL {trid} {BOB}")
        yield alice.expect(rf"CAL {trid} RINGING \d+")
        ring = yield bob_ns.expect(r"RNG (\d+) \S+ CKI (\S+) .*")
        bob = yield connect(port)
        bob.send(f"ANS 7 {mangle(ring.group(1), ring.group(2))}")
        yield bob.expect_line("911 7")
        yield bob.expect_close()
        # The invitation is still ringing until it lapses.
        alice.send(f"CAL 9{trid} {BOB}")
        yield alice.expect_line(f"215 9{trid}")
        # A new switchboard for each round, so the old invitation is no obstacle.
        yield alice.disconnect()
        alice = yield open_switchboard(alice_ns, ALICE, trid=20 + trid)
    yield close_all(alice, alice_ns, bob_ns)


@pytest.fixture
def short_cookies(server_config):
    server_config.cookie_lifetime = 0.0
    return server_config


@pytest_twisted.inlineCallbacks
def test_expired_cookie(short_cookies, server):
    """
    A cookie past its lifetime (here: none at all) gets 911 and a close.
    """
    alice_ns = yield online(server, ALICE)
    _, cookie = yield request_switchboard(alice_ns)
    sb = yield connect(server.switchboard_port)
    sb.send(f"USR 1 {ALICE} {cookie}")
    yield sb.expect_line("911 1")
    yield sb.expect_close()
    yield alice_ns.disconnect()


@pytest_twisted.inlineCallbacks
def test_commands_before_login(server):
    """
    Before USR or ANS, CAL and MSG get 302 and anything unknown 200; OUT
    simply closes.  A second USR after login gets 207.
    """
    sb = yield connect(server.switchboard_port)
    sb.send(f"CAL 1 {BOB}")
    yield sb.expect_line("302 1")
    sb.send_payload("MSG 2 A", b"hi")
    yield sb.expect_line("302 2")
    sb.send("XFR 3 SB")
    yield sb.expect_line("200 3")
    sb.send("OUT")
    yield sb.expect_close()

    alice_ns = yield online(server, ALICE)
    alice = yield open_switchboard(alice_ns, ALICE)
    alice.send(f"USR 2 {ALICE} 1.2.3")
    yield alice.expect_line("207 2")
    yield close_all(alice, alice_ns)


@pytest_twisted.inlineCallbacks
def test_oversized_message_closes_without_delivery(server):
    """
    A payload over 1664 bytes closes the sender's connection and nothing is
    delivered; the other participant sees the sender leave.  A payload of
    exactly 1664 bytes is fine.
    """
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    largest = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    largest += b"x" * (1664 - len(largest))
    alice.send_payload("MSG 3 A", largest)
    received = yield bob.expect_line("MSG alice@example.com Alice 1664")
    assert received.payload == largest
    yield alice.expect_line("ACK 3")

    alice.send_payload("MSG 4 A", largest + b"x")
    yield alice.expect_close()
    yield bob.expect_line("BYE alice@example.com")
    yield close_all(bob, alice_ns, bob_ns)


@pytest.mark.parametrize(
    "line",
    [
        "MSG 3 a 5",  # lower-case letter
        "MSG 3 X 5",  # no such letter
        "MSG 3 D 5",  # D is MSNP9+
        "MSG 3 5",  # no letter at all
        "MSG 3 A A 5",  # too many parameters
    ],
)
@pytest_twisted.inlineCallbacks
def test_bad_ack_letter_closes_without_delivery(server, line):
    """
    A bad acknowledgement letter closes the connection; the payload is not
    delivered.
    """
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    alice.send_raw(line.encode("ascii") + b"\r\nhello")
    rest = yield alice.expect_close()
    assert not [r for r in rest if r.name in ("ACK", "NAK")]
    yield bob.expect_line("BYE alice@example.com")
    yield bob.expect_silence()
    yield close_all(bob, alice_ns, bob_ns)


@pytest.mark.parametrize("length", ["x", "-1", "99999999999"])
@pytest_twisted.inlineCallbacks
def test_bad_length_closes(server, length):
    """
    A payload length that is not a decimal byte count closes the
    connection.
    """
    alice_ns, bob_ns, alice, bob, _ = yield two_party(server)
    alice.send_raw(f"MSG 3 A {length}\r\nhello".encode("ascii"))
    yield alice.expect_close()
    yield bob.expect_line("BYE alice@example.com")
    yield bob.expect_silence()
    yield close_all(bob, alice_ns, bob_ns)


@pytest_twisted.inlineCallbacks
def test_leaving_and_the_end_of_a_session(server):
    """
    A dropped connection is announced with BYE like OUT; when the last
    participant leaves the session ends, the directory forgets it, and a
    late answer to its invitation gets 911.
    """
    alice_ns, bob_ns, alice, bob, session_id = yield two_party(server)
    assert session_id in server.service.switchboard.conversations
    carol_ns = yield online(server, CAROL)
    alice.send(f"CAL 3 {CAROL}")
    yield alice.expect(r"CAL 3 RINGING \d+")
    ring = yield carol_ns.expect(r"RNG (\d+) \S+ CKI (\S+) .*")

    yield bob.disconnect()
    yield alice.expect_line("BYE bob@example.com")
    alice.send("OUT")
    yield alice.expect_close()
    assert session_id not in server.service.switchboard.conversations

    carol = yield connect(server.switchboard_port)
    carol.send(f"ANS 1 {CAROL} {ring.group(2)} {ring.group(1)}")
    yield carol.expect_line("911 1")
    yield carol.expect_close()
    yield close_all(alice_ns, bob_ns, carol_ns)


@pytest_twisted.inlineCallbacks
def test_mixed_dialects_msnp2_and_msnp7(server):
    """
    An MSNP2 user and an MSNP7 user chat: the same lines in both
    directions, invitations both ways.
    """
    alice_ns, bob_ns, alice, bob, session_id = yield two_party(server, ("MSNP2", "MSNP7"))
    alice.send_payload("MSG 3 A", TEXT)
    received = yield bob.expect_line(f"MSG alice@example.com Alice {len(TEXT)}")
    assert received.payload == TEXT
    yield alice.expect_line("ACK 3")
    bob.send_payload("MSG 4 A", TYPING)
    received = yield alice.expect_line(f"MSG bob@example.com Bob {len(TYPING)}")
    assert received.payload == TYPING
    yield bob.expect_line("ACK 4")

    # The MSNP7 user invites a third, MSNP2, user.
    carol_ns = yield online(server, CAROL, "MSNP2")
    bob.send(f"CAL 5 {CAROL}")
    yield bob.expect_line(f"CAL 5 RINGING {session_id}")
    carol, _, roster = yield answer_ring(carol_ns, CAROL)
    assert roster == ["IRO 1 1 2 alice@example.com Alice", "IRO 1 2 2 bob@example.com Bob"]
    yield alice.expect_line("JOI carol@example.com Carol")
    yield bob.expect_line("JOI carol@example.com Carol")
    yield close_all(alice, bob, carol, alice_ns, bob_ns, carol_ns)


@pytest_twisted.inlineCallbacks
def test_ten_party_session(server):
    """
    Ten users in one session: each newcomer gets the full roster in joining
    order and everyone already there gets its JOI; a message reaches all
    nine others and is acknowledged; leavers are announced to the rest.
    """
    handles = [ALICE] + [f"user{n}@example.com" for n in range(1, 10)]
    for handle in handles[1:]:
        yield server.store.create_account(handle, "pw", handle.split("@")[0].title())
    names = {handle: ("Alice" if handle == ALICE else handle.split("@")[0].title()) for handle in handles}
    ns = {}
    for handle in handles:
        ns[handle] = yield online(server, handle)
    sbs = {ALICE: (yield open_switchboard(ns[ALICE], ALICE))}
    session_id = None
    for count, handle in enumerate(handles[1:], 1):
        caller = sbs[handles[count - 1]]  # the latest arrival invites the next
        caller.send(f"CAL 50 {handle}")
        calling = yield caller.expect(r"CAL 50 RINGING (\d+)")
        session_id = session_id or calling.group(1)
        assert calling.group(1) == session_id
        sb, _, roster = yield answer_ring(ns[handle], handle)
        assert roster == [f"IRO 1 {i} {count} {h} {names[h]}" for i, h in enumerate(handles[:count], 1)]
        for present in handles[:count]:
            yield sbs[present].expect_line(f"JOI {handle} {names[handle]}")
        sbs[handle] = sb

    sender = handles[4]
    sbs[sender].send_payload("MSG 60 A", TEXT)
    for handle in handles:
        if handle != sender:
            received = yield sbs[handle].expect_line(f"MSG {sender} {names[sender]} {len(TEXT)}")
            assert received.payload == TEXT
    yield sbs[sender].expect_line("ACK 60")

    leaver = handles[7]
    sbs[leaver].send("OUT")
    yield sbs[leaver].expect_close()
    for handle in handles:
        if handle != leaver:
            yield sbs[handle].expect_line(f"BYE {leaver}")
    assert len(server.service.switchboard.conversations[session_id].participants) == 9
    for handle in handles:
        yield sbs[handle].disconnect()
        yield ns[handle].disconnect()


@pytest_twisted.inlineCallbacks
def test_server_stop_closes_conversations(server):
    """
    Stopping the server closes every switchboard connection along with the
    notification connections.
    """
    alice_ns, bob_ns, alice, bob, session_id = yield two_party(server)
    yield server.stop()
    for client in (alice, bob, alice_ns, bob_ns):
        yield client.expect_close()
    assert session_id not in server.service.switchboard.conversations
