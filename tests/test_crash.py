"""
Crash safety: SIGKILL in the middle of a stream of ADD/REM from several
clients.  After a restart every change whose reply reached a client is
there, and nothing beyond the changes that were still in flight.
"""

from __future__ import annotations

import random

import pytest_twisted

from msnclient import login
from msnp.store.sqlite import Database
from serverprocess import ServerProcess, make_accounts, sleep

OWNERS = {f"{name}@example.com": (f"pw-{name}", name.title()) for name in ("alice", "bob", "carol")}
CONTACTS = {f"c{i}@example.com": (f"pw-c{i}", f"C{i}") for i in range(8)}
OPS_PER_CLIENT = 1500


def make_ops(seed: int) -> list[tuple[str, str]]:
    """
    A valid stream of ADD/REM on FL: each contact is added only when absent
    and removed only when present, so every command succeeds.
    """
    rng = random.Random(seed)
    present: set[str] = set()
    ops = []
    for _ in range(OPS_PER_CLIENT):
        contact = rng.choice(sorted(CONTACTS))
        ops.append(("REM" if contact in present else "ADD", contact))
        present ^= {contact}
    return ops


def state_after(ops) -> frozenset:
    present: set[str] = set()
    for _, contact in ops:
        present ^= {contact}
    return frozenset(present)


@pytest_twisted.inlineCallbacks
def test_sigkill_mid_stream_keeps_exactly_the_acknowledged_changes(tmp_path):
    """
    Three clients pipeline ADD/REM streams; the server is killed once each
    has had some replies.  On disk, each owner's FL and list version equal
    the state after some prefix of its stream that contains every
    acknowledged command and no command that was never sent; the contacts'
    reverse lists agree with it; the server starts again on that database.
    """
    db_path = str(tmp_path / "msnp.sqlite")
    make_accounts(db_path, {**OWNERS, **CONTACTS})
    db = Database(db_path)
    start_versions = {owner: db.load_user(owner).version for owner in OWNERS}
    db.close()

    server = ServerProcess(tmp_path, db_path, "--command-burst", "1000000")
    yield server.start()
    streams = {}
    try:
        clients = {}
        for seed, (owner, (password, _)) in enumerate(OWNERS.items()):
            clients[owner] = yield login(server.notification_port, owner, password, "MSNP5")
        for seed, (owner, client) in enumerate(clients.items()):
            ops = make_ops(seed)
            streams[owner] = ops
            client.send_raw(
                b"".join(
                    (f"ADD {trid} FL {contact} {contact[:2]}\r\n" if verb == "ADD" else f"REM {trid} FL {contact}\r\n").encode()
                    for trid, (verb, contact) in enumerate(ops, 100)
                )
            )
        for _ in range(2000):
            if all(len(c.received) >= 20 for c in clients.values()):
                break
            yield sleep(0.002)
        server.kill()
        acknowledged = {owner: [line.text for line in client.received] for owner, client in clients.items()}
        for client in clients.values():
            yield client.disconnect()
    finally:
        server.kill()

    assert any(len(lines) < OPS_PER_CLIENT for lines in acknowledged.values()), "the kill came after every reply"
    db = Database(db_path)
    try:
        for owner, ops in streams.items():
            lines = acknowledged[owner]
            # Replies come in order, one per command.
            for trid, ((verb, contact), line) in enumerate(zip(ops, lines), 100):
                assert line.startswith(f"{verb} {trid} FL ") and f" {contact}" in line, line
            user = db.load_user(owner)
            on_disk = frozenset(user.lists["FL"])
            applied = user.version - start_versions[owner]
            assert len(lines) <= applied <= len(ops), (owner, len(lines), applied)
            assert on_disk == state_after(ops[:applied]), owner
            for contact in CONTACTS:
                reverse = db.load_user(contact).lists["RL"]
                assert (owner in reverse) == (contact in on_disk), (owner, contact)
    finally:
        db.close()

    restarted = ServerProcess(tmp_path, db_path)
    yield restarted.start()
    try:
        alice = yield login(restarted.notification_port, "alice@example.com", "pw-alice", "MSNP5")
        yield alice.disconnect()
    finally:
        restarted.kill()
