"""
Every refused login tells the operator why (the log line) while the client
gets the same refusal whatever the reason: locked accounts over MD5,
Passport tickets and the HTTPS login; replayed and misused tickets;
Passport not configured; MD5 switched off; the throttle.
"""

import shutil

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from conftest import start_server
from msnclient import attempt_login, connect
from msnp.config import ServerConfig
from msnp.core import accounts
from msnp.msn.auth import PassportTickets
from twn import passport_login, pp_server, twn_start, twn_with_ticket  # noqa: F401 (fixture)


@pytest.fixture
def log_lines():
    lines = []

    def observe(event):
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


@pytest_twisted.inlineCallbacks
def test_locked_account_over_passport(pp_server, log_lines):
    """
    A ticket issued before the lock gets 911 at the notification server;
    the HTTPS login of a locked account gets the wrong-password 401; the
    log says "account locked" for both.
    """
    client, policy = yield twn_start(pp_server, "alice@example.com")
    response, ticket = yield passport_login(pp_server, "alice@example.com", "pw-alice", policy)
    assert response.code == 200 and ticket
    yield pp_server.service.messenger.lock("alice@example.com")
    client.send(f"USR 4 TWN S {ticket}")
    yield client.expect_line("911 4")
    yield client.expect_close()
    response, ticket = yield passport_login(pp_server, "alice@example.com", "pw-alice")
    assert response.code == 401 and ticket is None
    assert any(
        "login refused for alice@example.com (passport_ticket) from 127.0.0.1: account locked" in line for line in log_lines
    )
    assert any(
        "passport request refused from 127.0.0.1: refused login for alice@example.com: account locked (GET /login2.srf)" in line
        for line in log_lines
    )


@pytest_twisted.inlineCallbacks
def test_replayed_and_misused_tickets(pp_server, log_lines):
    """
    A ticket used twice, and one issued to someone else, get 911 with
    their own reason in the log.
    """
    _, ticket = yield passport_login(pp_server, "bob@example.com", "pw-bob")
    first, answer = yield twn_with_ticket(pp_server, "bob@example.com", ticket)
    assert answer.text.startswith("USR 4 OK bob@example.com")
    replay, answer = yield twn_with_ticket(pp_server, "bob@example.com", ticket)
    assert answer.text == "911 4"
    _, carols = yield passport_login(pp_server, "carol@example.com", "pw-carol")
    thief, answer = yield twn_with_ticket(pp_server, "dave@example.com", carols)
    assert answer.text == "911 4"
    yield first.disconnect()
    yield replay.wait_closed()
    yield thief.wait_closed()
    assert any("bob@example.com (passport_ticket) from 127.0.0.1: unknown or already used (replayed) ticket" in line for line in log_lines)
    assert any("dave@example.com (passport_ticket) from 127.0.0.1: ticket issued to another account" in line for line in log_lines)


def test_expired_ticket_is_told_apart():
    """
    Redeeming says which: unknown, another account's, expired, or fine.
    """
    clock = Clock()
    tickets = PassportTickets(60, clock.seconds)
    fresh, late, bobs = tickets.issue("alice@example.com"), tickets.issue("alice@example.com"), tickets.issue("bob@example.com")
    assert tickets.refusal(fresh, "Alice@Example.com") is None
    assert tickets.refusal(fresh, "alice@example.com") == accounts.TICKET_UNKNOWN
    assert tickets.refusal(bobs, "alice@example.com") == accounts.TICKET_OTHER_ACCOUNT
    clock.advance(61)
    assert tickets.refusal(late, "alice@example.com") == accounts.TICKET_EXPIRED
    assert tickets.refusal("garbage", "alice@example.com") == accounts.TICKET_UNKNOWN


@pytest_twisted.inlineCallbacks
def test_passport_not_configured_and_md5_switched_off(server, tmp_path, accounts_database, log_lines):
    """
    USR TWN on a server without --passport, and USR MD5 on one with
    --no-md5, get 911 and a log line saying so.
    """
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP8")
    yield client.expect_line("VER 1 MSNP8")
    client.send("USR 2 TWN I alice@example.com")
    yield client.expect(r"USR 2 TWN S .*")
    client.send("USR 3 TWN S t=made-up&p=made-up")
    yield client.expect_line("911 3")
    yield client.expect_close()
    assert any("alice@example.com (passport_ticket) from 127.0.0.1: Passport not configured" in line for line in log_lines)

    db_path = tmp_path / "no-md5.sqlite"
    shutil.copyfile(accounts_database, db_path)
    no_md5 = yield start_server(str(db_path), ServerConfig(md5_login=False, supported_dialects=tuple(range(2, 13))))
    try:
        client = yield connect(no_md5.notification_port)
        client.send("VER 1 MSNP7")
        yield client.expect_line("VER 1 MSNP7")
        client.send("USR 2 MD5 I bob@example.com")
        yield client.expect_line("911 2")
        yield client.expect_close()
    finally:
        yield no_md5.stop()
    assert any("bob@example.com (md5) from 127.0.0.1: MD5 login switched off" in line for line in log_lines)


@pytest_twisted.inlineCallbacks
def test_throttled_refusal_says_so(tmp_path, accounts_database, log_lines):
    """
    Past the free failures, a refusal is held back by the throttle; the
    log line names the reason and the delay.
    """
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    config = ServerConfig(login_failures_per_account=1, login_delay_base=0.01)
    running = yield start_server(str(db_path), config)
    try:
        for _ in range(2):
            client = yield attempt_login(running.notification_port, "carol@example.com", "wrong")
            yield client.expect_line("911 3")
            yield client.expect_close()
    finally:
        yield running.stop()
    refusals = [line for line in log_lines if "login refused for carol@example.com" in line]
    assert refusals[0].endswith("from 127.0.0.1: wrong password")
    assert refusals[1].endswith("from 127.0.0.1: wrong password (throttled: answered after 0.01 s)")
