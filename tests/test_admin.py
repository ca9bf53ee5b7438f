"""
msnp-admin: creating, changing, deleting and listing accounts, and the
one-line refusals with a non-zero exit.
"""

import io
import os
import subprocess
import sys

import pytest
import pytest_twisted

from msnp import admin
from msnp.store import Database
from ns_steps import sign_out
from msnclient import login


def run_admin(db, *argv):
    """
    Run msnp-admin in-process; returns (exit status, stdout, stderr).
    """
    out, err = io.StringIO(), io.StringIO()
    status = admin.main(["--db", str(db), *argv], out, err)
    return status, out.getvalue(), err.getvalue()


def test_add_passwd_list_del(tmp_path):
    """
    add creates an account (handle stored in lower case, name defaulting
    to the handle), passwd changes the password, list shows handle and
    name, del removes it.
    """
    db = tmp_path / "admin.sqlite"
    assert run_admin(db, "user", "add", "Alice@Example.com", "--password", "pw", "--name", "Alice A.") == (
        0,
        "added alice@example.com\n",
        "",
    )
    assert run_admin(db, "user", "add", "bob@example.com", "--password", "pw2")[0] == 0
    assert run_admin(db, "user", "list") == (0, "alice@example.com\tAlice A.\nbob@example.com\tbob@example.com\n", "")
    assert run_admin(db, "user", "passwd", "ALICE@example.com", "--password", "new")[0] == 0
    database = Database(str(db))
    try:
        assert database.get_account("alice@example.com").md5_password == "new"
    finally:
        database.close()
    assert run_admin(db, "user", "del", "bob@example.com") == (0, "deleted bob@example.com\n", "")
    assert run_admin(db, "user", "list") == (0, "alice@example.com\tAlice A.\n", "")


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "add", "no-at-sign.example.com", "--password", "pw"],
        ["user", "add", "a" * 120 + "@example.com", "--password", "pw"],
        ["user", "add", "nodomain@", "--password", "pw"],
        ["user", "add", "two words@example.com", "--password", "pw"],
        ["user", "add", "alice@example.com", "--password", ""],
        ["user", "add", "alice@example.com", "--password", "pw"],
        ["user", "passwd", "nobody@example.com", "--password", "pw"],
        ["user", "del", "nobody@example.com"],
    ],
)
def test_refusals_are_one_line_with_nonzero_exit(tmp_path, argv):
    """
    A handle without @, longer than 129 bytes or otherwise malformed, an
    empty password, a duplicate account and an unknown account are refused
    with one line on stderr, nothing on stdout, and a non-zero exit; the
    database is left as it was.
    """
    db = tmp_path / "admin.sqlite"
    assert run_admin(db, "user", "add", "alice@example.com", "--password", "pw")[0] == 0
    status, out, err = run_admin(db, *argv)
    assert status != 0
    assert out == ""
    assert err.startswith("msnp-admin: ") and err.endswith("\n") and err.count("\n") == 1
    assert run_admin(db, "user", "list")[1] == "alice@example.com\talice@example.com\n"


def test_subprocess_exit_status(tmp_path):
    """
    Run as a program: success exits 0, a duplicate account exits non-zero
    with one line on stderr.
    """
    db = str(tmp_path / "admin.sqlite")
    command = [sys.executable, "-m", "msnp.admin", "--db", db, "user", "add", "carol@example.com", "--password", "pw"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert (first.returncode, first.stdout, first.stderr) == (0, "added carol@example.com\n", "")
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert second.returncode != 0
    assert second.stdout == ""
    assert second.stderr == "msnp-admin: account already exists: carol@example.com\n"


@pytest_twisted.inlineCallbacks
def test_account_added_while_running_can_log_in(server):
    """
    An account created with msnp-admin on the running server's database
    logs in at once; after passwd only the new password works.
    """
    status, _, _ = run_admin(server.db_path, "user", "add", "erin@example.com", "--password", "pw-erin", "--name", "Erin")
    assert status == 0
    erin = yield login(server.notification_port, "erin@example.com", "pw-erin", "MSNP5")
    yield sign_out(erin)
    assert run_admin(server.db_path, "user", "passwd", "erin@example.com", "--password", "pw-new")[0] == 0
    erin = yield login(server.notification_port, "erin@example.com", "pw-new", "MSNP2")
    yield sign_out(erin)


def test_del_removes_the_account_from_other_lists(tmp_path):
    """
    Deleting an account takes it off everyone's lists and groups and
    raises those users' list versions, so their next SYN is a full one.
    """
    db = tmp_path / "admin.sqlite"
    for handle in ("alice@example.com", "bob@example.com", "carol@example.com"):
        assert run_admin(db, "user", "add", handle, "--password", "pw")[0] == 0
    database = Database(str(db))
    try:
        database.add_to_list("alice@example.com", "FL", "bob@example.com", "Bob", 0)
        database.add_to_list("alice@example.com", "AL", "bob@example.com", "Bob")
        database.add_to_list("carol@example.com", "FL", "alice@example.com", "Alice")
        alice_before = database.load_user("alice@example.com").version
        carol_before = database.load_user("carol@example.com").version
    finally:
        database.close()
    assert run_admin(db, "user", "del", "bob@example.com")[0] == 0
    database = Database(str(db))
    try:
        alice = database.load_user("alice@example.com")
        assert alice.lists == {"FL": {}, "AL": {}, "BL": {}, "RL": {"carol@example.com": "carol@example.com"}}
        assert alice.memberships == {}
        assert alice.version == alice_before + 1
        assert database.load_user("carol@example.com").version == carol_before
    finally:
        database.close()


def test_name_too_long_is_refused(tmp_path):
    """
    A friendly name longer than 387 bytes once URL-encoded is refused.
    """
    status, out, err = run_admin(tmp_path / "a.sqlite", "user", "add", "a@example.com", "--password", "pw", "--name", "é" * 100)
    assert status != 0 and out == "" and err.count("\n") == 1
