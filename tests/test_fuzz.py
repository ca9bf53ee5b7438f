"""
Fuzzing a live server with random and mutated client lines.

The default run sends a few thousand lines; the full run (at least 100,000
lines) is marked slow and skipped unless asked for:

    .venv/bin/python -m pytest -m slow tests/test_fuzz.py

Afterwards the server must still log a user in normally, and nothing it
logged may be a failure.
"""

from __future__ import annotations

import random
import re

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from msnclient import connect, login
from msnp.msn.protocol import CommandProtocol, connections_of
from serverprocess import sleep

ACCOUNTS = [("alice@example.com", "pw-alice"), ("bob@example.com", "pw-bob"), ("carol@example.com", "pw-carol"), ("dave@example.com", "pw-dave")]

# Lines real clients send, per role (payload commands carry their payload).
NOTIFICATION_LINES = [
    b"VER 1 MSNP7 MSNP6 MSNP5 CVR0",
    b"INF 2",
    b"CVR 3 0x0409 winnt 5.1 i386 MSNMSGR 4.7.0000 MSMSGS alice@example.com",
    b"USR 4 MD5 I alice@example.com",
    b"USR 5 MD5 S 0123456789abcdef0123456789abcdef",
    b"SYN 6 0",
    b"CHG 7 NLN",
    b"CHG 8 HDN",
    b"CHG 9 BSY 0",
    b"ADD 10 FL bob@example.com Bob",
    b"ADD 11 AL bob@example.com Bob",
    b"ADD 12 BL carol@example.com Carol",
    b"ADD 13 FL dave@example.com Dave 0",
    b"REM 14 FL bob@example.com",
    b"REM 15 AL bob@example.com",
    b"REM 16 FL dave@example.com 0",
    b"LST 17 RL",
    b"LSG 18",
    b"ADG 19 Friends 0",
    b"REG 20 1 Work 0",
    b"RMG 21 1",
    b"REA 22 alice@example.com Alice%20A",
    b"REA 23 bob@example.com B%C3%B6b",
    b"PRP 24 PHH 555%201234",
    b"PRP 25 MOB Y",
    b"GTC 26 N",
    b"BLP 27 BL",
    b"BLP 28 AL",
    b"URL 29 INBOX",
    b"FND 30 fname=Bob lname=* city=* state=* country=*",
    b"SND 31 bob@example.com",
    b"IMS 32 OFF",
    b"XFR 33 SB",
    b"PNG",
    b"QRY 34 msmsgs@msnmsgr.com 32\r\n0123456789abcdef0123456789abcdef",
    b"UUX 35 53\r\n<Data><PSM>hi</PSM><CurrentMedia></CurrentMedia></Data>",
    # MSNP8-MSNP12
    b"VER 36 MSNP12 MSNP11 MSNP10 MSNP9 MSNP8 CVR0",
    b"USR 37 TWN I alice@example.com",
    b"USR 38 TWN S t=abc&p=def",
    b"ADC 39 FL N=bob@example.com F=Bob",
    b"ADC 40 AL N=bob@example.com",
    b"ADC 41 FL C=0f5e1a2b-1111-2222-3333-444455556666 0",
    b"REM 42 FL 0f5e1a2b-1111-2222-3333-444455556666",
    b"SBP 43 0f5e1a2b-1111-2222-3333-444455556666 MFN Bob",
    b"PRP 44 MFN Alice%20Z",
    b"CHG 45 NLN 268435500 %3Cmsnobj%20Creator%3D%22alice%40example.com%22%2F%3E",
    b"SYN 46 2005-04-23T18:57:44.8130000-07:00 2005-04-23T18:57:54.2070000-07:00",
    b"QRY 47 PROD0090YUAUV{2B 32\r\n0123456789abcdef0123456789abcdef",
]
DISPATCH_LINES = [
    b"VER 1 MSNP7 MSNP6 MSNP5 MSNP4 CVR0",
    b"INF 2",
    b"CVR 3 0x0409 winnt 5.1 i386 MSNMSGR 4.7.0000 MSMSGS alice@example.com",
    b"USR 4 MD5 I alice@example.com",
]
SWITCHBOARD_LINES = [
    b"USR 1 alice@example.com 1234567.89012.345",
    b"ANS 1 alice@example.com 1234567.89012.345 11752013",
    b"CAL 2 bob@example.com",
    b"MSG 3 A 79\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=A\r\n\r\nhi",
    b"MSG 4 U 75\r\nMIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: alice@example.com\r\n\r\n",
    b"OUT",
]
ROLES = {"dispatch": DISPATCH_LINES, "notification": NOTIFICATION_LINES, "switchboard": SWITCHBOARD_LINES}
NUMBERS = [b"-1", b"0", b"4294967295", b"4294967296", b"99999999999999999999", b"1e3", b"0x10", b"", b"007"]
ODD_BYTES = [b"\x00", b"\r", b"\xff", b"\xc3", b"%", b"%FF", b"%00", b" ", b"\t", b"\x7f", b"\xe2\x80\xae"]


def mutate(rng: random.Random, line: bytes) -> bytes:
    """
    One random change to a real line (or, sometimes, a line of noise).
    """
    choice = rng.randrange(12)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"")
    if choice == 1 and line:
        i = rng.randrange(len(line))
        return line[:i] + bytes([rng.randrange(256)]) + line[i + 1 :]
    if choice == 2:
        i = rng.randrange(len(line) + 1)
        return line[:i] + rng.choice(ODD_BYTES) + line[i:]
    if choice == 3 and line:
        i = rng.randrange(len(line))
        return line[:i] + line[i + rng.randrange(1, 20) :]
    tokens = line.split(b" ")
    if choice == 4:
        i = rng.randrange(len(tokens))
        tokens[i] = rng.choice(NUMBERS)
    elif choice == 5:
        i = rng.randrange(len(tokens))
        tokens.insert(i, tokens[i])
    elif choice == 6 and len(tokens) > 1:
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif choice == 7:
        tokens.append(b"x" * rng.choice([10, 130, 400, 2000]))
    elif choice == 8:
        tokens[0] = tokens[0].lower()
    elif choice == 9:
        tokens = tokens[: rng.randrange(1, len(tokens) + 1)]
    elif choice == 10:
        tokens[-1] = rng.choice(NUMBERS + [b"%d" % rng.randrange(10**6)])
    else:
        return line
    return b" ".join(tokens)


class LineCounter:
    """
    Counts the lines the server's connections actually parsed.
    """

    def __init__(self, monkeypatch):
        self.count = 0
        original = CommandProtocol.parse_line

        def counting(protocol, line):
            self.count += 1
            return original(protocol, line)

        monkeypatch.setattr(CommandProtocol, "parse_line", counting)


@defer.inlineCallbacks
def fuzz_worker(server, rng: random.Random, counter: LineCounter, target: int, account) -> None:
    while counter.count < target:
        role = rng.choice(list(ROLES))
        corpus = ROLES[role]
        port = getattr(server, f"{role}_port")
        ns = None
        if role == "notification" and rng.random() < 0.5:
            client = yield login(port, account[0], account[1], rng.choice(["MSNP2", "MSNP5", "MSNP7"]))
        elif role == "switchboard" and rng.random() < 0.5:
            ns, client = yield switchboard_login(server, account)
        else:
            client = yield connect(port, "fuzz")
            if role != "switchboard" and rng.random() < 0.8:
                opening = rng.choice([corpus[0], b"VER 1 MSNP12 MSNP11 MSNP10 MSNP9 MSNP8 CVR0"])
                client.send_raw(opening + b"\r\n")
        lines = []
        for _ in range(rng.randrange(20, 120)):
            line = rng.choice(corpus)
            if rng.random() < 0.7:
                line = mutate(rng, line)
            lines.append(line + rng.choice([b"\r\n", b"\r\n", b"\n"]))
        client.send_raw(b"".join(lines))
        yield sleep(0.002)
        yield client.disconnect()
        if ns is not None:
            yield ns.disconnect()


@defer.inlineCallbacks
def wait_for(client, pattern: str):
    """
    Skip lines (presence from other workers' fuzzing) until one matches.
    """
    while True:
        line = yield client.next()
        match = re.fullmatch(pattern, line.text)
        if match:
            return match


@defer.inlineCallbacks
def switchboard_login(server, account):
    """
    Log in at the notification server, get a cookie and open a switchboard
    session with it, so that fuzzed lines reach a logged-in switchboard.
    """
    handle, password = account
    ns = yield login(server.notification_port, handle, password, "MSNP5")
    ns.send("CHG 90 NLN")
    yield wait_for(ns, r"CHG 90 NLN")
    ns.send("XFR 91 SB")
    match = yield wait_for(ns, r"XFR 91 SB \S+ CKI (\S+)")
    client = yield connect(server.switchboard_port, "fuzz-sb")
    client.send(f"USR 1 {handle} {match.group(1)}")
    yield client.expect(rf"USR 1 OK {re.escape(handle)} .*")
    return ns, client


@defer.inlineCallbacks
def run_fuzz(server, monkeypatch, target: int, seed: int):
    # Login delays and leases run on a clock nobody advances: a fuzzed
    # wrong password leaves no real timer behind.
    # The switchboard shares it: cookies are issued and redeemed on one clock.
    clock = server.service.notification.clock = server.service.switchboard.clock = Clock()
    server.config.command_burst = 10**6
    # A connection waiting out a login delay does not read, so it does not
    # see its client leave until the delay is over.
    server.config.max_connections_per_address = 0
    counter = LineCounter(monkeypatch)
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        rng = random.Random(seed)
        workers = [fuzz_worker(server, random.Random(rng.random()), counter, target, account) for account in ACCOUNTS]
        yield defer.gatherResults(workers, consumeErrors=True)
        # Let the delayed 911s (and the leases) fall due.
        for _ in range(5):
            clock.advance(server.config.notification_lease + 1)
            yield sleep(0.02)
        yield sleep(0.1)
    finally:
        globalLogPublisher.removeObserver(observer)
    failures = [e for e in events if "log_failure" in e]
    assert not failures, failures[0]
    assert counter.count >= target
    # Every connection the fuzz opened is gone again, at every role.
    for factory in (server.service.dispatch, server.service.notification, server.service.switchboard):
        assert len(connections_of(factory)) == 0, factory
    # The server still does its job.
    server.service.notification.clock = server.service.switchboard.clock = reactor
    dave = yield login(server.notification_port, "dave@example.com", "pw-dave", "MSNP7")
    dave.send("SYN 9 0")
    yield dave.expect(r"SYN 9 \d+( .*)?")
    yield dave.disconnect()
    return counter.count


@pytest_twisted.inlineCallbacks
def test_fuzz_short(server, monkeypatch):
    """
    A few thousand random and mutated lines at every role: no failure is
    logged and a normal login works afterwards.
    """
    yield run_fuzz(server, monkeypatch, 3000, seed=1)


@pytest.mark.slow
@pytest_twisted.inlineCallbacks
def test_fuzz_100k(server, monkeypatch):
    """
    At least 100,000 random and mutated lines at every role: no failure is
    logged and a normal login works afterwards.
    """
    yield run_fuzz(server, monkeypatch, 100_000, seed=2)
