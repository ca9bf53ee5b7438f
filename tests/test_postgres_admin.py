"""
The operator's path to PostgreSQL: msnp-admin --postgres manages accounts
there, `msnp-admin migrate --from msnp.sqlite --postgres …` moves a
single-process installation over with every account, list, group, setting
and list version (all or nothing), and `twistd -n msnp --postgres …` serves
the migrated accounts.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys

from msnp import admin
from msnp.store.postgres import PostgresDatabase
from msnp.store.sqlite import Database
from test_twistd import BIN, LineClient, free_port, wait_for_port


def run_admin(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = admin.main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


def test_admin_manages_accounts_in_postgres(postgres_database):
    """
    user add/passwd/list/del and md5 list/purge, with --postgres before or
    after the action.
    """
    db = postgres_database
    assert run_admin("--postgres", db, "user", "add", "Alice@Example.com", "--password", "pw", "--name", "Alice A.") == (
        0,
        "added alice@example.com\n",
        "",
    )
    assert run_admin("user", "add", "bob@example.com", "--password", "pw2", "--no-md5", "--postgres", db)[0] == 0
    assert run_admin("--postgres", db, "user", "list") == (0, "alice@example.com\tAlice A.\nbob@example.com\tbob@example.com\n", "")
    assert run_admin("--postgres", db, "user", "add", "alice@example.com", "--password", "x")[0] == 1
    assert run_admin("--postgres", db, "md5", "list") == (0, "alice@example.com\n", "")
    assert run_admin("--postgres", db, "user", "passwd", "ALICE@example.com", "--password", "new")[0] == 0
    database = PostgresDatabase.open(db)
    try:
        assert database.get_account("alice@example.com").md5_password == "new"
    finally:
        database.close()
    assert run_admin("--postgres", db, "md5", "purge") == (0, "dropped the MD5 password-equivalent of 1 account\n", "")
    assert run_admin("--postgres", db, "user", "del", "bob@example.com") == (0, "deleted bob@example.com\n", "")
    assert run_admin("--postgres", db, "user", "del", "bob@example.com")[0] == 1
    assert run_admin("--postgres", db, "user", "list") == (0, "alice@example.com\tAlice A.\n", "")


def test_admin_refusals(tmp_path, postgres_cluster):
    status, _, err = run_admin("--db", str(tmp_path / "x.sqlite"), "--postgres", "dbname=x", "user", "list")
    assert status == 2 and "give one" in err
    # Nothing listens on port 1 of the loopback address.
    status, _, err = run_admin("--postgres", "host=127.0.0.1 port=1 user=msnp dbname=x", "user", "list")
    assert status == 1 and err.startswith("msnp-admin: cannot open the PostgreSQL database: ")
    status, _, err = run_admin("migrate", "--from", str(tmp_path / "missing.sqlite"), "--postgres", "dbname=x")
    assert status == 1 and "no such file" in err
    assert not (tmp_path / "missing.sqlite").exists()
    status, _, err = run_admin("migrate", "--from", str(tmp_path / "x.sqlite"))
    assert status == 2 and "needs --postgres" in err


def _populated_sqlite(path) -> None:
    """
    Accounts with something in every part of their state: lists in an
    order that is not alphabetical, groups and memberships, privacy,
    properties, a name only some databases hold as is, an account without
    an MD5 password, and list versions moved on by every edit.
    """
    db = Database(str(path))
    try:
        for handle, name in (("zed@example.com", "Zed"), ("alice@example.com", "Alice"), ("bob@example.com", "Bob")):
            db.create_account(handle, "pw-" + name, name)
        db.create_account("nomd5@example.com", "pw-nomd5", keep_md5=False)
        db.add_group("alice@example.com", 1, "Work%20mates")
        db.add_group("alice@example.com", 3, "Odd\x00\\name")
        db.add_to_list("alice@example.com", "FL", "zed@example.com", "Zed Z.", 1)
        db.add_to_list("alice@example.com", "FL", "bob@example.com", "Bobby", 0)
        db.add_to_group("alice@example.com", "bob@example.com", 3)
        db.add_to_list("alice@example.com", "AL", "zed@example.com", "Zed Z.")
        db.add_to_list("alice@example.com", "BL", "nomd5@example.com", "No")
        db.add_to_list("bob@example.com", "FL", "alice@example.com", "Al")
        db.set_privacy("alice@example.com", "blp", "BL")
        db.set_privacy("alice@example.com", "gtc", "N")
        db.set_property("alice@example.com", "PHH", "1%20555")
        db.set_friendly_name("bob@example.com", "Bob\x00B")
    finally:
        db.close()


def test_migrate_moves_everything(tmp_path, postgres_database):
    """
    Every account comes over with both password forms, friendly name,
    lists in their order, groups, memberships, GTC/BLP, properties and list
    version; a second run finds the accounts there and changes nothing.
    """
    source = tmp_path / "msnp.sqlite"
    _populated_sqlite(source)
    assert run_admin("migrate", "--from", str(source), "--postgres", postgres_database) == (
        0,
        f"migrated 4 accounts from {source}\n",
        "",
    )
    sqlite = Database(str(source))
    postgres = PostgresDatabase.open(postgres_database)
    try:
        assert postgres.list_accounts() == sqlite.list_accounts()
        for account in sqlite.list_accounts():
            moved, original = postgres.load_user(account.handle), sqlite.load_user(account.handle)
            assert moved == original
            for lst in ("FL", "AL", "BL", "RL"):
                assert list(moved.lists[lst]) == list(original.lists[lst])
        alice = postgres.load_user("alice@example.com")
        assert alice.version == 12 and alice.groups[3] == "Odd\x00\\name" and alice.blp == "BL"
        # The next edit continues from the migrated version.
        assert postgres.set_property("alice@example.com", "PHW", "2") == 13
        status, _, err = run_admin("migrate", "--from", str(source), "--postgres", postgres_database)
        assert status == 1 and "nothing was migrated" in err
        assert postgres.load_user("zed@example.com") == sqlite.load_user("zed@example.com")
        assert len(postgres.list_accounts()) == 4
    finally:
        postgres.close()
        sqlite.close()


def test_twistd_serves_migrated_accounts_from_postgres(tmp_path, postgres_database, redis_server):
    """
    twistd -n msnp --postgres (with the Redis directory, as a cluster node
    runs): a migrated account logs in with its MD5 password and gets its
    lists; a wrong connection string stops the start with one line, not a
    traceback.
    """
    source = tmp_path / "msnp.sqlite"
    _populated_sqlite(source)
    assert run_admin("migrate", "--from", str(source), "--postgres", postgres_database)[0] == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    twistd = os.path.join(BIN, "twistd")
    refused = subprocess.run(
        [twistd, "-n", "--pidfile=", "msnp", "--postgres", "host=127.0.0.1 port=1 user=msnp dbname=x"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0
    assert "--postgres: cannot use the database" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr + refused.stdout
    ds, ns, sb = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            twistd, "-n", "--pidfile=", "--logfile=" + str(tmp_path / "twistd.log"), "msnp",
            "--dispatch", f"tcp:{ds}:interface=127.0.0.1",
            "--notification", f"tcp:{ns}:interface=127.0.0.1",
            "--switchboard", f"tcp:{sb}:interface=127.0.0.1",
            "--postgres", postgres_database,
            "--redis", redis_server.url, "--node-id", "ns-a", "--roles", "notification,switchboard", "--admin", "none",
        ],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(ns, process)
        client = LineClient(ns)
        client.send("VER 1 MSNP7")
        assert client.read_line() == "VER 1 MSNP7"
        client.send("USR 2 MD5 I alice@example.com")
        challenge = client.read_line().split(" ")[4]
        client.send("USR 3 MD5 S " + hashlib.md5((challenge + "pw-Alice").encode()).hexdigest())
        assert client.read_line() == "USR 3 OK alice@example.com Alice 1"
        profile = client.read_line()
        assert profile.startswith("MSG Hotmail Hotmail ")
        length = int(profile.split(" ")[-1])
        while len(client.buffer) < length:
            client.buffer += client.sock.recv(65536)
        client.buffer = client.buffer[length:]
        client.send("SYN 4 12")
        assert client.read_line() == "SYN 4 12"
        client.send("LST 5 FL")
        lines = [client.read_line() for _ in range(2)]
        assert lines == [
            "LST 5 FL 12 1 2 zed@example.com Zed%20Z. 1",
            "LST 5 FL 12 2 2 bob@example.com Bobby 0,3",
        ]
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode in (0, -signal.SIGTERM)
    log = (tmp_path / "twistd.log").read_text()
    assert "alice@example.com logged in" in log
    start = next(line for line in log.splitlines() if " listening: " in line)
    assert "dispatch on" not in start and f"notification on tcp:{ns}:interface=127.0.0.1" in start
