"""
Graceful shutdown: every connected client of every role is told (OUT SSD
where the role has it) and disconnected, the store is closed cleanly, and
C{twistd} exits 0 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest_twisted
from twisted.internet import defer

from msnclient import connect, login
from serverprocess import ServerProcess, make_accounts

ACCOUNTS = {"alice@example.com": ("pw-alice", "Alice"), "bob@example.com": ("pw-bob", "Bob")}


@defer.inlineCallbacks
def connected_everywhere(dispatch_port: int, notification_port: int, switchboard_port: int):
    """
    One client of each kind: logged in at the notification server, before
    login there, at the dispatch server, and at the switchboard.
    """
    alice = yield login(notification_port, "alice@example.com", "pw-alice", "MSNP5")
    waiting = yield connect(notification_port, "waiting")
    waiting.send("VER 1 MSNP5")
    yield waiting.expect_line("VER 1 MSNP5")
    dispatched = yield connect(dispatch_port, "dispatched")
    dispatched.send("VER 1 MSNP5")
    yield dispatched.expect_line("VER 1 MSNP5")
    chatting = yield connect(switchboard_port, "chatting")
    return alice, waiting, dispatched, chatting


@defer.inlineCallbacks
def expect_told_and_closed(alice, waiting, dispatched, chatting):
    for client in (alice, waiting, dispatched):
        yield client.expect_line("OUT SSD")
        yield client.expect_close()
    yield chatting.expect_close()


@pytest_twisted.inlineCallbacks
def test_stop_service_says_out_ssd_and_closes_the_store(server):
    """
    MessengerService.stopService sends OUT SSD to logged-in and not yet
    logged-in clients alike, waits for them to close, then closes the
    store.
    """
    clients = yield connected_everywhere(server.dispatch_port, server.notification_port, server.switchboard_port)
    yield server.stop()
    yield expect_told_and_closed(*clients)
    assert server.store._database is None


@pytest_twisted.inlineCallbacks
def test_sigterm_shuts_twistd_down_cleanly(tmp_path):
    """
    SIGTERM to C{twistd -n msnp}: OUT SSD to every client, the SQLite
    database closed cleanly (its write-ahead log folded back in), exit
    status 0.
    """
    db_path = str(tmp_path / "msnp.sqlite")
    make_accounts(db_path, ACCOUNTS)
    server = ServerProcess(tmp_path, db_path)
    yield server.start()
    try:
        clients = yield connected_everywhere(server.dispatch_port, server.notification_port, server.switchboard_port)
        alice = clients[0]
        alice.send("ADD 5 FL bob@example.com Bob")
        yield alice.expect(r"ADD 5 FL \d+ bob@example.com Bob")
        server.signal(signal.SIGTERM)
        yield expect_told_and_closed(*clients)
        status = yield server.wait_exit()
    finally:
        server.kill()
    assert status == 0, server.log()
    assert "Traceback" not in server.log()
    assert "msnp stopped" in server.log()
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM list_entries WHERE contact = 'bob@example.com' AND list = 'FL'").fetchone() == (1,)
    finally:
        db.close()


@pytest_twisted.inlineCallbacks
def test_a_second_sigterm_while_stopping_is_no_error(tmp_path):
    """
    A process manager (or C{make}, or C{timeout}) may send SIGTERM twice:
    the second one, while the server is already stopping, is taken as the
    same request, with no traceback and exit status 0.
    """
    db_path = str(tmp_path / "msnp.sqlite")
    make_accounts(db_path, ACCOUNTS)
    server = ServerProcess(tmp_path, db_path)
    yield server.start()
    try:
        alice = yield login(server.notification_port, "alice@example.com", "pw-alice", "MSNP5")
        server.signal(signal.SIGTERM)
        # The server is stopping: it has told alice and waits for her to go.
        yield alice.expect_line("OUT SSD")
        server.signal(signal.SIGTERM)
        yield alice.disconnect()
        status = yield server.wait_exit()
    finally:
        server.kill()
    assert status == 0, server.log()
    assert "Traceback" not in server.log(), server.log()
    assert "msnp stopped" in server.log()
