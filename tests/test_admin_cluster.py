"""
The operator's view of a two-node service (PostgreSQL and Redis, the test
run's own engines): one node's live-session adapter lists the endpoints of
both nodes, and its kick, lock and maintenance notice reach a user signed
in on the other node.
"""

import pytest_twisted

from msnclient import attempt_login, login
from msnp.control.live import LiveSessions
from ns_steps import sign_out
from test_cluster import ALICE, BOB, two_nodes  # noqa: F401 (fixture)


@pytest_twisted.inlineCallbacks
def test_one_node_sees_and_steers_the_other(two_nodes):
    ns1, ns2 = two_nodes
    operator = LiveSessions(ns1.service)
    alice = yield login(ns1.notification_port, ALICE, "pw-alice", "MSNP7")
    bob = yield login(ns2.notification_port, BOB, "pw-bob", "MSNP5")
    sessions = yield operator.online()
    assert [(view.handle, view.node, view.dialect) for view in sessions] == [(ALICE, "ns1", "MSNP7"), (BOB, "ns2", "MSNP5")]

    told = yield operator.broadcast(3)
    assert told == 2
    for client in (alice, bob):
        notice = yield client.next()
        assert notice.text.startswith("MSG Hotmail Hotmail ") and b"Arg1: 3" in notice.payload

    ended = yield operator.kick(BOB)
    assert ended == 1
    yield bob.expect_line("OUT OTH")
    yield bob.expect_close()

    bob = yield login(ns2.notification_port, BOB, "pw-bob", "MSNP5")
    ended = yield operator.set_locked(BOB, True)
    assert ended == 1
    yield bob.expect_line("OUT OTH")
    yield bob.expect_close()
    refused = yield attempt_login(ns2.notification_port, BOB, "pw-bob")
    yield refused.expect_line("911 3")
    yield refused.expect_close()
    yield operator.set_locked(BOB, False)
    yield sign_out(alice)
