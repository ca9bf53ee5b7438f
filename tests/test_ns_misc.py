"""
The notification server's other commands: URL, FND, SND, IMS, and
commands pipelined in one TCP segment.  PNG/QNG, OUT and unknown commands
are in tests/transcripts/ (login-msnp2/8/12.txt, errors.txt).
"""

import pytest
import pytest_twisted

from msnclient import connect
from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"


@pytest.mark.parametrize("dialect,site", [("MSNP2", ""), ("MSNP5", " 2"), ("MSNP7", " 2")])
@pytest_twisted.inlineCallbacks
def test_url(server, dialect, site):
    """
    URL answers with a path relative to the operator's web address, and
    the Passport site id from MSNP3; an unknown service is 201.
    """
    alice = yield sign_in(server, ALICE, dialect)
    base = server.config.web_base
    alice.send("URL 5 INBOX")
    yield alice.expect_line(f"URL 5 /inbox {base}{site}")
    alice.send("URL 6 COMPOSE bob@example.com")
    yield alice.expect_line(f"URL 6 /compose {base}{site}")
    alice.send("URL 7 NOSUCHTHING")
    yield alice.expect_line("201 7")
    alice.send("URL 8")
    yield alice.expect_line("201 8")
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_fnd_is_disabled(server, dialect):
    """
    The member directory is switched off: FND is 502, as the service
    answered it from April 2003 on.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("FND 5 fname=Bob lname=Smith city=* state=* country=US")
    yield alice.expect_line("502 5")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_snd_is_disabled_and_retired(server):
    """
    SND (invite a non-user by e-mail, MSNP2-4) is 502: there is no mail
    relay; without a target that is an address or an FND index it is 503.
    From MSNP5 on the command does not exist (200).
    """
    alice = yield sign_in(server, ALICE, "MSNP2")
    alice.send("SND 5 friend@example.net")
    yield alice.expect_line("502 5")
    alice.send("SND 6")
    yield alice.expect_line("503 6")
    alice.send("SND 7 friend")
    yield alice.expect_line("503 7")
    alice.send("SND 8 2")
    yield alice.expect_line("502 8")
    yield sign_out(alice)
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("SND 6 friend@example.net 0x0409 MSMSGS")
    yield alice.expect_line("200 6")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_ims(server):
    """
    IMS (MSNP3+) answers IMS t 0 ON|OFF; anything else is 201; MSNP2 does
    not know it (200).
    """
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("IMS 5 OFF")
    yield alice.expect_line("IMS 5 0 OFF")
    alice.send("IMS 6 ON")
    yield alice.expect_line("IMS 6 0 ON")
    alice.send("IMS 7 MAYBE")
    yield alice.expect_line("201 7")
    yield sign_out(alice)
    alice = yield sign_in(server, ALICE, "MSNP2")
    alice.send("IMS 8 ON")
    yield alice.expect_line("200 8")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_pipelined_commands_answered_in_order(server):
    """
    Several commands in one TCP segment, some of them store writes, are
    answered in the order they were sent, each with its own TrID; a bare
    LF ends a line as well as CRLF.
    """
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send_raw(
        b"ADD 5 FL bob@example.com Bob\r\n"
        b"PNG\r\n"
        b"GTC 6 N\n"
        b"LST 7 FL\r\n"
        b"XYZ 8\r\n"
        b"ADG 9 Friends 0\r\n"
        b"REA 10 alice@example.com Al\r\n"
        b"GTC 11 N\r\n"
        b"SYN 12 5\r\n"
        b"URL 13 INBOX\r\n"
    )
    yield expect_lines(
        alice,
        [
            "ADD 5 FL 2 bob@example.com Bob 0",
            "QNG",
            "GTC 6 3 N",
            "LST 7 FL 3 1 1 bob@example.com Bob 0",
            "200 8",
            "ADG 9 4 Friends 1 0",
            "REA 10 5 alice@example.com Al",
            "218 11",
            "SYN 12 5",
        ],
    )
    yield alice.expect(r"URL 13 /inbox \S+ 2")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_pipelined_login_in_one_segment(server):
    """
    A client that sends VER, INF and its first USR in one write gets the
    three answers in order.
    """
    client = yield connect(server.notification_port)
    client.send_raw(b"VER 1 MSNP5 MSNP4 CVR0\r\nINF 2\r\nUSR 3 MD5 I alice@example.com\r\n")
    yield expect_lines(client, ["VER 1 MSNP5", "INF 2 MD5"])
    yield client.expect(r"USR 3 MD5 S \S+")
    yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_trid_range(server):
    """
    TrIDs up to 2**32-1 are echoed; a larger or non-numeric one is a syntax
    error (200, with no TrID to echo).
    """
    alice = yield sign_in(server, ALICE, "MSNP2")
    alice.send("SYN 4294967295 1")
    yield alice.expect_line("SYN 4294967295 1")
    alice.send("SYN 0 1")
    yield alice.expect_line("SYN 0 1")
    alice.send("SYN 4294967296 1")
    yield alice.expect_line("200")
    alice.send("SYN x 1")
    yield alice.expect_line("200")
    alice.send("PNG")
    yield alice.expect_line("QNG")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_handle_length_limit(server):
    """
    A contact handle over 129 bytes is 201 in ADD; at login it is 911 and
    a close.
    """
    alice = yield sign_in(server, ALICE, "MSNP5")
    long_handle = "a" * 118 + "@example.com"
    assert len(long_handle) == 130
    alice.send(f"ADD 5 FL {long_handle} Long")
    yield alice.expect_line("201 5")
    yield sign_out(alice)
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP5")
    yield client.expect_line("VER 1 MSNP5")
    client.send(f"USR 2 MD5 I {long_handle}")
    yield client.expect_line("911 2")
    yield client.expect_close()
