"""
A fresh database full of benchmark accounts, written in bulk.

The first account goes through L{msnp.store.Database.create_account}, so the
schema and the password hash are the server's own; the rest are copied from
it with plain SQL in one transaction, which makes 20,000 accounts with 20
contacts each a matter of seconds (one scrypt hash instead of 20,000).
Every account shares one password for that reason.

Contacts form a ring: account i has the C{contacts} nearest accounts on its
forward and allow lists, half on each side, so forward and reverse lists
are symmetric and every account is watched by exactly as many accounts as
it watches.  List versions count the edits that would have built the lists
one ADD at a time.
"""

from __future__ import annotations

from typing import Iterator

from msnp.store.sqlite import Database

from msnp.store.records import DEFAULT_GROUP_NAME

PASSWORD = "bench-password"


def handle_of(index: int) -> str:
    return f"user{index:06d}@bench.example"


def name_of(index: int) -> str:
    return f"User {index}"


def ring_contacts(index: int, accounts: int, contacts: int) -> list[int]:
    """
    The accounts on C{index}'s forward list: the nearest C{contacts} on the
    ring, alternating after and before it.
    """
    contacts = min(contacts, accounts - 1)
    neighbours: dict[int, None] = {}
    step = 1
    while len(neighbours) < contacts:
        for other in ((index + step) % accounts, (index - step) % accounts):
            if len(neighbours) < contacts and other != index:
                neighbours[other] = None
        step += 1
    return list(neighbours)


def pair_contacts(index: int, accounts: int, contacts: int) -> list[int]:
    """
    Accounts 2k and 2k+1 have only each other: the conversation pairs.
    """
    partner = index ^ 1
    return [partner] if partner < accounts and contacts else []


TOPOLOGIES = {"ring": ring_contacts, "pairs": pair_contacts}


def populate(path: str, accounts: int, contacts: int, topology: str = "ring") -> None:
    """
    Create C{accounts} accounts in the database at C{path}, each with
    C{contacts} contacts on FL and AL (and the matching RL entries).
    """
    neighbours_of = TOPOLOGIES[topology]
    database = Database(path)
    try:
        database.create_account(handle_of(0), PASSWORD, name_of(0))
        db = database._db
        password_hash = db.execute("SELECT password_hash FROM accounts WHERE handle = ?", (handle_of(0),)).fetchone()[0]
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO accounts (handle, friendly_name, md5_password, password_hash) VALUES (?, ?, ?, ?)",
            ((handle_of(i), name_of(i), PASSWORD, password_hash) for i in range(1, accounts)),
        )
        ids = dict(db.execute("SELECT handle, id FROM accounts"))
        account_ids = [ids[handle_of(i)] for i in range(accounts)]
        db.executemany(
            "INSERT INTO groups (account_id, group_id, name) VALUES (?, 0, ?)",
            ((account_ids[i], DEFAULT_GROUP_NAME) for i in range(1, accounts)),
        )
        forward = [neighbours_of(i, accounts, contacts) for i in range(accounts)]
        db.executemany(
            "INSERT INTO list_entries (account_id, list, contact, name) VALUES (?, ?, ?, ?)",
            _list_rows(forward, account_ids),
        )
        db.executemany(
            "INSERT INTO group_members (account_id, contact, group_id) VALUES (?, ?, 0)",
            ((account_ids[i], handle_of(j)) for i in range(accounts) for j in forward[i]),
        )
        # One version step per ADD FL, per ADD AL and per RL entry added by
        # someone else's ADD FL.
        reverse_counts = [0] * accounts
        for i in range(accounts):
            for j in forward[i]:
                reverse_counts[j] += 1
        db.executemany(
            "UPDATE accounts SET list_version = ? WHERE id = ?",
            ((1 + 2 * len(forward[i]) + reverse_counts[i], account_ids[i]) for i in range(accounts)),
        )
        db.execute("COMMIT")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        database.close()


def _list_rows(forward: list[list[int]], account_ids: list[int]) -> Iterator[tuple]:
    # FL and AL in the order the ADDs would have run; RL after them.
    for i, contacts in enumerate(forward):
        owner = account_ids[i]
        for j in contacts:
            yield owner, "FL", handle_of(j), name_of(j)
        for j in contacts:
            yield owner, "AL", handle_of(j), name_of(j)
    for i, contacts in enumerate(forward):
        for j in contacts:
            yield account_ids[j], "RL", handle_of(i), name_of(i)
