"""
Rendezvous placement of logins over notification nodes with a load cap
(msnp.directory.placement), and the dispatch server using it: its
referral, and 601 when no node is live or the directory cannot answer.
"""

from __future__ import annotations

import collections

import pytest_twisted
from hypothesis import given, strategies as st
from twisted.internet import defer

from msnp.config import ServerConfig
from msnp.directory.placement import choose_node, rendezvous_order
from msnp.msn.dispatch import DispatchServer
from msnclient import connect

names = st.lists(st.from_regex(r"ns[0-9a-z]{1,6}", fullmatch=True), min_size=1, max_size=8, unique=True)
handles = st.from_regex(r"[a-z0-9]{1,12}@example\.com", fullmatch=True)


@given(handles, names)
def test_order_is_a_permutation_fixed_by_handle_and_names(handle, nodes):
    order = rendezvous_order(handle, nodes)
    assert sorted(order) == sorted(nodes)
    assert rendezvous_order(handle, list(reversed(nodes))) == order


@given(handles, names, st.data())
def test_only_a_gone_nodes_users_move(handle, nodes, data):
    """
    With even loads, removing a node that was not a user's choice leaves
    the choice where it was.
    """
    live = [(name, f"127.0.0.1:{i}", 0) for i, name in enumerate(nodes)]
    chosen = choose_node(handle, live)
    others = [node for node in live if node != chosen]
    if others:
        gone = data.draw(st.sampled_from(others))
        assert choose_node(handle, [node for node in live if node != gone]) == chosen


@given(handles, names, st.lists(st.integers(0, 1000), min_size=8, max_size=8))
def test_choice_respects_the_cap(handle, nodes, loads):
    live = [(name, "a", load) for name, load in zip(nodes, loads)]
    chosen = choose_node(handle, live)
    total = sum(node[2] for node in live)
    assert chosen in live
    assert chosen[2] <= max(1.25 * (total + 1) / len(live), min(node[2] for node in live))


def test_no_node_no_choice():
    assert choose_node("a@example.com", []) is None


def test_logins_spread_and_stick():
    live = [("ns1", "h:1", 0), ("ns2", "h:2", 0), ("ns3", "h:3", 0)]
    users = [f"user{i}@example.com" for i in range(600)]
    placed = collections.Counter(choose_node(user, live)[0] for user in users)
    assert set(placed) == {"ns1", "ns2", "ns3"}
    # A loaded node is passed over for the next in the user's order.
    for user in users[:50]:
        first = rendezvous_order(user, ["ns1", "ns2", "ns3"])
        loaded = [(name, address, 100 if name == first[0] else 0) for name, address, _ in live]
        assert choose_node(user, loaded)[0] == first[1]


@pytest_twisted.inlineCallbacks
def test_dispatch_refers_to_the_placed_node_or_answers_601():
    from twisted.internet import reactor

    answers = {"alice@example.com": defer.succeed("10.0.0.7:1864"), "bob@example.com": defer.succeed(None),
               "carol@example.com": defer.fail(ConnectionError("directory away"))}
    server = DispatchServer(ServerConfig(), reactor, placement=lambda handle: answers[handle])
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    try:
        for handle, answer in (("alice@example.com", "XFR 2 NS 10.0.0.7:1864 0 127.0.0.1:1863"),
                               ("bob@example.com", "601 2"), ("carol@example.com", "601 2")):
            client = yield connect(port.getHost().port)
            client.send("VER 1 MSNP7 CVR0")
            yield client.expect_line("VER 1 MSNP7")
            client.send(f"USR 2 MD5 I {handle}")
            yield client.expect_line(answer)
            yield client.expect_close()
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_dispatch_waits_for_the_directory_only_so_long():
    """
    A directory that does not answer (Redis away) holds the login for
    PLACEMENT_TIMEOUT seconds, then the client gets 601.
    """
    from twisted.internet import reactor
    from twisted.internet.task import Clock

    from msnp.msn.dispatch import PLACEMENT_TIMEOUT

    clock = Clock()
    server = DispatchServer(ServerConfig(), clock, placement=lambda handle: defer.Deferred())
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    try:
        client = yield connect(port.getHost().port)
        client.send("VER 1 MSNP7 CVR0")
        yield client.expect_line("VER 1 MSNP7")
        client.send("USR 2 MD5 I alice@example.com")
        yield client.expect_silence(0.2)
        clock.advance(PLACEMENT_TIMEOUT)
        yield client.expect_line("601 2")
        yield client.expect_close()
    finally:
        yield port.stopListening()
