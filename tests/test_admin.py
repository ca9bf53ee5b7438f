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
from msnp.store.sqlite import Database
from ns_steps import sign_out
from msnclient import attempt_login, login


def run_admin(db, *argv):
    """
    Run msnp-admin in-process on C{db} (made if missing); returns (exit
    status, stdout, stderr).
    """
    out, err = io.StringIO(), io.StringIO()
    status = admin.main(["--db", str(db), "--create", *argv], out, err)
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
    command = [sys.executable, "-m", "msnp.admin", "--db", db, "--create", "user", "add", "carol@example.com", "--password", "pw"]
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


def test_password_read_when_left_out(tmp_path):
    """
    Without --password the password is read (from standard input when it
    is not a terminal), so it need not appear on the command line; --db
    may also follow the action.
    """
    db = tmp_path / "admin.sqlite"
    out, err = io.StringIO(), io.StringIO()
    status = admin.main(["user", "add", "alice@example.com", "--db", str(db), "--create"], out, err, io.StringIO("from-stdin\n"))
    assert (status, out.getvalue(), err.getvalue()) == (0, "added alice@example.com\n", "")
    database = Database(str(db))
    try:
        assert database.get_account("alice@example.com").md5_password == "from-stdin"
    finally:
        database.close()
    status = admin.main(["--db", str(db), "user", "passwd", "alice@example.com"], io.StringIO(), err, io.StringIO("\n"))
    assert status != 0 and err.getvalue() == "msnp-admin: the password must not be empty\n"


def test_empty_list_says_so_on_stderr(tmp_path):
    assert run_admin(tmp_path / "new.sqlite", "user", "list") == (0, "", f"msnp-admin: no accounts in {tmp_path / 'new.sqlite'}\n")


def stored_md5(db, handle):
    database = Database(str(db))
    try:
        return database.get_account(handle).md5_password
    finally:
        database.close()


def test_no_md5_stores_only_the_slow_hash(tmp_path):
    """
    add/passwd --no-md5 leave the MD5 password-equivalent empty and keep
    the scrypt hash; passwd without it stores the equivalent again;
    md5 list names the accounts that keep one.
    """
    db = tmp_path / "admin.sqlite"
    assert run_admin(db, "user", "add", "alice@example.com", "--password", "pw", "--no-md5") == (
        0,
        "added alice@example.com (no MD5 login)\n",
        "",
    )
    assert run_admin(db, "user", "add", "bob@example.com", "--password", "pw-bob")[0] == 0
    assert stored_md5(db, "alice@example.com") == ""
    assert run_admin(db, "md5", "list") == (0, "bob@example.com\n", "")
    assert run_admin(db, "user", "passwd", "bob@example.com", "--password", "pw-new", "--no-md5") == (
        0,
        "password changed for bob@example.com (no MD5 login)\n",
        "",
    )
    assert run_admin(db, "md5", "list") == (0, "", "")
    assert run_admin(db, "user", "passwd", "alice@example.com", "--password", "pw-md5")[0] == 0
    assert stored_md5(db, "alice@example.com") == "pw-md5"
    database = Database(str(db))
    try:
        from msnp.store.records import verify_password_hash

        assert verify_password_hash("pw-new", database.get_account("bob@example.com").password_hash)
    finally:
        database.close()


def test_md5_purge_drops_every_equivalent_from_the_files(tmp_path):
    """
    md5 purge empties every account's MD5 password-equivalent in one go,
    says how many it dropped, and leaves none of them in the database
    files; a second purge drops nothing.
    """
    db = tmp_path / "admin.sqlite"
    for number in range(3):
        assert run_admin(db, "user", "add", f"user{number}@example.com", "--password", f"PLAINTEXT-{number}-SECRET")[0] == 0
    assert run_admin(db, "md5", "purge") == (0, "dropped the MD5 password-equivalent of 3 accounts\n", "")
    assert run_admin(db, "md5", "list") == (0, "", "")
    for path in tmp_path.iterdir():
        assert b"PLAINTEXT-" not in path.read_bytes(), path.name
    assert run_admin(db, "md5", "purge") == (0, "dropped the MD5 password-equivalent of 0 accounts\n", "")
    assert [line.split("\t")[0] for line in run_admin(db, "user", "list")[1].splitlines()] == [
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
    ]


@pytest_twisted.inlineCallbacks
def test_md5_login_without_a_stored_equivalent_is_911(server):
    """
    With MD5 enabled, an account whose MD5 equivalent was never stored or
    was purged gets the same challenge and the same 911 and close as a
    wrong password, whatever it answers (the answer for an empty password
    included).
    """
    assert run_admin(server.db_path, "user", "add", "erin@example.com", "--password", "pw-erin", "--no-md5")[0] == 0
    assert run_admin(server.db_path, "md5", "purge")[0] == 0
    for handle, password in (
        ("erin@example.com", "pw-erin"),
        ("erin@example.com", ""),
        ("alice@example.com", "pw-alice"),
        ("alice@example.com", ""),
    ):
        client = yield attempt_login(server.notification_port, handle, password)
        yield client.expect_line("911 3")
        yield client.expect_close()
    # Setting the password again brings MD5 login back.
    assert run_admin(server.db_path, "user", "passwd", "alice@example.com", "--password", "pw-alice")[0] == 0
    alice = yield login(server.notification_port, "alice@example.com", "pw-alice")
    yield sign_out(alice)


def test_missing_database_is_refused_unless_create(tmp_path):
    """
    Against a database file that does not exist, msnp-admin says so on one
    line and exits non-zero, leaving no file behind; --create (before or
    after the action) makes a new one.
    """
    db = tmp_path / "typo.sqlite"
    out, err = io.StringIO(), io.StringIO()
    status = admin.main(["--db", str(db), "user", "list"], out, err)
    assert (status, out.getvalue(), err.getvalue()) == (1, "", f"msnp-admin: no database at {db} (--create makes a new one)\n")
    assert not db.exists()
    status = admin.main(["user", "add", "alice@example.com", "--password", "pw", "--db", str(db), "--create"], out, err)
    assert status == 0 and db.exists()


def test_version_prints_msnps_version(capsys):
    """
    --version prints msnp's version and exits 0.
    """
    import msnp

    with pytest.raises(SystemExit) as exit_status:
        admin.main(["--version"])
    assert exit_status.value.code == 0
    assert capsys.readouterr().out == f"msnp {msnp.__version__}\n"
