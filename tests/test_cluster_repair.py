"""
A cluster repairing itself, with real processes (each its own C{twistd})
on real engines: the nodes follow a Redis Sentinel failover and presence
still crosses nodes after it; a switchboard node killed with SIGKILL stops
being referred to once its lease expires; a user who logged in on another
node while the old node was out of reach, whose kick was lost, is still
sent away (OUT OTH) by the old node's sweep.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import pytest_twisted
from twisted.internet import defer

import test_cluster_liveness as liveness
from clusterprocess import TEST_LEASE, ClusterProcess, login_at, login_through
from engines import EngineMissing, RedisSentinel, RedisServer
from msnclient import connect, go_online, request_switchboard
from serverprocess import sleep

ALICE = "alice@example.com"
BOB = "bob@example.com"
# Lease, a beat, the reaper's own beat and slack for a loaded machine.
REAP_WITHIN = TEST_LEASE * 2 + 10


def start_all(processes, redis_server) -> defer.Deferred:
    return defer.gatherResults([p.start(redis_server) for p in processes], consumeErrors=True)


def kill_all(processes):
    for process in processes:
        if process.process is not None and process.process.poll() is None:
            process.signal(signal.SIGCONT)
        process.kill()


@pytest.fixture
def sentinel_set():
    """
    A primary, its replica (in sync) and a Sentinel watching them, all of
    this test's own.
    """
    engines = []
    try:
        primary = RedisServer().start()
        engines.append(primary)
        replica = RedisServer(replica_of=primary)
        engines.append(replica)
        replica.start()
        while replica.info("replication").get("master_link_status") != "up":
            time.sleep(0.05)
        sentinel = RedisSentinel(primary)
        engines.append(sentinel)
        sentinel.start()
    except EngineMissing as missing:
        for engine in engines:
            engine.destroy()
        pytest.skip(str(missing))
    try:
        yield primary, replica, sentinel
    finally:
        for engine in reversed(engines):
            engine.destroy()


@defer.inlineCallbacks
def wait_for_log(process, text: str, timeout: float = 60.0):
    for _ in range(int(timeout / 0.1)):
        if text in process.log():
            return
        yield sleep(0.1)
    raise AssertionError(f"{process.name} never logged {text!r}: {process.log()[-2000:]}")


@pytest_twisted.inlineCallbacks
def test_nodes_follow_a_sentinel_failover(tmp_path, sentinel_set, postgres_accounts):
    """
    Nodes on a Sentinel set keep serving after SENTINEL FAILOVER: each
    moves to the promoted replica within a beat (the old primary stays a
    primary for seconds more, so the Sentinels are asked at every beat),
    nobody is shown offline, presence crosses nodes, and the dispatch
    server places new logins.
    """
    primary, replica, sentinel = sentinel_set
    url = sentinel.url()
    processes = [
        ClusterProcess(tmp_path, "ds", "dispatch", url, postgres_accounts),
        ClusterProcess(tmp_path, "ns1", "notification,switchboard", url, postgres_accounts),
        ClusterProcess(tmp_path, "ns2", "notification,switchboard", url, postgres_accounts),
    ]
    try:
        yield start_all(processes, primary)
        cluster = {p.name: p for p in processes}
        alice, bob, alice_node, bob_node = yield liveness.watching_pair(cluster)
        sentinel.failover(replica)
        for process in processes:
            yield wait_for_log(process, "the Redis primary moved")
        bob.send("CHG 50 NLN")
        yield liveness.lines_until(bob, "CHG 50 NLN")
        # alice sees bob's change, and never saw him go offline.
        for _ in range(40):
            line = yield alice.next(timeout=30)
            assert line.text != "FLN bob@example.com"
            if line.text == "NLN NLN bob@example.com Bob":
                break
        else:
            raise AssertionError("alice never saw bob's change")
        alice.send("CHG 51 AWY")
        yield liveness.lines_until(alice, "CHG 51 AWY")
        yield liveness.lines_until(bob, "NLN AWY alice@example.com Alice")
        carol, port = yield login_through(cluster["ds"].port, "carol@example.com", "pw-carol")
        assert port in (alice_node.notification_port, bob_node.notification_port)
        yield carol.disconnect()
        yield alice.disconnect()
        yield bob.disconnect()
    finally:
        kill_all(processes)


@pytest_twisted.inlineCallbacks
def test_killed_switchboard_node_is_no_longer_referred(tmp_path, redis_server, postgres_accounts):
    """
    A notification node without a switchboard of its own refers XFR SB to
    the live switchboard nodes.  One killed with SIGKILL loses its lease:
    from then on every XFR SB goes to the other, where sessions work; with
    none left, XFR SB is refused with 280 (switchboard failed).
    """
    redis_server.command("FLUSHALL")
    processes = [
        ClusterProcess(tmp_path, "ns1", "notification", redis_server.url, postgres_accounts),
        ClusterProcess(tmp_path, "sb1", "switchboard", redis_server.url, postgres_accounts),
        ClusterProcess(tmp_path, "sb2", "switchboard", redis_server.url, postgres_accounts),
    ]
    try:
        yield start_all(processes, redis_server)
        ns1, sb1, sb2 = processes
        alice = yield login_at(ns1.notification_port, ALICE, "pw-alice")
        yield go_online(alice, 5)
        used = set()
        for trid in range(10, 30):
            port, _ = yield request_switchboard(alice, trid)
            used.add(port)
        assert used == {sb1.switchboard_port, sb2.switchboard_port}
        sb1.kill()
        yield wait_until_reaped(redis_server, "sb1")
        for trid in range(30, 40):
            port, cookie = yield request_switchboard(alice, trid)
            assert port == sb2.switchboard_port
        sb = yield connect(port, "sb-alice")
        sb.send(f"USR 1 {ALICE} {cookie}")
        yield sb.expect(rf"USR 1 OK {re.escape(ALICE)} \S+")
        yield sb.disconnect()
        sb2.kill()
        yield wait_until_reaped(redis_server, "sb2")
        alice.send("XFR 40 SB")
        yield alice.expect_line("280 40", timeout=30)
        yield alice.disconnect()
    finally:
        kill_all(processes)


@defer.inlineCallbacks
def wait_until_reaped(redis_server, node: str):
    """
    The node's lease expired and a live node reaped it.
    """
    for _ in range(int(REAP_WITHIN / 0.05)):
        if redis_server.command("EXISTS", f"node:{node}") == "0" and redis_server.command("ZSCORE", "nodes", node) in ("", "-1"):
            return
        yield sleep(0.05)
    raise AssertionError(f"{node} was not reaped")


@pytest_twisted.inlineCallbacks
def test_lost_kick_is_repaired_by_the_sweep(tmp_path, redis_server, postgres_accounts):
    """
    alice is signed in on ns1; while ns1 is out of reach (frozen for less
    than its lease, its connections to Redis broken) she signs in on ns2, and the kick ns2 sends ns1 is
    lost (taken out of ns1's inbox).  Woken, ns1 finds at its next sweep
    that her record is gone and sends its client OUT OTH; her new session
    carries on.
    """
    redis_server.command("FLUSHALL")
    # A lease long enough that the frozen node is not reaped meanwhile.
    extra = ("--node-lease", "20", "--node-sweep", "1")
    processes = [
        ClusterProcess(tmp_path, "ns1", "notification,switchboard", redis_server.url, postgres_accounts, *extra),
        ClusterProcess(tmp_path, "ns2", "notification,switchboard", redis_server.url, postgres_accounts, *extra),
    ]
    try:
        yield start_all(processes, redis_server)
        ns1, ns2 = processes
        old = yield login_at(ns1.notification_port, ALICE, "pw-alice")
        yield go_online(old, 5)
        ns1.signal(signal.SIGSTOP)
        # Its connections to Redis break meanwhile: no read of its inbox is
        # waiting there to carry the kick into its socket.
        for port in redis_connections_of(ns1.process.pid, redis_server.port):
            redis_server.command("CLIENT", "KILL", "ADDR", f"127.0.0.1:{port}")
        new = yield login_at(ns2.notification_port, ALICE, "pw-alice")
        for _ in range(600):
            if redis_server.command("XLEN", "inbox:ns1") != "0":
                break
            yield sleep(0.05)
        else:
            raise AssertionError("ns2 sent ns1 no kick")
        redis_server.command("DEL", "inbox:ns1")
        ns1.signal(signal.SIGCONT)
        yield liveness.lines_until(old, "OUT OTH")
        yield old.wait_closed(timeout=30)
        yield go_online(new, 6)
        new.send("PNG")
        yield liveness.lines_until(new, r"QNG( \d+)?")
        assert "replaced by a login elsewhere" in ns1.log()
        yield new.disconnect()
    finally:
        kill_all(processes)


def redis_connections_of(pid: int, redis_port: int) -> list[int]:
    """
    The local ports of process C{pid}'s TCP connections to C{redis_port}
    on 127.0.0.1 (from /proc).
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.split(":")[1], 16) == redis_port:
                ports.append(int(local.split(":")[1], 16))
    assert ports, f"process {pid} has no connection to Redis"
    return ports
