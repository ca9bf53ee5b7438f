"""
The Digest verifier the store keeps for RVP: written by create_account and
set_password, added to databases made before it existed, and named by
`msnp-admin digest missing` when an account lacks one.
"""

import hashlib
import io
import sqlite3

from msnp import admin
from msnp.store.records import digest_username_forms
from msnp.store.sqlite import Database


def ha1(username, realm, password):
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def entries(verifier):
    return dict(entry.rsplit("=", 1) for entry in verifier.split())


def test_create_and_set_password_write_the_verifier(tmp_path):
    """
    Every username form a Digest client may type gets its H(A1) with the
    account's domain as realm; a new password replaces them all.
    """
    db = Database(str(tmp_path / "v.sqlite"))
    db.create_account("Alice@Example.com", "pw")
    verifier = entries(db.get_account("alice@example.com").digest_verifier)
    assert set(verifier) == {
        "alice@example.com", "alice", "example\\alice", "EXAMPLE\\alice", "example.com\\alice", "EXAMPLE.COM\\alice",
    }
    assert verifier["EXAMPLE\\alice"] == ha1("EXAMPLE\\alice", "example.com", "pw")
    db.set_password("alice@example.com", "new", keep_md5=False)
    account = db.get_account("alice@example.com")
    assert entries(account.digest_verifier)["alice"] == ha1("alice", "example.com", "new")
    assert account.md5_password == ""
    db.close()


def test_old_database_gains_the_column_and_admin_names_accounts_without_one(tmp_path):
    """
    A database from before the column is opened without error; its
    accounts have no verifier until their password is set again, and
    `msnp-admin digest missing` lists them (saying when no MD5
    equivalent can stand in either).
    """
    path = tmp_path / "old.sqlite"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, handle TEXT NOT NULL UNIQUE, friendly_name TEXT NOT NULL,"
        " md5_password TEXT NOT NULL, password_hash TEXT NOT NULL, list_version INTEGER NOT NULL DEFAULT 1,"
        " gtc TEXT NOT NULL DEFAULT 'A', blp TEXT NOT NULL DEFAULT 'AL');"
        "INSERT INTO accounts (handle, friendly_name, md5_password, password_hash) VALUES ('old@example.com', 'o', 'pw', 'x');"
        "INSERT INTO accounts (handle, friendly_name, md5_password, password_hash) VALUES ('bare@example.com', 'b', '', 'x');"
    )
    raw.commit()
    raw.close()
    db = Database(str(path))
    db.create_account("new@example.com", "pw")
    assert db.get_account("old@example.com").digest_verifier == ""
    db.close()
    out, err = io.StringIO(), io.StringIO()
    assert admin.main(["--db", str(path), "digest", "missing"], out, err) == 0
    assert out.getvalue() == "bare@example.com\t(no MD5 equivalent either)\nold@example.com\n"
    out = io.StringIO()
    admin.main(["--db", str(path), "user", "passwd", "old@example.com", "--password", "pw2"], out, err)
    out = io.StringIO()
    admin.main(["--db", str(path), "digest", "missing"], out, err)
    assert out.getvalue() == "bare@example.com\t(no MD5 equivalent either)\n"


def test_username_forms_of_a_single_label_domain():
    """
    A domain without dots gives no duplicate forms.
    """
    assert digest_username_forms("Bob@Corp") == ["bob@corp", "bob", "corp\\bob", "CORP\\bob"]

