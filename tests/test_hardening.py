"""
Bad input at every role: each malformed line gets the protocol's error or a
deliberate close, the server logs no traceback, and it keeps serving.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from msnclient import connect, login

ROLES = ["dispatch", "notification", "switchboard"]

# A line every role answers the same way before login: an unknown command.
PROBE = ("ZZZ 77", "200 77")


@pytest.fixture
def log_events():
    """
    Every log event emitted while the test runs.
    """
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def assert_no_failure(events) -> None:
    failures = [e for e in events if "log_failure" in e or e.get("log_level") is not None and e["log_level"].name in ("error", "critical")]
    assert not failures, failures


def role_port(server, role: str) -> int:
    if role not in server.service.listeners:
        pytest.skip(f"no {role} server in this build")
    return getattr(server, f"{role}_port")


@defer.inlineCallbacks
def pause(seconds: float = 0.01):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    yield d


@defer.inlineCallbacks
def still_answers(port: int):
    """
    A fresh connection to C{port} still gets its answer.
    """
    client = yield connect(port, "probe")
    client.send(PROBE[0])
    yield client.expect_line(PROBE[1])
    yield client.disconnect()


@pytest.mark.parametrize("role", ROLES)
@pytest_twisted.inlineCallbacks
def test_blank_lines_and_lone_cr_are_skipped(server, role, log_events):
    """
    Blank lines and whitespace-only lines are skipped without an answer;
    the next real command is answered as usual.
    """
    client = yield connect(role_port(server, role))
    client.send_raw(b"\r\n\n   \r\n\t\r\n")
    client.send(PROBE[0])
    yield client.expect_line(PROBE[1])
    yield client.expect_silence()
    yield client.disconnect()
    assert_no_failure(log_events)


MALFORMED = [
    (b"ZZZ 5 a\rb\r\n", "200 5"),  # a CR inside a line is not a terminator
    (b"\rZZZ 9\r\n", "200 9"),  # nor is a lone CR before it
    (b"\r\r\n", "200"),
    (b"ZZZ 6 MSNP7\x00\r\n", "200 6"),  # NUL byte
    (b"\x00\x00\x00\r\n", "200"),
    (b"ZZZ 7 \xff\xfe\xc3\r\n", "200 7"),  # not UTF-8
    (b"zzz 8\r\n", "200"),  # command names are case-sensitive
    (b"ZZZ 4294967296\r\n", "200"),  # TrID out of range: nothing to echo
    (b"ZZZ -1\r\n", "200"),
    (b"ZZZ 99999999999999999999999\r\n", "200"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest_twisted.inlineCallbacks
def test_malformed_lines_get_200_and_connection_stays(server, role, log_events):
    """
    Control characters, invalid UTF-8, lower-case names and TrIDs that are
    not decimal or are above 2**32-1 are each answered with 200 (with the
    TrID when one could be read); the connection stays usable.
    """
    client = yield connect(role_port(server, role))
    for raw, answer in MALFORMED:
        client.send_raw(raw)
        yield client.expect_line(answer)
    client.send(PROBE[0])
    yield client.expect_line(PROBE[1])
    yield client.disconnect()
    assert_no_failure(log_events)


@pytest.mark.parametrize("role", ["dispatch", "notification"])
@pytest_twisted.inlineCallbacks
def test_highest_trid_is_echoed(server, role):
    """
    2**32-1 is still a TrID and is echoed as sent.
    """
    client = yield connect(role_port(server, role))
    client.send("VER 4294967295 MSNP7")
    yield client.expect_line("VER 4294967295 MSNP7")
    yield client.disconnect()


@pytest.mark.parametrize("role", ROLES)
@pytest_twisted.inlineCallbacks
def test_endless_line_is_cut_off(server, role, log_events):
    """
    A line that never ends (the client means to send 64 MiB) is cut off
    soon after the line limit: the server hangs up long before the whole of
    it could be sent, logs why, and keeps serving others.
    """
    port = role_port(server, role)
    client = yield connect(port)
    chunk = b"A" * (256 * 1024)
    sent = 0
    while not client.is_closed and sent < 64 * 1024 * 1024:
        client.send_raw(chunk)
        sent += len(chunk)
        yield pause(0.001)
    yield client.expect_close()
    assert sent < 64 * 1024 * 1024
    assert any("closed: line longer than" in formatEvent(e) for e in log_events)
    yield still_answers(port)
    assert_no_failure(log_events)


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "99999999999", str(10**6)])
@pytest_twisted.inlineCallbacks
def test_bad_payload_length_closes(server, length, log_events):
    """
    A payload command whose length is not a decimal, is negative, or is
    beyond the payload limit gets a deliberate close (there is no way to
    know where the next line starts).
    """
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP7")
    yield client.expect_line("VER 1 MSNP7")
    client.send(f"QRY 2 PROD0038W!61ZTF9 {length}")
    yield client.expect_close()
    yield still_answers(server.notification_port)
    assert_no_failure(log_events)
    closing = [e for e in log_events if "closed:" in formatEvent(e)]
    assert len(closing) == 1 and closing[0]["reason"] in ("bad payload length", "payload too long"), closing


@pytest_twisted.inlineCallbacks
def test_short_payload_then_close_takes_user_offline(server, log_events):
    """
    A logged-in client declares a payload, sends part of it and hangs up:
    nothing is dispatched, its watchers see it go offline, nothing fails.
    """
    # MSNP5: no CHL challenge after CHG to interleave with presence.
    bob = yield login(server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
    bob.send("ADD 10 FL alice@example.com Alice")
    yield bob.expect(r"ADD 10 FL \d+ alice@example.com Alice( 0)?")
    bob.send("CHG 11 NLN")
    yield bob.expect_line("CHG 11 NLN")
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
    alice.send("CHG 5 NLN")
    yield alice.expect_line("CHG 5 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    alice.send_raw(b"QRY 6 PROD0038W!61ZTF9 100\r\n0123456789")
    yield pause(0.05)
    yield alice.disconnect()
    yield bob.expect_line("FLN alice@example.com")
    yield bob.disconnect()
    assert_no_failure(log_events)


@pytest.mark.parametrize("role", ["dispatch", "notification"])
@pytest.mark.parametrize("line", ["USR 1 MD5 I alice@example.com", "SYN 2 0", "CHG 3 NLN", "INF 4"])
@pytest_twisted.inlineCallbacks
def test_commands_before_ver_close(server, role, line, log_events):
    """
    A known command sent before VER is what only a broken client does: the
    server hangs up.
    """
    client = yield connect(role_port(server, role))
    client.send(line)
    yield client.expect_close()
    assert_no_failure(log_events)


@pytest.mark.parametrize("role", ["dispatch", "notification"])
@pytest_twisted.inlineCallbacks
def test_switchboard_commands_elsewhere(server, role, log_events):
    """
    Switchboard commands at the dispatch or notification server: CAL/ANS/JOI
    are unknown there (200); MSG is dropped with a close, as the reference
    says of MSG sent to the notification server.
    """
    client = yield connect(role_port(server, role))
    client.send("VER 1 MSNP7")
    yield client.expect_line("VER 1 MSNP7")
    client.send("CAL 2 bob@example.com")
    yield client.expect_line("200 2")
    client.send("ANS 3 bob@example.com 1.2.3 4")
    yield client.expect_line("200 3")
    client.send("MSG 4 A 5")
    client.send_raw(b"hello")
    yield client.expect_close()
    assert_no_failure(log_events)


@pytest_twisted.inlineCallbacks
def test_invalid_utf8_in_name_is_201(server, log_events):
    """
    A URL-encoded name that decodes to invalid UTF-8 is refused with 201;
    the stored name is unchanged.
    """
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice")
    alice.send("REA 7 alice@example.com %FF%FE%C3")
    yield alice.expect_line("201 7")
    alice.send("ADD 8 FL bob@example.com Bob%C3%28")
    yield alice.expect_line("201 8")
    account = yield server.store.get_account("alice@example.com")
    assert account.friendly_name == "Alice"
    yield alice.disconnect()
    assert_no_failure(log_events)


@pytest_twisted.inlineCallbacks
def test_dispatch_refuses_notification_commands_after_ver(server, log_events):
    """
    Commands that need a login at the dispatch server answer 302: nobody
    logs in there.
    """
    client = yield connect(server.dispatch_port)
    client.send("VER 1 MSNP7")
    yield client.expect_line("VER 1 MSNP7")
    client.send("SYN 2 0")
    yield client.expect_line("302 2")
    client.send("ADD 3 FL bob@example.com Bob")
    yield client.expect_line("302 3")
    yield client.disconnect()
    assert_no_failure(log_events)


@pytest_twisted.inlineCallbacks
def test_non_ascii_challenge_answer_is_911(server, log_events):
    """
    An MD5 answer with non-ASCII characters is a wrong answer (911 and
    close), not a failure inside the password check.
    """
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP5")
    yield client.expect_line("VER 1 MSNP5")
    client.send("USR 2 MD5 I alice@example.com")
    yield client.expect(r"USR 2 MD5 S \S+")
    client.send("USR 3 MD5 S d1713d0f1d2e8fae230328d8fd59de0\u00e9")
    yield client.expect_line("911 3")
    yield client.expect_close()
    assert_no_failure(log_events)
