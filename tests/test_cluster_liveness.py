"""
Node liveness with real processes: a dispatch server and two notification
nodes (each its own C{twistd}) on the test run's Redis and PostgreSQL,
with 3-second leases.  A node killed with SIGKILL is reaped: watchers on
the other node see its users go offline, the users log in again at once
through the dispatch server and land on the survivor with every
acknowledged list change.  A node frozen past its lease is fenced: woken,
it drops its clients and delivers nothing they sent.  Redis stopped and
started again (empty) sends no false FLN and service resumes by itself.
A node stopped gracefully sends its users away and the dispatch server
refers them elsewhere.
"""

from __future__ import annotations

import re
import signal

import pytest
import pytest_twisted
from twisted.internet import defer

from clusterprocess import TEST_LEASE, ClusterProcess, login_at, login_through, referral
from msnclient import go_online
from serverprocess import sleep

ALICE = "alice@example.com"
BOB = "bob@example.com"
# Lease, a beat, the reaper's own beat and slack for a loaded machine.
REAP_WITHIN = TEST_LEASE * 2 + 10


@pytest.fixture
def cluster(tmp_path, redis_server, postgres_accounts):
    """
    Processes "ds" (dispatch), "ns1" and "ns2" (notification and
    switchboard), started and ready.
    """
    redis_server.command("FLUSHALL")
    processes = [
        ClusterProcess(tmp_path, "ds", "dispatch", redis_server.url, postgres_accounts),
        ClusterProcess(tmp_path, "ns1", "notification,switchboard", redis_server.url, postgres_accounts),
        ClusterProcess(tmp_path, "ns2", "notification,switchboard", redis_server.url, postgres_accounts),
    ]
    try:
        pytest_twisted.blockon(defer.gatherResults([p.start(redis_server) for p in processes], consumeErrors=True))
        yield {p.name: p for p in processes}
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.signal(signal.SIGCONT)
            process.kill()


@defer.inlineCallbacks
def watching_pair(cluster):
    """
    alice logs in through the dispatch server; bob logs in on the other
    node.  Both online, they add each other, and alice sees bob busy.
    Returns alice, bob, the node alice is on and the node bob is on.
    """
    nodes = {cluster["ns1"].notification_port: cluster["ns1"], cluster["ns2"].notification_port: cluster["ns2"]}
    alice, alice_port = yield login_through(cluster["ds"].port, ALICE, "pw-alice")
    (bob_port,) = [port for port in nodes if port != alice_port]
    yield go_online(alice, 12)
    bob = yield login_at(bob_port, BOB, "pw-bob")
    yield go_online(bob, 13)
    alice.send("ADD 10 FL bob@example.com Bob")
    yield lines_until(alice, r"ADD 10 FL \d+ bob@example.com Bob 0")
    yield lines_until(bob, r"ADD 0 RL \d+ alice@example.com Alice")
    bob.send("ADD 11 FL alice@example.com Alice")
    yield lines_until(bob, r"ADD 11 FL \d+ alice@example.com Alice 0")
    yield lines_until(alice, r"ADD 0 RL \d+ bob@example.com Bob")
    bob.send("CHG 14 BSY")
    yield lines_until(bob, r"CHG 14 BSY")
    yield lines_until(alice, r"NLN BSY bob@example.com Bob")
    yield settle(alice, bob)
    return alice, bob, nodes[alice_port], nodes[bob_port]


@defer.inlineCallbacks
def settle(*clients):
    """
    Let each client's pending lines arrive (a PNG answered), and drop them.
    """
    for client in clients:
        client.send("PNG")
        yield lines_until(client, r"QNG( \d+)?")
        client.received.clear()


@defer.inlineCallbacks
def lines_until(client, pattern: str, limit: int = 40):
    """
    Read lines until one matches C{pattern}; returns the match.
    """
    for _ in range(limit):
        line = yield client.next(timeout=30)
        match = re.fullmatch(pattern, line.text)
        if match:
            return match
    raise AssertionError(f"{client.name}: no line matching {pattern!r}")


@pytest_twisted.inlineCallbacks
def test_killed_node_is_reaped_and_its_users_log_in_elsewhere(cluster):
    alice, bob, alice_node, bob_node = yield watching_pair(cluster)
    # An acknowledged list change on the node about to die.
    bob.send("ADD 20 FL carol@example.com Carol")
    acked = yield bob.expect(r"ADD 20 FL (\d+) carol@example.com Carol 0")
    bob_node.kill()
    yield bob.wait_closed()
    # Within about a lease the survivor's reaper tells alice.
    yield alice.expect_line("FLN bob@example.com", timeout=REAP_WITHIN)
    # bob logs in again at once: the dispatch server refers him to the
    # live node, where everything acknowledged is there.
    bob_again, port = yield login_through(cluster["ds"].port, BOB, "pw-bob")
    assert port == alice_node.notification_port
    bob_again.send("SYN 30 0")
    yield bob_again.expect_line(f"SYN 30 {acked.group(1)}")
    yield lines_until(bob_again, r"LST 30 FL .*carol@example.com Carol.*")
    yield settle(bob_again)
    yield go_online(bob_again, 31)
    yield alice.expect_line("NLN NLN bob@example.com Bob")
    yield alice.disconnect()
    yield bob_again.disconnect()


@pytest_twisted.inlineCallbacks
def test_frozen_node_is_fenced_when_it_wakes(cluster, redis_server):
    alice, bob, alice_node, bob_node = yield watching_pair(cluster)
    bob_node.signal(signal.SIGSTOP)
    yield alice.expect_line("FLN bob@example.com", timeout=REAP_WITHIN)
    # What bob sends meanwhile waits in the frozen node's socket buffer.
    bob.send("CHG 40 NLN")
    bob_node.signal(signal.SIGCONT)
    # Woken, the node finds it was declared dead: bob is sent away.
    yield bob.wait_closed(timeout=30)
    assert "OUT SSD" in [line.text for line in bob.received]
    # ... and his status change reaches nobody.
    yield alice.expect_silence(2 * TEST_LEASE)
    # The node carries on as a new incarnation: logins there work again.
    yield bob_node.wait_lease(redis_server)
    bob_again = yield login_at(bob_node.notification_port, BOB, "pw-bob")
    yield go_online(bob_again, 41)
    yield alice.expect_line("NLN NLN bob@example.com Bob")
    yield alice.disconnect()
    yield bob_again.disconnect()


@pytest_twisted.inlineCallbacks
def test_redis_restarted_sends_no_false_fln_and_service_resumes(cluster, redis_server):
    alice, bob, alice_node, bob_node = yield watching_pair(cluster)
    redis_server.stop()
    # Meanwhile a login at the dispatch server waits or is refused (601),
    # never referred to nowhere.
    asked = referral(cluster["ds"].port, "carol@example.com")
    yield sleep(TEST_LEASE + 1)
    redis_server.start()
    answer = yield asked
    assert answer == "601" or answer in (alice_node.notification_port, bob_node.notification_port)
    # Redis came back empty: the nodes put their records back, nobody is
    # reaped, nobody is told anyone went offline.
    yield alice_node.wait_lease(redis_server)
    yield bob_node.wait_lease(redis_server)
    yield alice.expect_silence(2 * TEST_LEASE)
    bob.expect_silence(0)
    # Presence flows across nodes again, and logins are placed.
    bob.send("CHG 50 NLN")
    yield lines_until(bob, "CHG 50 NLN")
    yield alice.expect_line("NLN NLN bob@example.com Bob", timeout=30)
    port = yield referral(cluster["ds"].port, "carol@example.com")
    assert port in (alice_node.notification_port, bob_node.notification_port)
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_node_stopped_gracefully_sends_its_users_elsewhere(cluster):
    alice, bob, alice_node, bob_node = yield watching_pair(cluster)
    bob_node.signal(signal.SIGTERM)
    yield lines_until(bob, "OUT SSD")
    yield bob.wait_closed(timeout=30)
    yield alice.expect_line("FLN bob@example.com", timeout=30)
    assert (yield bob_node.wait_exit()) == 0
    bob_again, port = yield login_through(cluster["ds"].port, BOB, "pw-bob")
    assert port == alice_node.notification_port
    yield go_online(bob_again, 60)
    yield alice.expect_line("NLN NLN bob@example.com Bob")
    yield alice.disconnect()
    yield bob_again.disconnect()
