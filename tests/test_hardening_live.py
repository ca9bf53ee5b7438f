"""
Hardening against a live server over TCP: command floods, clients that stop
reading, clients that go silent, password guessing, and what the logs keep.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from msnclient import attempt_login, connect, login, md5_answer
from msnp.msn.protocol import connections_of


@defer.inlineCallbacks
def pause(seconds: float = 0.01):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    yield d


def use_clock(server) -> Clock:
    """
    Give the notification server a fake clock (timers, rate allowance,
    login delays) for connections made from now on.
    """
    clock = Clock()
    server.service.notification.clock = clock
    return clock


@defer.inlineCallbacks
def watching(server, watcher: str, password: str, target: str):
    """
    C{watcher} logs in (MSNP5: no CHL to interleave), puts C{target} on its
    FL and goes online.
    """
    client = yield login(server.notification_port, watcher, password, "MSNP5")
    client.send(f"ADD 1 FL {target} {target.split('@')[0]}")
    yield client.expect(rf"ADD 1 FL \d+ {target} \S+")
    client.send("CHG 2 NLN")
    yield client.expect_line("CHG 2 NLN")
    return client


@pytest_twisted.inlineCallbacks
def test_command_flood_is_refused_then_closed(server):
    """
    Past its allowance a connection's commands are answered 713 (800 for
    REA), and when it keeps going it is closed; another user on the same
    server is not affected.
    """
    use_clock(server)
    server.config.command_burst = 10
    server.config.flood_strikes = 5
    bob = yield login(server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
    # Login took 4 commands of the 10.
    alice.send_raw(b"".join(b"URL %d INBOX\r\n" % trid for trid in range(10, 16)))
    for trid in range(10, 16):
        yield alice.expect(rf"URL {trid} /inbox .+")
    alice.send("URL 20 INBOX")
    yield alice.expect_line("713 20")
    alice.send("REA 21 alice@example.com Flood")
    yield alice.expect_line("800 21")
    alice.send_raw(b"".join(b"PRP %d PHH 1\r\n" % trid for trid in range(22, 25)))
    for trid in range(22, 25):
        yield alice.expect_line(f"800 {trid}")
    alice.send("URL 30 INBOX")
    yield alice.expect_close()
    bob.send("URL 5 INBOX")
    yield bob.expect(r"URL 5 /inbox .+")
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_client_that_stops_reading_is_dropped(server):
    """
    Bob stops reading while Alice changes state as fast as she can: once
    more than the outbound limit is queued for Bob the server drops him.
    Carol, watching the same changes, receives every one of them, and Alice
    notices nothing.
    """
    server.config.command_rate = 1e9
    server.config.command_burst = 10**9
    server.config.max_outbound_buffer = 128 * 1024
    bob = yield watching(server, "bob@example.com", "pw-bob", "alice@example.com")
    carol = yield watching(server, "carol@example.com", "pw-carol", "alice@example.com")
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
    name = "A" * 380
    alice.send(f"REA 3 alice@example.com {name}")
    yield alice.expect(rf"REA 3 \d+ alice@example.com {name}")
    alice.send("CHG 4 NLN")
    yield alice.expect_line("CHG 4 NLN")
    bob.transport.pauseProducing()

    changes = 0
    trid = 100
    while (yield server.service.directory.endpoints_of("bob@example.com")):
        assert changes < 200_000, "Bob was never dropped"
        batch = []
        for _ in range(500):
            trid += 1
            batch.append(b"CHG %d %s\r\n" % (trid, b"BSY" if trid % 2 else b"NLN"))
        alice.send_raw(b"".join(batch))
        changes += len(batch)
        while True:
            line = yield alice.next()
            if line.text.startswith(f"CHG {trid} "):
                break
        # Carol keeps up; keep her queue from growing in the test itself.
        yield carol.wait_for_lines(changes + 1)
    bob.transport.resumeProducing()
    yield bob.wait_closed()

    first, *nln = [line.text for line in carol.received]
    assert first == f"NLN NLN alice@example.com {name}"
    assert len(nln) == changes
    assert all(text == f"NLN {'BSY' if i % 2 else 'NLN'} alice@example.com {name}" for i, text in enumerate(nln, 101))
    carol.received.clear()
    alice.send("CHG 9 BSY")
    yield alice.expect_line("CHG 9 BSY")
    yield carol.expect_line(f"NLN BSY alice@example.com {name}")
    yield carol.expect_silence()
    yield alice.disconnect()
    yield carol.expect_line("FLN alice@example.com")
    yield carol.disconnect()


@pytest_twisted.inlineCallbacks
def test_silent_connection_is_dropped_after_its_lease(server):
    """
    A notification connection that sends nothing (no PNG, no command) for
    the lease is closed and its watchers see FLN; a client that pings in
    time stays.
    """
    clock = use_clock(server)
    lease = server.config.notification_lease
    assert lease == 20 * 60
    bob = yield watching(server, "bob@example.com", "pw-bob", "alice@example.com")
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
    alice.send("CHG 5 NLN")
    yield alice.expect_line("CHG 5 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    clock.advance(lease - 1)
    bob.send("PNG")
    yield bob.expect_line("QNG")
    yield alice.expect_silence(0.05)
    clock.advance(2)
    yield alice.expect_close()
    yield bob.expect_line("FLN alice@example.com")
    clock.advance(lease - 3)
    bob.send("PNG")
    yield bob.expect_line("QNG")
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_repeated_failed_logins_are_slowed_alike_for_unknown_accounts(server):
    """
    The first wrong passwords get 911 at once; after that each 911 comes
    later than the last.  An account that does not exist is treated the
    same way, so the delay tells nothing about which accounts exist.  The
    right password still works.
    """
    clock = use_clock(server)
    port = server.notification_port
    free = server.service.config.login_failures_per_account
    for handle in ("alice@example.com", "nobody@example.com"):
        for _ in range(free):
            client = yield attempt_login(port, handle, "wrong", "MSNP5")
            yield client.expect_line("911 3")
            yield client.expect_close()
        for delay in (1, 2):
            client = yield attempt_login(port, handle, "wrong", "MSNP5")
            yield client.expect_silence(0.05)
            clock.advance(delay - 0.5)
            yield client.expect_silence(0.05)
            clock.advance(0.5)
            yield client.expect_line("911 3")
            yield client.expect_close()
    alice = yield login(port, "alice@example.com", "pw-alice", "MSNP5")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_challenges_are_fresh_bound_and_expire(server):
    """
    Every login attempt gets a new challenge; an answer computed for one
    connection's challenge fails on another; an answer that comes after
    the challenge's lifetime fails even when right.
    """
    clock = use_clock(server)
    port = server.notification_port
    challenges = set()
    clients = []
    for _ in range(20):
        client = yield connect(port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I alice@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        challenges.add(match.group(1))
        clients.append((client, match.group(1)))
    assert len(challenges) == 20
    (first, first_challenge), (second, _) = clients[0], clients[1]
    second.send(f"USR 3 MD5 S {md5_answer(first_challenge, 'pw-alice')}")
    yield second.expect_line("911 3")
    yield second.expect_close()
    clock.advance(server.config.challenge_lifetime + 1)
    first.send(f"USR 3 MD5 S {md5_answer(first_challenge, 'pw-alice')}")
    yield first.expect_line("911 3")
    yield first.expect_close()
    for client, _ in clients[2:]:
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_logs_hold_no_password_challenge_or_answer(server):
    """
    A failed and a successful login leave log lines, but none of them holds
    the password, the challenge or the answer.
    """
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        port = server.notification_port
        client = yield connect(port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I alice@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        wrong = md5_answer(match.group(1), "pw-wrong")
        client.send(f"USR 3 MD5 S {wrong}")
        yield client.expect_line("911 3")
        yield client.expect_close()
        secrets = {"pw-wrong", "pw-alice", match.group(1), wrong}

        client = yield connect(port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I alice@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        right = md5_answer(match.group(1), "pw-alice")
        client.send(f"USR 3 MD5 S {right}")
        yield client.expect(r"USR 3 OK alice@example.com .*")
        secrets |= {match.group(1), right}
        yield client.disconnect()
        yield pause(0.05)
    finally:
        globalLogPublisher.removeObserver(observer)
    text = "\n".join(formatEvent(e) + " " + repr(sorted((k, v) for k, v in e.items() if not k.startswith("log_"))) for e in events)
    assert "alice@example.com logged in" in text
    assert "login failed" in text
    for secret in secrets:
        assert secret not in text


@pytest_twisted.inlineCallbacks
def test_connections_per_address_over_tcp(server):
    """
    With a limit of three, the fourth connection from 127.0.0.1 to a role
    is dropped at once; closing one makes room again.
    """
    server.config.max_connections_per_address = 3
    connections_of(server.service.dispatch).per_address_limit = 3
    port = server.dispatch_port
    clients = []
    for _ in range(3):
        client = yield connect(port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        clients.append(client)
    extra = yield connect(port)
    yield extra.expect_close()
    yield clients.pop().disconnect()
    yield pause(0.05)
    again = yield connect(port)
    again.send("VER 1 MSNP5")
    yield again.expect_line("VER 1 MSNP5")
    for client in clients + [again]:
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_logs_hold_no_switchboard_cookie(server):
    """
    Opening a switchboard session, inviting, answering and a refused reuse
    of a cookie are all logged, without the cookies themselves.
    """
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
        alice.send("CHG 4 NLN")
        yield alice.expect_line("CHG 4 NLN")
        bob = yield login(server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
        bob.send("CHG 4 NLN")
        yield bob.expect_line("CHG 4 NLN")
        alice.send("XFR 5 SB")
        match = yield alice.expect(r"XFR 5 SB \S+ CKI (\S+)")
        opening = match.group(1)
        alice_sb = yield connect(server.switchboard_port)
        alice_sb.send(f"USR 1 alice@example.com {opening}")
        yield alice_sb.expect_line("USR 1 OK alice@example.com Alice")
        alice_sb.send("CAL 2 bob@example.com")
        match = yield alice_sb.expect(r"CAL 2 RINGING (\d+)")
        session_id = match.group(1)
        ring = yield bob.expect(rf"RNG {session_id} \S+ CKI (\S+) alice@example.com Alice")
        invitation = ring.group(1)
        bob_sb = yield connect(server.switchboard_port)
        bob_sb.send(f"ANS 1 bob@example.com {invitation} {session_id}")
        yield bob_sb.expect_line("IRO 1 1 1 alice@example.com Alice")
        yield bob_sb.expect_line("ANS 1 OK")
        thief = yield connect(server.switchboard_port)
        thief.send(f"USR 1 alice@example.com {opening}")
        yield thief.expect_line("911 1")
        yield thief.expect_close()
        for client in (bob_sb, alice_sb, bob, alice):
            yield client.disconnect()
        yield pause(0.05)
    finally:
        globalLogPublisher.removeObserver(observer)
    text = "\n".join(formatEvent(e) + " " + repr(sorted((k, v) for k, v in e.items() if not k.startswith("log_"))) for e in events)
    assert "opened switchboard session" in text and "switchboard login refused" in text
    for secret in (opening, invitation, "pw-alice", "pw-bob"):
        assert secret not in text
