"""
Logging in: dispatch referral, MD5 login at the notification server,
OUT OTH when the same account logs in again.
"""

import pytest_twisted

from msnclient import attempt_login, connect, login, md5_answer


@pytest_twisted.inlineCallbacks
def test_dispatch_refers_to_notification_server_msnp7(server):
    """
    VER, INF, CVR, USR at the dispatch server end in XFR NS with the current
    server's address (MSNP7 shape), then the server hangs up.
    """
    client = yield connect(server.dispatch_port)
    client.send("VER 1 MSNP7 MSNP6 MSNP5 MSNP4 CVR0")
    yield client.expect_line("VER 1 MSNP7")
    client.send("INF 2")
    yield client.expect_line("INF 2 MD5")
    client.send("CVR 3 0x0409 winnt 5.1 i386 MSNMSGR 4.7.0000 MSMSGS")
    yield client.expect(r"CVR 3 4\.7\.0000 4\.7\.0000 4\.7\.0000 \S+ \S+")
    client.send("USR 4 MD5 I alice@example.com")
    ns = f"127.0.0.1:{server.notification_port}"
    ds = f"127.0.0.1:{server.dispatch_port}"
    yield client.expect_line(f"XFR 4 NS {ns} 0 {ds}")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_dispatch_xfr_shapes_by_dialect(server):
    """
    XFR NS has no trailing parameters in MSNP2 and a trailing 0 in MSNP3-6.
    """
    ns = f"127.0.0.1:{server.notification_port}"
    for dialect, expected in (("MSNP2", f"XFR 2 NS {ns}"), ("MSNP5", f"XFR 2 NS {ns} 0")):
        client = yield connect(server.dispatch_port)
        client.send(f"VER 1 {dialect}")
        yield client.expect_line(f"VER 1 {dialect}")
        client.send("USR 2 MD5 I alice@example.com")
        yield client.expect_line(expected)
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_md5_login_and_wrong_password(server):
    """
    A right answer logs in (MSNP7: verified flag); a wrong one gets 911 and
    a close, exactly as an unknown account does.
    """
    client = yield login(server.notification_port, "alice@example.com", "pw-alice")
    client.send("USR 5 MD5 I alice@example.com")
    yield client.expect_line("207 5")
    yield client.disconnect()

    for handle, password in (("alice@example.com", "wrong"), ("nobody@example.com", "x")):
        client = yield attempt_login(server.notification_port, handle, password)
        yield client.expect_line("911 3")
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_challenges_are_fresh(server):
    """
    Every login attempt gets a new challenge.
    """
    seen = set()
    for _ in range(3):
        client = yield connect(server.notification_port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I alice@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        seen.add(match.group(1))
        yield client.disconnect()
    assert len(seen) == 3


@pytest_twisted.inlineCallbacks
def test_usr_ok_shape_by_dialect(server):
    """
    MSNP2-5 USR OK carries handle and name; MSNP6-7 add the verified flag.
    """
    for dialect, pattern in (("MSNP2", "USR 4 OK alice@example.com Alice"), ("MSNP6", "USR 4 OK alice@example.com Alice 1")):
        client = yield connect(server.notification_port)
        client.send(f"VER 1 {dialect}")
        yield client.expect_line(f"VER 1 {dialect}")
        client.send("USR 3 MD5 I alice@example.com")
        match = yield client.expect(r"USR 3 MD5 S (\S+)")
        client.send(f"USR 4 MD5 S {md5_answer(match.group(1), 'pw-alice')}")
        yield client.expect_line(pattern)
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_second_login_replaces_first(server):
    """
    The same account logging in elsewhere: the older connection gets OUT OTH
    and is closed.
    """
    first = yield login(server.notification_port, "alice@example.com", "pw-alice")
    second = yield login(server.notification_port, "alice@example.com", "pw-alice")
    yield first.expect_line("OUT OTH")
    yield first.expect_close()
    second.send("PNG")
    yield second.expect_line("QNG")
    yield second.disconnect()


@pytest_twisted.inlineCallbacks
def test_dispatch_full_exchange_per_dialect(server):
    """
    MSNP2, MSNP5 and MSNP7 clients at the dispatch server: VER picks the
    best common dialect, INF answers MD5, CVR is answered, USR MD5 I ends
    in the dialect's XFR NS shape and a close.
    """
    ns = f"127.0.0.1:{server.notification_port}"
    ds = f"127.0.0.1:{server.dispatch_port}"
    for offered, chosen, xfr in (
        ("MSNP2 CVR0", "MSNP2", f"XFR 4 NS {ns}"),
        ("MSNP5 MSNP4 MSNP3 CVR0", "MSNP5", f"XFR 4 NS {ns} 0"),
        ("MSNP4 msnp7 MSNP99 CVR0", "MSNP7", f"XFR 4 NS {ns} 0 {ds}"),
    ):
        client = yield connect(server.dispatch_port)
        client.send(f"VER 1 {offered}")
        yield client.expect_line(f"VER 1 {chosen}")
        client.send("INF 2")
        yield client.expect_line("INF 2 MD5")
        client.send("CVR 3 0x0409 win 4.10 i386 MSMSGS 1.0.0863 MSMSGS")
        yield client.expect(r"CVR 3 1\.0\.0863 1\.0\.0863 1\.0\.0863 \S+ \S+")
        client.send("USR 4 MD5 I Alice@Example.com")
        yield client.expect_line(xfr)
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_dispatch_refusals(server):
    """
    At the dispatch server a malformed handle or an unknown security
    package is 911 and a close; no common dialect is VER t 0 and a close.
    """
    for line in ("USR 2 MD5 I not-a-handle", "USR 2 TWN I alice@example.com", "USR 2 MD5 S abc"):
        client = yield connect(server.dispatch_port)
        client.send("VER 1 MSNP7")
        yield client.expect_line("VER 1 MSNP7")
        client.send(line)
        yield client.expect_line("911 2")
        yield client.expect_close()
    client = yield connect(server.dispatch_port)
    client.send("VER 1 MSNP1 CVR0")
    yield client.expect_line("VER 1 0")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_ver_rules(server):
    """
    A command before VER closes the connection; a second VER is 715 and a
    close.
    """
    client = yield connect(server.notification_port)
    client.send("INF 1")
    rest = yield client.expect_close()
    assert rest == []
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP5")
    yield client.expect_line("VER 1 MSNP5")
    client.send("VER 2 MSNP5")
    yield client.expect_line("715 2")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_handles_are_matched_without_case(server):
    """
    The account name in USR is matched without regard to case; USR OK
    names the account as stored (lower case).
    """
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP5")
    yield client.expect_line("VER 1 MSNP5")
    client.send("USR 2 MD5 I ALICE@Example.COM")
    match = yield client.expect(r"USR 2 MD5 S (\S+)")
    client.send(f"USR 3 MD5 S {md5_answer(match.group(1), 'pw-alice')}")
    yield client.expect_line("USR 3 OK alice@example.com Alice")
    yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_login_refusals(server):
    """
    An answer without a challenge, a malformed handle and an unknown
    package are each 911 and a close.
    """
    for line in ("USR 2 MD5 S 0123456789abcdef0123456789abcdef", "USR 2 MD5 I nobody", "USR 2 CTP I alice@example.com"):
        client = yield connect(server.notification_port)
        client.send("VER 1 MSNP7")
        yield client.expect_line("VER 1 MSNP7")
        client.send(line)
        yield client.expect_line("911 2")
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_profile_message_by_dialect(server):
    """
    After USR OK comes MSG Hotmail Hotmail with the text/x-msmsgsprofile
    headers: MSNP2 carries only LoginTime, MSNP3+ the Passport fields too.
    """
    old = yield connect(server.notification_port)
    old.send("VER 1 MSNP2")
    yield old.expect_line("VER 1 MSNP2")
    old.send("USR 2 MD5 I alice@example.com")
    match = yield old.expect(r"USR 2 MD5 S (\S+)")
    old.send(f"USR 3 MD5 S {md5_answer(match.group(1), 'pw-alice')}")
    yield old.expect_line("USR 3 OK alice@example.com Alice")
    profile = yield old.next()
    assert profile.args[:3] == ["MSG", "Hotmail", "Hotmail"] and int(profile.args[3]) == len(profile.payload)
    headers = profile.payload.decode().split("\r\n")
    assert headers[:2] == ["MIME-Version: 1.0", "Content-Type: text/x-msmsgsprofile; charset=UTF-8"]
    assert headers[2].startswith("LoginTime: ") and headers[3:] == ["", ""]
    yield old.disconnect()
    new = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
    yield new.disconnect()


@pytest_twisted.inlineCallbacks
def test_logs_never_show_passwords_or_answers(server):
    """
    Connection events are logged through twisted.logger, one line each,
    and neither the password nor the challenge answer of a successful or a
    failed login appears in any of them.
    """
    from twisted.logger import formatEvent, globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        client = yield connect(server.notification_port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I alice@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        right = md5_answer(match.group(1), "pw-alice")
        client.send(f"USR 3 MD5 S {right}")
        yield client.expect_line("USR 3 OK alice@example.com Alice")
        yield client.next()
        yield client.disconnect()
        client = yield connect(server.notification_port)
        client.send("VER 1 MSNP5")
        yield client.expect_line("VER 1 MSNP5")
        client.send("USR 2 MD5 I bob@example.com")
        match = yield client.expect(r"USR 2 MD5 S (\S+)")
        wrong = md5_answer(match.group(1), "not-bobs")
        client.send(f"USR 3 MD5 S {wrong}")
        yield client.expect_line("911 3")
        yield client.expect_close()
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(event) for event in events]
    assert any("alice@example.com logged in" in line for line in lines)
    for line in lines:
        assert "\n" not in line.strip()
        for secret in ("pw-alice", "not-bobs", right, wrong):
            assert secret not in line
