"""
RVP soft state driven by task.Clock over real HTTP: a lapsed state lease
takes the principal offline and every watcher is told; subscriptions
expire unless renewed; configured peers are recognised by address.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, task

from rvpclient import NS, LocalNode, RvpClient, state_in
from rvpserver import start_rvp


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def rvp(server, clock):
    service = pytest_twisted.blockon(start_rvp(server, clock=clock))
    yield service
    pytest_twisted.blockon(service.stopService())


@defer.inlineCallbacks
def user(rvp, alias):
    client = RvpClient(rvp.port, username=alias, password=f"pw-{alias}",
                       principal=f"http://127.0.0.1:{rvp.port}/instmsg/aliases/{alias}")
    yield client.connect()
    return client


@pytest_twisted.inlineCallbacks
def test_lease_expiry_takes_the_principal_offline(rvp, clock):
    """
    A 1200 s lease (the default) not refreshed: at expiry the default
    (offline) returns and the watcher's local node gets the
    propnotification; a refresh before expiry keeps it online.
    """
    alice = yield user(rvp, "alice")
    bob = yield user(rvp, "bob")
    bob_node = yield LocalNode().start()
    yield bob.login_subscribe("bob", bob_node.url)
    yield alice.set_state("/instmsg/aliases/alice", "online", timeout=None)
    reply = yield bob.subscribe("/instmsg/aliases/alice", bob.principal)
    assert state_in(reply.xml()) == "online"
    clock.advance(1100)
    yield alice.set_state("/instmsg/aliases/alice", "online", timeout=None,
                          view_id=rvp.frontend.presence.views("alice@example.com").popitem()[0])
    clock.advance(1100)
    assert bob_node.received == []
    clock.advance(101)
    [told] = yield bob_node.wait_for(1)
    assert state_in(told.xml()) == "offline"
    assert rvp.frontend.presence.views("alice@example.com") == {}
    yield alice.close()
    yield bob.close()
    yield bob_node.stop()


@pytest_twisted.inlineCallbacks
def test_subscriptions_expire_unless_renewed(rvp, clock):
    """
    A subscription granted 100 s and renewed at 90 s lives on at 150 s and
    is gone at 191 s: SUBSCRIPTIONS no longer lists it and renewing it is
    412.  Lifetimes below 30 s are raised to 30.
    """
    alice = yield user(rvp, "alice")
    bob = yield user(rvp, "bob")
    reply = yield bob.subscribe("/instmsg/aliases/alice", bob.principal, lifetime=100)
    sub_id = reply.header("Subscription-Id")
    assert reply.header("Subscription-Lifetime") == "100"
    clock.advance(90)
    reply = yield bob.renew("/instmsg/aliases/alice", sub_id, 100)
    assert reply.status == 200
    clock.advance(60)
    reply = yield alice.subscriptions("/instmsg/aliases/alice")
    [entry] = reply.xml().findall("r:subscription", NS)
    assert entry.find("d:timeout", NS).text == "40"
    clock.advance(41)
    reply = yield alice.subscriptions("/instmsg/aliases/alice")
    # bob stays on alice's reverse list (his subscription put her on his
    # forward list), listed without an id; the subscription itself is gone.
    [entry] = reply.xml().findall("r:subscription", NS)
    assert entry.find("r:subscription-id", NS) is None
    assert entry.findtext("a:principal/a:rvp-principal", None, NS) == bob.principal
    reply = yield bob.renew("/instmsg/aliases/alice", sub_id, 100)
    assert reply.status == 412
    reply = yield bob.subscribe("/instmsg/aliases/alice", bob.principal, lifetime=5)
    assert reply.header("Subscription-Lifetime") == "30"
    yield alice.close()
    yield bob.close()


@pytest_twisted.inlineCallbacks
def test_stale_nonce_is_answered_stale(rvp, clock):
    """
    A nonce older than five minutes gets a fresh challenge with
    stale=true; the client answers it without asking its user again.
    """
    alice = yield user(rvp, "alice")
    reply = yield alice.propfind("/instmsg/aliases/bob")
    assert reply.status == 207
    clock.advance(301)
    reply = yield alice.request("PROPFIND", "/instmsg/aliases/bob", {"Depth": "0"}, authenticate=False)
    assert reply.status == 401 and "stale=true" in reply.header("WWW-Authenticate")
    reply = yield alice.propfind("/instmsg/aliases/bob")
    assert reply.status == 207
    yield alice.close()


@pytest_twisted.inlineCallbacks
def test_configured_peer_is_accepted_by_address_only(server):
    """
    Requests from a configured peer's address need no credentials but must
    speak for principals of its domain (403), or for ours with their
    credentials (401); the same request from another address is
    challenged.
    """
    peer_url = "http://127.0.0.1:1"
    rvp = yield start_rvp(server, peers={"other.org": peer_url})
    zed = f"{peer_url}/instmsg/aliases/zed"
    peer = RvpClient(rvp.port, principal=zed)
    reply = yield peer.subscribe("/instmsg/aliases/alice", zed)
    assert reply.status == 207
    assert reply.xml().find(".//r:email", NS).text == "alice@example.com"
    reply = yield peer.request("SUBSCRIBE", "/instmsg/aliases/alice", {
        "Notification-Type": "update/propchange", "Call-Back": zed,
        "RVP-From-Principal": "http://im.third.net/instmsg/aliases/eve"})
    assert reply.status == 403
    # Speaking for one of our own users from the peer's address takes
    # that user's credentials.
    reply = yield peer.request("SUBSCRIBE", "/instmsg/aliases/alice", {
        "Notification-Type": "update/propchange", "Call-Back": zed,
        "RVP-From-Principal": f"http://127.0.0.1:{rvp.port}/instmsg/aliases/bob"})
    assert reply.status == 401
    reply = yield peer.subscribe("/instmsg/aliases/alice", "http://127.0.0.1:2/")
    assert reply.status == 403
    reply = yield peer.request("SUBSCRIBE", "/instmsg/aliases/alice", {
        "Notification-Type": "update/propchange", "Call-Back": zed, "RVP-From-Principal": None})
    assert reply.status == 400
    yield peer.close()
    stranger = RvpClient(rvp.port, principal=zed, bind="127.0.0.2")
    reply = yield stranger.subscribe("/instmsg/aliases/alice", zed)
    assert reply.status == 401
    yield stranger.close()
    yield rvp.stopService()


@pytest_twisted.inlineCallbacks
def test_lapsed_lease_is_fln_for_msn_watchers(server, rvp, clock):
    """
    An MSN user watching an RVP user gets FLN when the RVP user's lease
    lapses (20 minutes by default), with nothing sent by the RVP client.
    """
    from msnclient import go_online, login

    bob = yield login(server.notification_port, "bob@example.com", "pw-bob")
    yield go_online(bob)
    bob.send("ADD 30 FL alice@example.com Alice")
    yield bob.expect(r"ADD 30 FL \d+ alice@example.com Alice( 0)?")
    alice = yield user(rvp, "alice")
    body = (b"<?xml version='1.0'?><d:propertyupdate xmlns:d='DAV:' xmlns:r='http://schemas.microsoft.com/rvp/'>"
            b"<d:set><d:prop><r:state><r:online/></r:state></d:prop></d:set></d:propertyupdate>")
    reply = yield alice.request("PROPPATCH", "/instmsg/aliases/alice", {}, body)
    assert reply.status == 207 and reply.xml().find(".//d:timeout", NS).text == "1200"
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    clock.advance(1199)
    yield bob.expect_silence()
    clock.advance(1)
    yield bob.expect_line("FLN alice@example.com")
    yield alice.close()
    yield bob.disconnect()
