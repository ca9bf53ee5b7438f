"""
msnp-admin against a running server's admin API (who, kick, lock,
unlock, notice), and user del / user passwd on an online account taking
effect at once; msnp-admin runs in a thread, as it blocks, while the
server answers from the reactor.
"""

import io
import socket

import pytest_twisted
from twisted.internet import threads

from adminhttp import admin_server, token_admin_server  # noqa: F401 (fixtures)
from msnclient import attempt_login, login
from msnp import admin
from ns_steps import sign_out


def run_admin(*argv):
    """
    msnp-admin in a thread; fires with (exit status, stdout, stderr).
    """

    def run():
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(list(argv), out, err)
        return status, out.getvalue(), err.getvalue()

    return threads.deferToThread(run)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest_twisted.inlineCallbacks
def test_who_kick_lock_unlock(admin_server):
    """
    who lists the signed-in accounts one a line (tab-separated); kick ends
    a session (the client gets OUT); lock ends it and refuses logins with
    911; unlock lets it in again; notice reaches every client.
    """
    url = admin_server.admin_url
    status, out, err = yield run_admin("who", "--server", url)
    assert (status, out, err) == (0, "", "msnp-admin: nobody is signed in\n")
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
    status, out, err = yield run_admin("--server", url, "who")
    assert status == 0 and err == ""
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(fields[0], fields[2]) for fields in lines] == [("alice@example.com", "MSNP7"), ("bob@example.com", "MSNP5")]
    assert all(len(fields) == 7 and fields[4] == "127.0.0.1" for fields in lines)

    status, out, _ = yield run_admin("--server", url, "notice", "10")
    assert (status, out) == (0, "maintenance notice (10 min) sent to 2 sessions\n")
    for client in (alice, bob):
        notice = yield client.next()
        assert b"Arg1: 10" in notice.payload

    assert (yield run_admin("--server", url, "kick", "Bob@Example.com")) == (0, "kicked bob@example.com (1 session ended)\n", "")
    yield bob.expect_line("OUT OTH")
    yield bob.expect_close()

    assert (yield run_admin("--server", url, "lock", "alice@example.com")) == (0, "locked alice@example.com (1 session ended)\n", "")
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    refused = yield attempt_login(admin_server.notification_port, "alice@example.com", "pw-alice")
    yield refused.expect_line("911 3")
    yield refused.expect_close()
    assert (yield run_admin("--server", url, "unlock", "alice@example.com")) == (0, "unlocked alice@example.com (0 sessions ended)\n", "")
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice")
    yield sign_out(alice)

    status, out, err = yield run_admin("--server", url, "kick", "nobody@example.com")
    assert (status, out, err) == (1, "", "msnp-admin: no such account: nobody@example.com\n")


@pytest_twisted.inlineCallbacks
def test_user_del_and_passwd_act_on_an_online_account_at_once(admin_server):
    """
    user del of an online account goes through the server serving that
    database: the session ends and an online contact sees FLN and the REM
    at once; user passwd ends the account's session, and only the new
    password logs in.
    """
    url, db = admin_server.admin_url, admin_server.db_path
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL (\d+) alice@example\.com Alice 0")
    yield alice.expect(r"ADD 0 RL \d+ bob@example\.com Bob")
    bob.send("CHG 6 NLN")
    yield bob.expect_line("CHG 6 NLN")
    alice.send("CHG 6 NLN")
    yield alice.expect_line("CHG 6 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")

    status, out, err = yield run_admin("--db", db, "--server", url, "user", "passwd", "alice@example.com", "--password", "pw-new")
    assert (status, out, err) == (0, "password changed for alice@example.com; 1 session ended\n", "")
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    yield bob.expect_line("FLN alice@example.com")
    old = yield attempt_login(admin_server.notification_port, "alice@example.com", "pw-alice")
    yield old.expect_line("911 3")
    yield old.expect_close()
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-new")
    alice.send("CHG 5 NLN")
    yield alice.expect_line("CHG 5 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")

    status, out, err = yield run_admin("user", "del", "alice@example.com", "--db", db, "--server", url)
    assert (status, out, err) == (0, "deleted alice@example.com; 1 session ended\n", "")
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    yield bob.expect_line("FLN alice@example.com")
    yield bob.expect(r"REM 0 FL \d+ alice@example\.com")
    status, out, err = yield run_admin("--db", db, "user", "list")
    assert "alice@example.com" not in out
    yield sign_out(bob)


@pytest_twisted.inlineCallbacks
def test_another_database_is_changed_directly(admin_server, tmp_path):
    """
    A server answering at --server but serving another database is left
    alone: the change is made in the file named by --db.
    """
    other = str(tmp_path / "other.sqlite")
    assert (yield run_admin("--db", other, "--create", "user", "add", "zed@example.com", "--password", "pw"))[0] == 0
    status, out, err = yield run_admin("--db", other, "--server", admin_server.admin_url, "user", "del", "zed@example.com")
    assert (status, out, err) == (0, "deleted zed@example.com\n", "")


@pytest_twisted.inlineCallbacks
def test_token_and_unreachable_server(token_admin_server, tmp_path):
    """
    Without --token-file a server that wants a token is refused on one
    line; with it the command works.  Nothing answering is one line and a
    non-zero exit.
    """
    url = token_admin_server.admin_url
    status, out, err = yield run_admin("who", "--server", url)
    assert (status, out) == (1, "") and err == f"msnp-admin: {url} wants the admin token (--token-file)\n"
    token_file = tmp_path / "admin.token"
    token_file.write_text(token_admin_server.token + "\n")
    status, out, err = yield run_admin("who", "--server", url, "--token-file", str(token_file))
    assert (status, err) == (0, "msnp-admin: nobody is signed in\n")
    nowhere = f"http://127.0.0.1:{free_port()}"
    status, out, err = yield run_admin("who", "--server", nowhere)
    assert (status, out) == (1, "") and err == f"msnp-admin: no admin API answered at {nowhere}: Connection refused\n"
