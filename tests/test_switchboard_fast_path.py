"""
The switchboard's message fast path: plain C{MSG t L n} commands relayed
straight from the bytes.  Whatever it takes must be read exactly as the
general parser reads it, and any stream of reads must give the same
answers, deliveries and closes with and without it.  Also the MSG rate
allowance and the idle timer that is no longer moved per message.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msnp.msn import wire
from msnp.msn.switchboard import SwitchboardProtocol
from test_switchboard_timers import P2P, TEXT, Harness, session_id_of

LETTERS_MSNP7 = frozenset({b"U", b"N", b"A"})
LETTERS_MSNP9 = frozenset({b"U", b"N", b"A", b"D"})


def general_reading(line: bytes, limit: int):
    try:
        return wire.parse_client_line(line, frozenset({"MSG"}), limit)
    except wire.WireError as error:
        return error


def msg_like_lines():
    """
    Lines near the plain shape: every token drawn from valid and invalid
    values, joined by one or more kinds of whitespace.
    """
    token = st.sampled_from(
        [b"MSG", b"msg", b"MSGX", b"A", b"N", b"U", b"D", b"a", b"X", b"AA", b"", b"0", b"7", b"007", b"160",
         b"1664", b"1665", b"-1", b"+5", b"4294967295", b"4294967296", b"99999999999", b"\xd9\xa1", b"1\x00",
         b"\xff", b"1_0", b" 5", b"\r"]
    )
    separator = st.one_of(st.just(b" "), st.sampled_from([b"  ", b"\t", b"\r", b"\x0b", b"\x1c"]))
    ending = st.sampled_from([b"", b"\r", b"\r\r", b" "])
    numbers = st.one_of(st.sampled_from([b"0", b"007", b"5", b"160", b"1664", b"1665", b"4294967295", b"4294967296"]), token)
    # Four tokens in MSG's own places, each sometimes wrong.
    shaped = st.builds(
        lambda name, trid, letter, length, seps, end: name + seps[0] + trid + seps[1] + letter + seps[2] + length + end,
        st.one_of(st.just(b"MSG"), token),
        numbers,
        st.one_of(st.sampled_from([b"A", b"N", b"U", b"D"]), token),
        numbers,
        st.lists(separator, min_size=3, max_size=3),
        ending,
    )
    loose = st.builds(
        lambda tokens, seps, end: b"".join(t + s for t, s in zip(tokens, seps)).rstrip(b" ") + end,
        st.lists(token, min_size=1, max_size=6),
        st.lists(separator, min_size=6, max_size=6),
        ending,
    )
    return st.one_of(shaped, loose)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(msg_like_lines(), st.binary(max_size=40)), st.sampled_from([LETTERS_MSNP7, LETTERS_MSNP9]), st.sampled_from([0, 5, 1664]))
def test_plain_msg_reads_as_the_general_parser_does(line, letters, limit):
    """
    A line the fast parser takes is a MSG with the same TrID, letter and
    length through the general parser; one it declines is left to the
    general parser, whatever that makes of it.
    """
    line = line.replace(b"\n", b"")
    fast = wire.parse_plain_msg(line, letters, limit)
    general = general_reading(line, limit)
    if fast is None:
        return
    trid, letter, length = fast
    assert not isinstance(general, wire.WireError), (line, general)
    command, general_length = general
    assert (command.name, command.trid, command.args, general_length) == ("MSG", trid, (letter.decode(),), length)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=wire.MAX_TRID),
    st.sampled_from(sorted(LETTERS_MSNP9)),
    st.integers(min_value=0, max_value=1664),
    st.booleans(),
)
def test_plain_msg_takes_what_clients_send(trid, letter, length, crlf):
    """
    Every well-formed MSG line as clients write it is taken by the fast
    parser.
    """
    line = b"MSG %d %s %d" % (trid, letter, length) + (b"\r" if crlf else b"")
    assert wire.parse_plain_msg(line, LETTERS_MSNP9, 1664) == (trid, letter, length)


@pytest.mark.parametrize(
    "line",
    [b"MSG 3 a 5", b"MSG 3 X 5", b"MSG 3 D 5", b"MSG 3 5", b"MSG 3 A A 5", b"MSG 3 A -1", b"MSG 3 A 1665",
     b"MSG 3 A 99999999999", b"MSG 4294967296 A 5", b"MSG  3 A 5", b"MSG 3\tA 5", b"MSG 3 A 5\r\r", b"MSG 3 A 5 "],
)
def test_plain_msg_declines_anything_else(line):
    assert wire.parse_plain_msg(line, LETTERS_MSNP7, 1664) is None


class GeneralOnlyProtocol(SwitchboardProtocol):
    """
    The switchboard with the fast path turned off: every line goes through
    the general parser and L{SwitchboardSession}.
    """

    fast_path = False


def conversation(general_only: bool, version: int, message_burst: int):
    harness = Harness(command_burst=message_burst, command_rate=1.0, sb_message_burst=message_burst, sb_message_rate=1.0)
    if general_only:
        harness.server.protocol = GeneralOnlyProtocol
    alice, alice_transport = harness.open(version=version)
    bob, bob_transport = harness.join(session_id_of(alice), version=version)
    alice_transport.clear()
    bob_transport.clear()
    return harness, (alice, alice_transport), (bob, bob_transport)


def message(trid, letter, payload, spelled=b"%d"):
    return b"MSG %d %s " % (trid, letter) + spelled % len(payload) + b"\r\n" + payload


plain_messages = st.builds(message, st.integers(0, 20), st.sampled_from([b"A", b"N", b"U"]), st.sampled_from([TEXT, P2P, b"", b"x" * 1664]))
other_pieces = st.one_of(
    st.builds(message, st.integers(0, 20), st.just(b"D"), st.sampled_from([TEXT, P2P])),
    st.builds(message, st.integers(0, 5), st.sampled_from([b"a", b"X", b"A A"]), st.just(TEXT)),
    st.builds(lambda p: message(1, b"A", p, b"0%d"), st.just(TEXT)),
    st.just(b"MSG 1 A 1665\r\n" + b"y" * 1665),
    st.just(b"MSG 1 A x\r\nhello"),
    st.sampled_from([b"\r\n", b"  \r\n", b"USR 9 a@b.c 1.2.3\r\n", b"FOO 3\r\n", b"MSG\r\n", b"MSG 5\r\n", b"OUT\r\n",
                     b"ANS 9 a b c\r\n", b"\x00\r\n", b"\xff\xfe\r\n", b"MSG 7 A 3\rabc\r\n"]),
    st.binary(max_size=30),
)
# Half the pieces are plain messages, so that streams reach the rate limit.
stream_pieces = st.one_of(plain_messages, other_pieces)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(stream_pieces, min_size=1, max_size=24),
    cuts=st.lists(st.one_of(st.integers(min_value=1, max_value=200), st.integers(min_value=200, max_value=30000)), min_size=1, max_size=8),
    version=st.sampled_from([7, 9]),
    message_burst=st.sampled_from([2, 500]),
)
def test_fast_path_and_general_path_agree_on_any_stream(pieces, cuts, version, message_burst):
    """
    The same bytes, cut into the same reads, give byte-identical output to
    both participants and the same closes with the fast path as without
    it: messages, ACK/NAK, 282, 713 past the allowance, errors for other
    commands, and closes for bad letters, lengths and sizes.
    """
    stream = b"".join(pieces)
    outcomes = []
    for general_only in (False, True):
        harness, (alice, alice_transport), (bob, bob_transport) = conversation(general_only, version, message_burst)
        try:
            position, index = 0, 0
            while position < len(stream):
                cut = cuts[index % len(cuts)]
                alice.dataReceived(stream[position : position + cut])
                position += cut
                index += 1
            outcomes.append(
                (alice_transport.value(), alice_transport.disconnecting, bob_transport.value(), bob_transport.disconnecting)
            )
        finally:
            harness.close_all()
    assert outcomes[0] == outcomes[1]


def test_fast_path_relays_and_acknowledges(harness):
    """
    Plain messages in one read are relayed in order with the sender's
    prefix, each answered as its letter asks.
    """
    alice, alice_transport = harness.open()
    bob, bob_transport = harness.join(session_id_of(alice))
    alice_transport.clear()
    bob_transport.clear()
    alice.dataReceived(message(5, b"A", TEXT) + message(6, b"U", TEXT) + message(7, b"N", TEXT) + message(8, b"A", b""))
    relayed = b"MSG alice@example.com Alice %d\r\n" % len(TEXT) + TEXT
    assert bob_transport.value() == relayed * 3 + b"MSG alice@example.com Alice 0\r\n"
    assert alice_transport.value() == b"ACK 5\r\nACK 8\r\n"


def test_fast_path_alone_in_a_session_is_refused(harness):
    """
    Nobody else to deliver to: NAK for A and N, nothing for U.
    """
    alice, alice_transport = harness.open()
    alice.dataReceived(message(2, b"A", TEXT) + message(3, b"N", TEXT) + message(4, b"U", TEXT))
    assert alice_transport.value() == b"NAK 2\r\nNAK 3\r\n"


def test_chatty_conversation_is_not_cut_off(harness):
    """
    MSG has its own allowance: a burst of 500 messages and then 100 a
    second are all relayed, far past the 200/20 per second every other
    command gets; beyond it MSG is answered 713 with its payload read.
    """
    alice, alice_transport = harness.open()
    bob, bob_transport = harness.join(session_id_of(alice))
    alice_transport.clear()
    alice.dataReceived(b"".join(message(n, b"A", TEXT) for n in range(500)))
    for second in range(10):
        harness.clock.advance(1)
        alice.dataReceived(b"".join(message(1000 + 100 * second + n, b"A", TEXT) for n in range(100)))
    answers = alice_transport.value().split(b"\r\n")[:-1]
    assert len(answers) == 1500 and all(a.startswith(b"ACK ") for a in answers)
    alice_transport.clear()
    alice.dataReceived(b"".join(message(n, b"A", TEXT) for n in range(5)))
    assert alice_transport.value() == b"".join(b"713 %d\r\n" % n for n in range(5))
    assert not alice_transport.disconnecting
    alice_transport.clear()
    harness.clock.advance(0.02)
    alice.dataReceived(message(6, b"A", TEXT))
    assert alice_transport.value() == b"ACK 6\r\n"


def test_messages_do_not_move_timers(harness):
    """
    A message stamps the time instead of rescheduling the idle timer: no
    timer is added or moved per message, and the participants are still
    removed after the idle timeout measured from their last message.
    """
    idle = harness.config.sb_idle_timeout
    alice, alice_transport = harness.open()
    bob, bob_transport = harness.join(session_id_of(alice))
    calls = harness.clock.getDelayedCalls()
    due = sorted(call.getTime() for call in calls)
    harness.clock.advance(10)
    for n in range(50):
        alice.dataReceived(message(n, b"A", TEXT))
    assert sorted(call.getTime() for call in harness.clock.getDelayedCalls()) == due
    harness.clock.advance(idle - 1)
    assert not alice_transport.disconnecting and not bob_transport.disconnecting
    harness.clock.advance(1)
    assert alice_transport.disconnecting or bob_transport.disconnecting


@pytest.fixture
def harness():
    harness = Harness()
    yield harness
    harness.close_all()


def test_zero_idle_timeout_turns_idling_off():
    """
    With C{sb_idle_timeout} 0 a participant is never removed for silence.
    """
    harness = Harness(sb_idle_timeout=0)
    try:
        alice, alice_transport = harness.open()
        assert harness.clock.getDelayedCalls() == []
        harness.clock.advance(10**6)
        assert not alice_transport.disconnecting
    finally:
        harness.close_all()


@pytest.mark.parametrize("general_only", [False, True])
def test_plain_messages_take_the_fast_path(general_only, monkeypatch):
    """
    With the fast path on, plain messages never reach
    L{SwitchboardSession.do_MSG} (so the equivalence above compares two
    different routes); a D message that is not peer-to-peer data still
    does, and gets its 282.  With it off, every message does.
    """
    from msnp.msn.switchboard import SwitchboardSession

    seen = []
    original = SwitchboardSession.do_MSG

    def recording(session, command):
        seen.append(command.trid)
        return original(session, command)

    monkeypatch.setattr(SwitchboardSession, "do_MSG", recording)
    harness, (alice, alice_transport), (bob, bob_transport) = conversation(general_only, 9, 500)
    try:
        alice.dataReceived(message(1, b"A", TEXT) + message(2, b"N", TEXT)[:9])
        alice.dataReceived(message(2, b"N", TEXT)[9:] + message(3, b"D", TEXT) + message(4, b"D", P2P))
        assert alice_transport.value() == b"ACK 1\r\n282 3\r\nACK 4\r\n"
        assert seen == ([1, 2, 3, 4] if general_only else [3])
    finally:
        harness.close_all()
