"""
MSNP8-MSNP12 presence and challenges: capabilities and MSN objects shown
to each watcher in its own dialect, UUX/UBX, QNG seconds, CHL/QRY with
both algorithms, 540 on a wrong answer and the answer deadline.
"""

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from msnclient import answer_ring, challenge_answer, go_online, login, open_switchboard
from msnp.msn import challenge
from twn import pp_server, twn_login  # noqa: F401 (fixture)

CAPS = "1342177280"
MSNOBJ = "%3Cmsnobj%20Creator%3D%22alice%40example.com%22%2F%3E"
PSM = b"<Data><PSM>at lunch</PSM><CurrentMedia></CurrentMedia></Data>"


def chg_reply(dialect: str, trid: int, state: str) -> str:
    """
    The reply to a CHG sent without capabilities: from MSNP8 it carries
    capabilities 0 (protocol-notes/presence.md).
    """
    return f"CHG {trid} {state} 0" if int(dialect[4:]) >= 8 else f"CHG {trid} {state}"


@pytest_twisted.inlineCallbacks
def _watching(server, handle, password, dialect, target):
    """
    C{handle} logs in with C{dialect} (MD5 up to MSNP7, TWN after), puts
    C{target} on its FL and goes online.
    """
    if int(dialect[4:]) >= 8:
        client = yield twn_login(server, handle, password, dialect)
    else:
        client = yield login(server.notification_port, handle, password, dialect)
    if int(dialect[4:]) >= 10:
        client.send(f"ADC 50 FL N={target} F={target}")
        yield client.expect(rf"ADC 50 FL N={target} F={target} C=\S+")
    else:
        client.send(f"ADD 50 FL {target} {target}")
        yield client.expect(rf"ADD 50 FL \d+ {target} {target}( 0)?")
    client.send("CHG 51 NLN")
    yield client.expect_line(chg_reply(dialect, 51, "NLN"))
    return client


@pytest_twisted.inlineCallbacks
def test_presence_in_each_watchers_dialect(pp_server):
    """
    Alice (MSNP12) goes online with capabilities and an MSN object: the
    MSNP2 watcher sees neither, the MSNP8 watcher the capabilities, the
    MSNP9 watcher both.  Alice's own ILN of the MSNP2 user carries that
    user's (zero) capabilities.  UUX reaches only the MSNP11+ watcher as
    UBX, byte-exact.
    """
    bob = yield _watching(pp_server, "bob@example.com", "pw-bob", "MSNP2", "alice@example.com")
    carol = yield _watching(pp_server, "carol@example.com", "pw-carol", "MSNP8", "alice@example.com")
    dave = yield _watching(pp_server, "dave@example.com", "pw-dave", "MSNP9", "alice@example.com")
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    alice.send("ADC 5 FL N=bob@example.com F=Bob")
    yield alice.expect(r"ADC 5 FL N=bob@example.com F=Bob C=\S+")
    yield bob.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    alice.send(f"CHG 6 NLN {CAPS} {MSNOBJ}")
    yield alice.expect_line(f"CHG 6 NLN {CAPS} {MSNOBJ}")
    yield alice.expect_line("ILN 6 NLN bob@example.com Bob 0")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    yield carol.expect_line(f"NLN NLN alice@example.com Alice {CAPS}")
    yield dave.expect_line(f"NLN NLN alice@example.com Alice {CAPS} {MSNOBJ}")

    # An MSNP11 watcher logging in later gets ILN with both and the UBX.
    alice.send_payload("UUX 7", PSM)
    yield alice.expect_line("UUX 7 0")
    yield bob.expect_silence()
    yield carol.expect_silence()
    yield dave.expect_silence()
    yield dave.disconnect()
    dave = yield twn_login(pp_server, "dave@example.com", "pw-dave", "MSNP11")
    dave.send("CHG 5 AWY 0")
    yield dave.expect_line("CHG 5 AWY 0")
    yield dave.expect_line(f"ILN 5 NLN alice@example.com Alice {CAPS} {MSNOBJ}")
    ubx = yield dave.next()
    assert ubx.text == f"UBX alice@example.com {len(PSM)}" and ubx.payload == PSM
    alice.send_payload("UUX 8", b"<Data><PSM></PSM></Data>")
    yield alice.expect_line("UUX 8 0")
    ubx = yield dave.next()
    assert ubx.text == "UBX alice@example.com 24" and ubx.payload == b"<Data><PSM></PSM></Data>"

    # Capabilities changing alone are announced to the dialects that show
    # them (not to MSNP2); a rename with PRP MFN to everyone.
    alice.send("CHG 9 NLN 268435500")
    yield alice.expect_line("CHG 9 NLN 268435500")
    yield dave.expect_line("NLN NLN alice@example.com Alice 268435500")
    yield carol.expect_line("NLN NLN alice@example.com Alice 268435500")
    yield bob.expect_silence()
    alice.send("PRP 10 MFN Al")
    yield alice.expect_line("PRP 10 MFN Al")
    yield bob.expect_line("NLN NLN alice@example.com Al")
    yield carol.expect_line("NLN NLN alice@example.com Al 268435500")
    yield dave.expect_line("NLN NLN alice@example.com Al 268435500")
    for client in (alice, bob, carol, dave):
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_msnp12_watcher_sees_msnp2_user(pp_server):
    """
    The other way round: an MSNP2 user's state reaches an MSNP12 watcher
    with capabilities 0 and no MSN object, and FLN when it leaves.
    """
    alice = yield _watching(pp_server, "alice@example.com", "pw-alice", "MSNP12", "bob@example.com")
    bob = yield login(pp_server.notification_port, "bob@example.com", "pw-bob", "MSNP2")
    bob.send("CHG 5 BSY")
    yield bob.expect_line("CHG 5 BSY")
    yield alice.expect_line("NLN BSY bob@example.com Bob 0")
    yield bob.disconnect()
    yield alice.expect_line("FLN bob@example.com")
    yield alice.disconnect()


@pytest.mark.parametrize("dialect", ["MSNP8", "MSNP9", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_bad_chg_parameters(pp_server, dialect):
    """
    Capabilities must be a number, and an MSN object needs MSNP9: 201.
    """
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    alice.send("CHG 5 NLN lots")
    yield alice.expect_line("201 5")
    alice.send(f"CHG 6 NLN 0 {MSNOBJ} extra")
    yield alice.expect_line("201 6")
    alice.send(f"CHG 7 NLN 0 {MSNOBJ}")
    if dialect == "MSNP8":
        yield alice.expect_line("201 7")
    else:
        yield alice.expect_line(f"CHG 7 NLN 0 {MSNOBJ}")
    yield alice.disconnect()


@pytest.mark.parametrize("dialect, expected", [("MSNP8", "QNG"), ("MSNP9", "QNG 60"), ("MSNP12", "QNG 60")])
@pytest_twisted.inlineCallbacks
def test_qng_seconds(pp_server, dialect, expected):
    """
    From MSNP9 QNG tells the client how many seconds until the next PNG.
    """
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    alice.send("PNG")
    yield alice.expect_line(expected)
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def _online_with_visible_challenge(server, dialect):
    if int(dialect[4:]) >= 8:
        client = yield twn_login(server, "alice@example.com", "pw-alice", dialect)
    else:
        client = yield login(server.notification_port, "alice@example.com", "pw-alice", dialect)
    client.answer_challenges = False
    client.send("CHG 5 NLN")
    yield client.expect_line(chg_reply(dialect, 5, "NLN"))
    return client


@pytest.mark.parametrize("dialect", ["MSNP6", "MSNP7", "MSNP8", "MSNP10", "MSNP11", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_challenge_after_first_chg(pp_server, dialect):
    """
    From MSNP6 the first CHG is followed by CHL 0 and twenty digits; the
    right answer for the dialect's algorithm gets QRY t, and later CHGs
    bring no new challenge.
    """
    alice = yield _online_with_visible_challenge(pp_server, dialect)
    match = yield alice.expect(r"CHL 0 (\d{20})")
    product, answer = challenge_answer(int(dialect[4:]), match.group(1))
    alice.send_payload(f"QRY 6 {product}", answer.encode())
    yield alice.expect_line("QRY 6")
    alice.send("CHG 7 AWY")
    yield alice.expect_line(chg_reply(dialect, 7, "AWY"))
    yield alice.expect_silence()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_no_challenge_before_msnp6(pp_server):
    """
    MSNP5 has no CHL.
    """
    alice = yield _online_with_visible_challenge(pp_server, "MSNP5")
    yield alice.expect_silence()
    yield alice.disconnect()


@pytest.mark.parametrize(
    "dialect, wrong",
    [
        ("MSNP8", lambda text: ("msmsgs@msnmsgr.com", "0" * 32)),
        # the MSNP10 answer given in MSNP11
        ("MSNP11", lambda text: ("msmsgs@msnmsgr.com", challenge.md5_answer(text, "Q1P7W2E4J9R8U3S5"))),
        ("MSNP12", lambda text: ("PROD9999XXXXXXXX", challenge.msnp11_answer(text, "PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T"))),
    ],
)
@pytest_twisted.inlineCallbacks
def test_wrong_answer_gets_540_and_close(pp_server, dialect, wrong):
    """
    A wrong answer, an answer with the other algorithm or an unknown product
    id: 540 and the server hangs up.
    """
    alice = yield _online_with_visible_challenge(pp_server, dialect)
    match = yield alice.expect(r"CHL 0 (\d{20})")
    product, answer = wrong(match.group(1))
    alice.send_payload(f"QRY 6 {product}", answer.encode())
    yield alice.expect_line("540 6")
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_unasked_qry_gets_540(pp_server):
    """
    A QRY when no challenge is open is wrong: 540 and close.
    """
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP9")
    alice.send_payload("QRY 5 msmsgs@msnmsgr.com", b"0" * 32)
    yield alice.expect_line("540 5")
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_silent_client_closed_at_deadline(pp_server):
    """
    A client that does not answer CHL is closed once the deadline passes on
    the server's clock, and not before.
    """
    clock = Clock()
    pp_server.service.notification.clock = clock
    pp_server.config.challenge_deadline = 30
    alice = yield _online_with_visible_challenge(pp_server, "MSNP8")
    yield alice.expect(r"CHL 0 \d{20}")
    clock.advance(29)
    alice.send("PNG")
    yield alice.expect_line("QNG")
    clock.advance(2)
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_answered_challenge_stops_the_deadline(pp_server):
    """
    Once answered, the deadline no longer applies.
    """
    clock = Clock()
    pp_server.service.notification.clock = clock
    alice = yield _online_with_visible_challenge(pp_server, "MSNP12")
    match = yield alice.expect(r"CHL 0 (\d{20})")
    product, answer = challenge_answer(12, match.group(1))
    alice.send_payload(f"QRY 6 {product}", answer.encode())
    yield alice.expect_line("QRY 6")
    clock.advance(pp_server.config.challenge_deadline + 1)
    alice.send("PNG")
    yield alice.expect_line("QNG 60")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_chat_between_msnp2_and_msnp12(pp_server):
    """
    An MSNP12 user (logged in with Passport, capabilities set by CHG) calls
    an MSNP2 user: the MSNP2 side sees IRO without capabilities, the MSNP12
    side a JOI with the MSNP2 user's (zero) capabilities.  Text goes both
    ways byte-exact; MSG D is ACKed for P2P data and refused with 282
    otherwise.  A third user on MSNP12 gets IRO lines with capabilities,
    and only the MSNP12 caller sees capabilities in that user's JOI.
    """
    bob = yield login(pp_server.notification_port, "bob@example.com", "pw-bob", "MSNP2")
    yield go_online(bob)
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    alice.send(f"CHG 5 NLN {CAPS}")
    yield alice.expect_line(f"CHG 5 NLN {CAPS}")
    sb_alice = yield open_switchboard(alice, "alice@example.com", trid=6)
    sb_alice.send("CAL 2 bob@example.com")
    yield sb_alice.expect(r"CAL 2 RINGING \d+")
    sb_bob, ring, roster = yield answer_ring(bob, "bob@example.com")
    assert roster == ["IRO 1 1 1 alice@example.com Alice"]
    yield sb_alice.expect_line("JOI bob@example.com Bob 0")

    text = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nh\u00e9llo".encode()
    sb_alice.send_payload("MSG 3 A", text)
    yield sb_alice.expect_line("ACK 3")
    got = yield sb_bob.next()
    assert got.text == f"MSG alice@example.com Alice {len(text)}" and got.payload == text
    sb_bob.send_payload("MSG 2 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi")
    got = yield sb_alice.next()
    assert got.payload.endswith(b"\r\n\r\nhi")

    p2p = b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n" + bytes(48)
    sb_alice.send_payload("MSG 4 D", p2p)
    yield sb_alice.expect_line("ACK 4")
    got = yield sb_bob.next()
    assert got.payload == p2p
    sb_alice.send_payload("MSG 5 D", text)
    yield sb_alice.expect_line("282 5")

    carol = yield twn_login(pp_server, "carol@example.com", "pw-carol", "MSNP12")
    carol.send("CHG 5 NLN 268435500")
    yield carol.expect_line("CHG 5 NLN 268435500")
    sb_alice.send("CAL 6 carol@example.com")
    yield sb_alice.expect(r"CAL 6 RINGING \d+")
    sb_carol, ring, roster = yield answer_ring(carol, "carol@example.com")
    assert roster == [f"IRO 1 1 2 alice@example.com Alice {CAPS}", "IRO 1 2 2 bob@example.com Bob 0"]
    yield sb_alice.expect_line("JOI carol@example.com Carol 268435500")
    yield sb_bob.expect_line("JOI carol@example.com Carol")
    for client in (sb_alice, sb_bob, sb_carol, alice, bob, carol):
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_personal_message_set_before_going_online(pp_server):
    """
    A UUX sent before the first CHG (or while hidden) reaches no one; the
    NLN that makes the user visible is followed by the UBX.  Hidden users
    send nothing.
    """
    dave = yield _watching(pp_server, "dave@example.com", "pw-dave", "MSNP11", "alice@example.com")
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    alice.send_payload("UUX 5", PSM)
    yield alice.expect_line("UUX 5 0")
    yield dave.expect_silence()
    alice.send("CHG 6 HDN 0")
    yield alice.expect_line("CHG 6 HDN 0")
    alice.send_payload("UUX 7", PSM)
    yield alice.expect_line("UUX 7 0")
    yield dave.expect_silence()
    alice.send("CHG 8 NLN 0")
    yield alice.expect_line("CHG 8 NLN 0")
    yield dave.expect_line("NLN NLN alice@example.com Alice 0")
    ubx = yield dave.next()
    assert ubx.text == f"UBX alice@example.com {len(PSM)}" and ubx.payload == PSM
    alice.send("CHG 9 AWY 0")
    yield alice.expect_line("CHG 9 AWY 0")
    yield dave.expect_line("NLN AWY alice@example.com Alice 0")
    yield dave.expect_silence()
    yield alice.disconnect()
    yield dave.disconnect()
