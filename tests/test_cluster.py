"""
Two msnp nodes sharing one PostgreSQL database and one Redis (the test
run's own engines), each with its own notification and switchboard
servers: what users on different nodes see of each other is what they see
on one node — reverse-list notices, presence both ways, FLN, a switchboard
invitation (RNG) and messages across nodes, and OUT OTH when an account
signs in on the other node.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from conftest import start_server
from msnp.config import ServerConfig
from msnp.directory.redis import RedisDirectory
from msnp.store.postgres import PostgresStore
from msnclient import answer_ring, go_online, login, open_switchboard
from ns_steps import sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"


@pytest.fixture
def two_nodes(postgres_accounts, redis_server):
    """
    Nodes "ns1" and "ns2", started; their RunningServers.
    """
    redis_server.command("FLUSHALL")
    running = []
    for node in ("ns1", "ns2"):
        store = PostgresStore(postgres_accounts, reactor)
        directory = RedisDirectory(redis_server.url, node, reactor)
        started = pytest_twisted.blockon(start_server("unused", ServerConfig(), {}, store=store, directory=directory))
        running.append(started)
    yield running
    for server in running:
        if server.service.running:
            pytest_twisted.blockon(server.stop())


@pytest_twisted.inlineCallbacks
def test_users_on_two_nodes_see_each_other(two_nodes):
    ns1, ns2 = two_nodes
    alice = yield login(ns1.notification_port, ALICE, "pw-alice", "MSNP7")
    bob = yield login(ns2.notification_port, BOB, "pw-bob", "MSNP7")
    # The reverse-list notice crosses to bob's node.
    alice.send("ADD 10 FL bob@example.com Bob")
    yield alice.expect_line("ADD 10 FL 2 bob@example.com Bob 0")
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    bob.send("ADD 11 FL alice@example.com Alice")
    yield bob.expect_line("ADD 11 FL 3 alice@example.com Alice 0")
    yield alice.expect_line("ADD 0 RL 3 bob@example.com Bob")
    # Presence both ways: the snapshot at the first CHG (ILN) and changes.
    yield go_online(bob, 12)
    alice.send("CHG 13 NLN")
    yield alice.expect_line("CHG 13 NLN")
    yield alice.expect_line("ILN 13 NLN bob@example.com Bob")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    bob.send("CHG 14 BSY")
    yield bob.expect_line("CHG 14 BSY")
    # bob's going online may still have been on its way to alice's node
    # when her snapshot (ILN) was read: then it arrives after it, once.
    line = yield alice.next()
    if line.text == "NLN NLN bob@example.com Bob":
        line = yield alice.next()
    assert line.text == "NLN BSY bob@example.com Bob"
    # A conversation: alice's switchboard is on ns1; bob is rung on ns2.
    alice_sb = yield open_switchboard(alice, ALICE, 15)
    alice_sb.send("CAL 2 bob@example.com")
    yield alice_sb.expect(r"CAL 2 RINGING \d+")
    bob_sb, ring, roster = yield answer_ring(bob, BOB)
    assert int(ring[1]) == ns1.switchboard_port
    assert roster == ["IRO 1 1 1 alice@example.com Alice"]
    yield alice_sb.expect_line("JOI bob@example.com Bob")
    payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello from ns1"
    alice_sb.send_payload("MSG 3 A", payload)
    message = yield bob_sb.next()
    assert message.text == f"MSG alice@example.com Alice {len(payload)}" and message.payload == payload
    yield alice_sb.expect_line("ACK 3")
    yield sign_out(alice_sb, bob_sb)
    # alice signs in on ns2: her ns1 connection is told and closed.
    alice_again = yield login(ns2.notification_port, ALICE, "pw-alice", "MSNP7")
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    # bob leaves: alice, now on ns2 and online, sees him go.
    yield go_online(alice_again, 16)
    yield sign_out(bob)
    yield alice_again.expect_line("FLN bob@example.com")
    yield sign_out(alice_again)


def test_roles_and_node_id_choose_what_a_process_runs(redis_server, postgres_accounts):
    """
    --roles picks the servers a process listens for, --node-id names it in
    the shared directory (by default host name and notification port); a
    role that does not exist, or a Redis that does not answer, stops the
    start with one line.
    """
    from twisted.python import usage

    from msnp import tap

    def service(*argv):
        options = tap.Options()
        options.parseOptions(["--notification", "tcp:0:interface=127.0.0.1", "--switchboard", "tcp:0:interface=127.0.0.1",
                              "--dispatch", "tcp:0:interface=127.0.0.1", "--postgres", postgres_accounts,
                              "--admin", "none", *argv])
        # twistd's service wraps the server (for a failed start and the log
        # format).
        return tap.makeService(options).messenger

    made = service("--roles", "notification,switchboard", "--redis", redis_server.url, "--node-id", "ns7")
    assert sorted(made.listeners) == ["notification", "switchboard"]
    assert isinstance(made.directory, RedisDirectory) and made.directory.node == "ns7"
    made = service("--roles", "dispatch")
    assert sorted(made.listeners) == ["dispatch"]
    assert made.directory.node.endswith(":0")
    for argv, said in (
        (["--roles", "dispatch,mail"], "--roles: no role 'mail'"),
        (["--roles", ","], "--roles: name at least one"),
        (["--redis", "redis://127.0.0.1:1/0"], "--redis: cannot reach 127.0.0.1:1"),
        (["--redis", "http://127.0.0.1/0"], "--redis: not a redis://"),
        (["--redis", "redis+sentinel://127.0.0.1:1/mymaster/0"], "--redis: no Sentinel names the primary of mymaster: 127.0.0.1:1"),
        (["--redis", "redis+sentinel://127.0.0.1:1"], "--redis: .* names no Sentinel service"),
        (["--redis", redis_server.url, "--node-sweep", "0"], "--node-sweep: between"),
        (["--roles", "notification", "--rvp", "tcp:0:interface=127.0.0.1"], "--rvp and --sip need the switchboard role"),
    ):
        with pytest.raises(SystemExit, match=said):
            service(*argv)
    with pytest.raises(usage.UsageError):
        tap.Options().parseOptions(["--node-id"])
