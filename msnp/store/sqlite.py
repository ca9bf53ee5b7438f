"""
Durable accounts and contact lists.

L{Database} is the synchronous SQLite layer; it is only ever used from one
thread.  L{ThreadedStore} runs it on a single dedicated thread and hands out
Deferreds, so the reactor never waits for the disk and every write is
committed before its Deferred fires (and so before the reply that confirms
it is sent).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Callable, Optional, TypeVar

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from msnp.store.interface import IStore
from msnp.store.records import (
    DEFAULT_GROUP_NAME,
    LISTS,
    Account,
    AccountExists,
    GroupRemoval,
    ListChange,
    NoSuchAccount,
    GroupIdTaken,
    MailboxFull,
    OfflineMessage,
    UnknownAccount,
    UserState,
    canonical_handle,
    digest_verifier,
    hash_password,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    friendly_name TEXT NOT NULL,
    md5_password TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    digest_verifier TEXT NOT NULL DEFAULT '',
    list_version INTEGER NOT NULL DEFAULT 1,
    gtc TEXT NOT NULL DEFAULT 'A',
    blp TEXT NOT NULL DEFAULT 'AL',
    locked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS properties (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE TABLE IF NOT EXISTS list_entries (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    list TEXT NOT NULL,
    contact TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, list, contact)
);
CREATE INDEX IF NOT EXISTS list_entries_by_contact ON list_entries (contact, list);
CREATE TABLE IF NOT EXISTS groups (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, group_id)
);
CREATE TABLE IF NOT EXISTS group_members (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    group_id INTEGER NOT NULL,
    PRIMARY KEY (account_id, contact, group_id)
);
CREATE TABLE IF NOT EXISTS offline_messages (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    received_at REAL NOT NULL,
    run_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (account_id, message_id)
);
"""


# An online user's lists, groups, group memberships and phone properties as
# one row of JSON arrays (see Database.load_user).
_USER_STATE_QUERY = """
SELECT
    (SELECT json_group_array(json_array(rowid, list, contact, name)) FROM list_entries WHERE account_id = ?1),
    (SELECT json_group_array(json_array(group_id, name)) FROM groups WHERE account_id = ?1),
    (SELECT json_group_array(json_array(contact, group_id)) FROM group_members WHERE account_id = ?1),
    (SELECT json_group_array(json_array(key, value)) FROM properties WHERE account_id = ?1)
"""


class Database:
    """
    The SQLite schema and every query.  Not thread-safe: one thread only.
    """

    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()
        # Accounts that have a phone property.  Most contact lists hold
        # none, and then SYN needs no property query (see
        # ThreadedStore.contact_properties, which reads this from the
        # reactor thread: only single set operations, atomic under the GIL).
        self.handles_with_properties: set[str] = {
            handle
            for (handle,) in self._db.execute(
                "SELECT handle FROM accounts WHERE id IN (SELECT account_id FROM properties)"
            )
        }

    def close(self) -> None:
        self._db.close()

    def _add_missing_columns(self) -> None:
        # Databases made before accounts could be locked.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(accounts)")}
        if "locked" not in columns:
            self._db.execute("ALTER TABLE accounts ADD COLUMN locked INTEGER NOT NULL DEFAULT 0")
        # Databases made before the store kept a Digest verifier (RVP).
        if "digest_verifier" not in columns:
            self._db.execute("ALTER TABLE accounts ADD COLUMN digest_verifier TEXT NOT NULL DEFAULT ''")

    def _transaction(self, work: Callable[[sqlite3.Connection], "T"]) -> "T":
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # Accounts

    def create_account(
        self, handle: str, password: str, friendly_name: Optional[str] = None, keep_md5: bool = True
    ) -> Account:
        """
        C{keep_md5} False stores only the slow hash: the account then cannot
        log in with MD5 (see protocol-notes/passwords.md).
        """
        handle = canonical_handle(handle)
        name = friendly_name if friendly_name is not None else handle
        account = Account(
            handle, name, password if keep_md5 else "", hash_password(password),
            digest_verifier=digest_verifier(handle, password),
        )

        def work(db):
            try:
                cursor = db.execute(
                    "INSERT INTO accounts (handle, friendly_name, md5_password, password_hash, digest_verifier)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (handle, name, account.md5_password, account.password_hash, account.digest_verifier),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(handle)
            db.execute(
                "INSERT INTO groups (account_id, group_id, name) VALUES (?, 0, ?)",
                (cursor.lastrowid, DEFAULT_GROUP_NAME),
            )

        self._transaction(work)
        return account

    def set_password(self, handle: str, password: str, keep_md5: bool = True) -> None:
        handle = canonical_handle(handle)
        cursor = self._db.execute(
            "UPDATE accounts SET md5_password = ?, password_hash = ?, digest_verifier = ? WHERE handle = ?",
            (password if keep_md5 else "", hash_password(password), digest_verifier(handle, password), handle),
        )
        if cursor.rowcount == 0:
            raise NoSuchAccount(handle)

    def purge_md5_passwords(self) -> int:
        """
        Forget every account's MD5 password-equivalent (MD5 logins then
        fail for all); returns how many accounts had one.  Freed bytes are
        overwritten and the write-ahead log emptied where no reader holds
        it, so the plaintexts do not linger in the files.
        """
        previous = self._db.execute("PRAGMA secure_delete").fetchone()[0]
        self._db.execute("PRAGMA secure_delete=ON")
        try:
            purged = self._db.execute("UPDATE accounts SET md5_password = '' WHERE md5_password != ''").rowcount
        finally:
            self._db.execute(f"PRAGMA secure_delete={int(previous)}")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return purged

    def set_locked(self, handle: str, locked: bool) -> None:
        """
        Lock an account (every login refused like a wrong password) or
        unlock it.
        """
        cursor = self._db.execute(
            "UPDATE accounts SET locked = ? WHERE handle = ?", (int(locked), canonical_handle(handle))
        )
        if cursor.rowcount == 0:
            raise NoSuchAccount(handle)

    def delete_account(self, handle: str) -> dict[str, int]:
        """
        Delete an account and take it off every other list; returns the new
        list version of each account whose lists it was on.
        """
        handle = canonical_handle(handle)

        def work(db):
            row = db.execute("SELECT id FROM accounts WHERE handle = ?", (handle,)).fetchone()
            if row is None:
                raise NoSuchAccount(handle)
            # Others' lists keep no dangling entries for a deleted account,
            # and their list versions move on so their clients resynchronise.
            touched = db.execute(
                "SELECT id, handle FROM accounts WHERE id IN"
                " (SELECT DISTINCT account_id FROM list_entries WHERE contact = ? AND account_id != ?)",
                (handle, row[0]),
            ).fetchall()
            db.execute("DELETE FROM list_entries WHERE contact = ?", (handle,))
            db.execute("DELETE FROM group_members WHERE contact = ?", (handle,))
            db.execute("DELETE FROM accounts WHERE id = ?", (row[0],))
            return {owner: self._bump(db, owner_id) for owner_id, owner in touched}

        versions = self._transaction(work)
        self.handles_with_properties.discard(handle)
        return versions

    def list_accounts(self) -> list[Account]:
        rows = self._db.execute(
            "SELECT handle, friendly_name, md5_password, password_hash, locked, digest_verifier FROM accounts ORDER BY handle"
        ).fetchall()
        return [Account(*row) for row in rows]

    def get_account(self, handle: str) -> Optional[Account]:
        row = self._db.execute(
            "SELECT handle, friendly_name, md5_password, password_hash, locked, digest_verifier FROM accounts WHERE handle = ?",
            (canonical_handle(handle),),
        ).fetchone()
        return Account(*row) if row else None

    def load_user(self, handle: str, admit: Optional[Callable[[Account], bool]] = None) -> Optional[UserState]:
        """
        Everything an online user needs, in two statements.  With C{admit}
        (the login's password check), the account is checked in the same
        call and None comes back unless C{admit(account)} is true, so a
        login costs one trip to the store's thread, and a refused one
        loads no lists.
        """
        db = self._db
        row = db.execute(
            "SELECT id, handle, friendly_name, md5_password, password_hash, list_version, gtc, blp, locked"
            " FROM accounts WHERE handle = ?",
            (canonical_handle(handle),),
        ).fetchone()
        if row is None:
            return None
        account_id, handle, friendly_name, md5_password, password_hash, version, gtc, blp, locked = row
        if admit is not None and not admit(Account(handle, friendly_name, md5_password, password_hash, locked)):
            return None
        # One row for all of it: sqlite3 gives up and takes back the GIL
        # for every row it steps, and each take waits for the reactor
        # thread, so a row per list entry made logins queue here.
        entries, groups, members, properties = db.execute(_USER_STATE_QUERY, (account_id,)).fetchone()
        lists: dict[str, dict[str, str]] = {name: {} for name in LISTS}
        # The same handles and names recur in the lists of every online
        # contact: sharing one string for each keeps online users small.
        intern = sys.intern
        # In the order they were added (rowid), which LST numbering follows.
        for _, lst, contact, name in sorted(json.loads(entries)):
            lists[lst][intern(contact)] = intern(name)
        memberships: dict[str, set[int]] = {}
        for contact, group_id in json.loads(members):
            memberships.setdefault(intern(contact), set()).add(group_id)
        return UserState(
            handle=handle,
            friendly_name=friendly_name,
            version=version,
            gtc=gtc,
            blp=blp,
            properties=dict(json.loads(properties)),
            lists=lists,
            groups=dict(sorted(json.loads(groups))),
            memberships=memberships,
        )

    def contact_properties(self, handles: list[str], viewer: Optional[str] = None) -> dict[str, dict[str, str]]:
        """
        The phone properties of each of C{handles}, for BPR lines.  With
        C{viewer}, only of the contacts whose privacy lets the viewer see
        them (BL hides, AL shows, otherwise BLP decides), as for presence.
        """
        visible = ""
        params_after: tuple = ()
        if viewer is not None:
            visible = (
                " AND NOT EXISTS (SELECT 1 FROM list_entries b WHERE b.account_id = a.id AND b.list = 'BL'"
                " AND b.contact = ?) AND (a.blp = 'AL' OR EXISTS (SELECT 1 FROM list_entries w"
                " WHERE w.account_id = a.id AND w.list = 'AL' AND w.contact = ?))"
            )
            params_after = (viewer, viewer)
        result: dict[str, dict[str, str]] = {}
        for start in range(0, len(handles), 500):
            chunk = handles[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for handle, key, value in self._db.execute(
                f"SELECT a.handle, p.key, p.value FROM properties p JOIN accounts a ON a.id = p.account_id "
                f"WHERE a.handle IN ({marks}){visible}",
                (*chunk, *params_after),
            ):
                result.setdefault(handle, {})[key] = value
        return result

    # Edits.  Each runs in one transaction and bumps the list version of
    # every account it changes.

    def _account_id(self, db, handle: str) -> int:
        row = db.execute("SELECT id FROM accounts WHERE handle = ?", (handle,)).fetchone()
        if row is None:
            raise UnknownAccount(handle)
        return row[0]

    def _bump(self, db, account_id: int) -> int:
        return db.execute(
            "UPDATE accounts SET list_version = list_version + 1 WHERE id = ? RETURNING list_version", (account_id,)
        ).fetchone()[0]

    def add_to_list(
        self, owner: str, lst: str, contact: str, name: str, group_id: Optional[int] = None, federated: bool = False
    ) -> ListChange:
        """
        With C{federated} (the contact's domain is served by a federated
        peer) a contact without an account here is listed all the same; its
        reverse list is kept by its own server, so none is changed here.
        """

        def work(db):
            owner_id = self._account_id(db, owner)
            row = db.execute("SELECT id FROM accounts WHERE handle = ?", (contact,)).fetchone()
            if row is None and not federated:
                raise UnknownAccount(contact)
            contact_id = row[0] if row is not None else None
            db.execute(
                "INSERT OR IGNORE INTO list_entries (account_id, list, contact, name) VALUES (?, ?, ?, ?)",
                (owner_id, lst, contact, name),
            )
            if group_id is not None:
                db.execute(
                    "INSERT OR IGNORE INTO group_members (account_id, contact, group_id) VALUES (?, ?, ?)",
                    (owner_id, contact, group_id),
                )
            version = self._bump(db, owner_id)
            reverse_version = None
            if lst == "FL" and contact_id is not None:
                owner_name = db.execute("SELECT friendly_name FROM accounts WHERE id = ?", (owner_id,)).fetchone()[0]
                inserted = db.execute(
                    "INSERT OR IGNORE INTO list_entries (account_id, list, contact, name) VALUES (?, 'RL', ?, ?)",
                    (contact_id, owner, owner_name),
                ).rowcount
                if inserted:
                    reverse_version = self._bump(db, contact_id)
            return ListChange(version, reverse_version)

        return self._transaction(work)

    def add_federated_watcher(self, owner: str, watcher: str, name: str) -> Optional[int]:
        """
        Put C{watcher}, a user of a federated domain who subscribed to
        C{owner}'s presence, on C{owner}'s reverse list: the owner's new
        list version, or None when the watcher was there already.
        """

        def work(db):
            owner_id = self._account_id(db, owner)
            inserted = db.execute(
                "INSERT OR IGNORE INTO list_entries (account_id, list, contact, name) VALUES (?, 'RL', ?, ?)",
                (owner_id, watcher, name),
            ).rowcount
            return self._bump(db, owner_id) if inserted else None

        return self._transaction(work)

    def entries_in_domains(self, domains: list[str]) -> list[tuple[str, str, str, str]]:
        """
        Every list entry naming a contact of one of C{domains}, as (owner,
        list, contact, name): what a federation edge serves at start.
        """
        result = []
        for domain in domains:
            pattern = "%@" + domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            result.extend(
                self._db.execute(
                    "SELECT a.handle, e.list, e.contact, e.name FROM list_entries e JOIN accounts a ON a.id = e.account_id"
                    " WHERE e.contact LIKE ? ESCAPE '\\' ORDER BY e.rowid",
                    (pattern,),
                ).fetchall()
            )
        return result

    def add_to_group(self, owner: str, contact: str, group_id: int) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute(
                "INSERT OR IGNORE INTO group_members (account_id, contact, group_id) VALUES (?, ?, ?)",
                (owner_id, contact, group_id),
            )
            return self._bump(db, owner_id)

        return self._transaction(work)

    def remove_from_group(self, owner: str, contact: str, group_id: int) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute(
                "DELETE FROM group_members WHERE account_id = ? AND contact = ? AND group_id = ?",
                (owner_id, contact, group_id),
            )
            return self._bump(db, owner_id)

        return self._transaction(work)

    def _remove_entry(self, db, owner_id: int, owner: str, lst: str, contact: str) -> Optional[int]:
        db.execute(
            "DELETE FROM list_entries WHERE account_id = ? AND list = ? AND contact = ?", (owner_id, lst, contact)
        )
        if lst != "FL":
            return None
        db.execute("DELETE FROM group_members WHERE account_id = ? AND contact = ?", (owner_id, contact))
        row = db.execute("SELECT id FROM accounts WHERE handle = ?", (contact,)).fetchone()
        if row is None:
            return None
        removed = db.execute(
            "DELETE FROM list_entries WHERE account_id = ? AND list = 'RL' AND contact = ?", (row[0], owner)
        ).rowcount
        return self._bump(db, row[0]) if removed else None

    def remove_from_list(self, owner: str, lst: str, contact: str) -> ListChange:
        def work(db):
            owner_id = self._account_id(db, owner)
            reverse_version = self._remove_entry(db, owner_id, owner, lst, contact)
            return ListChange(self._bump(db, owner_id), reverse_version)

        return self._transaction(work)

    def rename_contact(self, owner: str, contact: str, name: str) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute(
                "UPDATE list_entries SET name = ? WHERE account_id = ? AND contact = ? AND list != 'RL'",
                (name, owner_id, contact),
            )
            return self._bump(db, owner_id)

        return self._transaction(work)

    def set_friendly_name(self, owner: str, name: str) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute("UPDATE accounts SET friendly_name = ? WHERE id = ?", (name, owner_id))
            return self._bump(db, owner_id)

        return self._transaction(work)

    def set_privacy(self, owner: str, setting: str, value: str) -> int:
        if setting not in ("gtc", "blp"):
            raise ValueError(setting)

        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute(f"UPDATE accounts SET {setting} = ? WHERE id = ?", (value, owner_id))
            return self._bump(db, owner_id)

        return self._transaction(work)

    def set_property(self, owner: str, key: str, value: str) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            if value:
                db.execute(
                    "INSERT INTO properties (account_id, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (account_id, key) DO UPDATE SET value = excluded.value",
                    (owner_id, key, value),
                )
            else:
                db.execute("DELETE FROM properties WHERE account_id = ? AND key = ?", (owner_id, key))
            remaining = db.execute("SELECT 1 FROM properties WHERE account_id = ? LIMIT 1", (owner_id,)).fetchone()
            return self._bump(db, owner_id), remaining is not None

        version, has_properties = self._transaction(work)
        if has_properties:
            self.handles_with_properties.add(owner)
        else:
            self.handles_with_properties.discard(owner)
        return version

    def add_group(self, owner: str, group_id: int, name: str) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            try:
                db.execute("INSERT INTO groups (account_id, group_id, name) VALUES (?, ?, ?)", (owner_id, group_id, name))
            except sqlite3.IntegrityError:
                # A session that had not yet seen a group another session
                # of the same account just created.
                raise GroupIdTaken(f"group {group_id} of {owner}")
            return self._bump(db, owner_id)

        return self._transaction(work)

    def rename_group(self, owner: str, group_id: int, name: str) -> int:
        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute("UPDATE groups SET name = ? WHERE account_id = ? AND group_id = ?", (name, owner_id, group_id))
            return self._bump(db, owner_id)

        return self._transaction(work)

    def remove_group(self, owner: str, group_id: int, dropped_contacts: list[str]) -> GroupRemoval:
        """
        Remove a group; C{dropped_contacts} were only in that group and leave
        the forward list with it.
        """

        def work(db):
            owner_id = self._account_id(db, owner)
            db.execute("DELETE FROM groups WHERE account_id = ? AND group_id = ?", (owner_id, group_id))
            db.execute("DELETE FROM group_members WHERE account_id = ? AND group_id = ?", (owner_id, group_id))
            dropped = []
            for contact in dropped_contacts:
                reverse_version = self._remove_entry(db, owner_id, owner, "FL", contact)
                if reverse_version is not None:
                    dropped.append((contact, reverse_version))
            return GroupRemoval(self._bump(db, owner_id), tuple(dropped))

        return self._transaction(work)


    # Offline messages

    def store_offline_message(self, recipient: str, message: OfflineMessage, max_count: int, max_bytes: int) -> None:
        def work(db):
            account_id = self._account_id(db, canonical_handle(recipient))
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(length(CAST(text AS BLOB))), 0) FROM offline_messages WHERE account_id = ?",
                (account_id,),
            ).fetchone()
            if count >= max_count or size + len(message.text.encode("utf-8")) > max_bytes:
                raise MailboxFull(recipient)
            db.execute(
                "INSERT INTO offline_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account_id, *attrs.astuple(message)),
            )

        self._transaction(work)

    def offline_messages(self, recipient: str) -> list[OfflineMessage]:
        rows = self._db.execute(
            "SELECT message_id, sender, sender_name, received_at, run_id, sequence, text FROM offline_messages"
            " WHERE account_id = (SELECT id FROM accounts WHERE handle = ?) ORDER BY received_at, rowid",
            (canonical_handle(recipient),),
        ).fetchall()
        return [OfflineMessage(*row) for row in rows]

    def delete_offline_messages(self, recipient: str, message_ids: list[str]) -> list[str]:
        def work(db):
            row = db.execute("SELECT id FROM accounts WHERE handle = ?", (canonical_handle(recipient),)).fetchone()
            if row is None:
                return []
            deleted = []
            for message_id in message_ids:
                if db.execute("DELETE FROM offline_messages WHERE account_id = ? AND message_id = ?", (row[0], message_id)).rowcount:
                    deleted.append(message_id)
            return deleted

        return self._transaction(work)

T = TypeVar("T")


@implementer(IStore)

class ThreadedStore:
    """
    L{Database} on its own thread.  Every method of the database is
    available here returning a Deferred.
    """

    def __init__(self, path: str, reactor=None):
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self._path = path
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="msnp-store")
        self._database: Optional[Database] = None

    def start(self) -> Deferred:
        """
        Open the database on the store's thread.  Calls made before it is
        open queue behind the opening on that same thread.
        """
        self._pool.start()

        def open_database():
            self._database = Database(self._path)

        return self._call(open_database)

    def stop(self) -> Deferred:
        def close_database():
            if self._database is not None:
                self._database.close()
                self._database = None

        def stopped(result):
            self._pool.stop()
            return result

        return self._call(close_database).addBoth(stopped)

    def contact_properties(self, handles: list[str], viewer: Optional[str] = None) -> Deferred:
        """
        L{Database.contact_properties}, answered at once when none of
        C{handles} has a property at all.
        """
        database = self._database
        if database is not None and database.handles_with_properties.isdisjoint(handles):
            return succeed({})
        return self._call(self._run, "contact_properties", handles, viewer)

    def _run(self, name: str, *args, **kwargs):
        if self._database is None:
            raise RuntimeError("the store is closed")
        return getattr(self._database, name)(*args, **kwargs)

    def _call(self, function: Callable[..., T], *args, **kwargs) -> "Deferred[T]":
        return deferToThreadPool(self._reactor, self._pool, function, *args, **kwargs)


def _on_store_thread(name: str):
    def call(self, *args, **kwargs):
        return self._call(self._run, name, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"L{{Database.{name}}} on the store's thread."
    return call


# Every other operation of IStore is the Database method of that name, run
# on the store's thread.
for _name in IStore.names():
    if _name not in vars(ThreadedStore):
        setattr(ThreadedStore, _name, _on_store_thread(_name))
del _name
