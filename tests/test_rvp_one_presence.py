"""
One presence per user over real sockets: alice signed in with an MSN
client and an RVP client at once, bob watching her from MSN and carol from
RVP.  Both watchers see the same state after every change: the state set
last wins, an idle RVP client does not make an active MSN user idle, and
signing out of one side shows the other side's state, never FLN while
alice is still online somewhere.
"""

import pytest_twisted
from twisted.internet import defer

from msnclient import go_online, login
from rvpclient import state_in
import rvpserver

ALICE = "alice@example.com"
BOB = "bob@example.com"
ALICE_PATH = "/instmsg/aliases/alice"


@defer.inlineCallbacks
def rvp_user(rvp, alias, state):
    """
    As L{rvpserver.rvp_user}, also returning the view id of the state set.
    """
    client, node = yield rvpserver.rvp_user(rvp, alias, None)
    reply = yield client.set_state(f"/instmsg/aliases/{alias}", state)
    assert reply.status == 207
    view = reply.xml().find(".//{http://schemas.microsoft.com/rvp/}view-id").text
    return client, node, view


class Watchers:
    """
    bob (MSN) and carol (RVP) watching alice; C{sees} checks the next thing
    each is told.
    """

    def __init__(self, bob, carol_node):
        self.bob = bob
        self.carol_node = carol_node
        self.told = 0

    @defer.inlineCallbacks
    def sees(self, msn_line, rvp_state):
        yield self.bob.expect_line(msn_line)
        self.told += 1
        notifications = yield self.carol_node.wait_for(self.told)
        assert state_in(notifications[-1].xml()) == rvp_state
        assert len(self.carol_node.received) == self.told


@defer.inlineCallbacks
def watchers(server, rvp):
    bob = yield login(server.notification_port, BOB, "pw-bob")
    yield go_online(bob)
    bob.send("ADD 30 FL alice@example.com Alice")
    yield bob.expect(r"ADD 30 FL \d+ alice@example.com Alice( 0)?")
    carol, carol_node, _ = yield rvp_user(rvp, "carol", "online")
    reply = yield carol.subscribe(carol.url("alice"), carol.principal)
    assert state_in(reply.xml()) == "offline"
    return Watchers(bob, carol_node), carol


@defer.inlineCallbacks
def msn_alice(server, status):
    alice = yield login(server.notification_port, ALICE, "pw-alice")
    yield go_online(alice, status=status)
    return alice


@pytest_twisted.inlineCallbacks
def test_msn_signing_out_shows_the_rvp_state(server, rvp):
    """
    alice online on MSN, then busy on RVP, then away on MSN: each watcher
    sees each in turn.  Her RVP client going idle changes nothing (she is
    active on MSN).  Signing out of MSN shows her RVP state (idle), not
    FLN; only signing out of RVP too is FLN / offline.
    """
    seen, carol = yield watchers(server, rvp)
    alice_msn = yield msn_alice(server, "NLN")
    yield seen.sees("NLN NLN alice@example.com Alice", "online")
    alice_rvp, alice_node, view = yield rvp_user(rvp, "alice", "busy")
    yield seen.sees("NLN BSY alice@example.com Alice", "busy")
    alice_msn.send("CHG 40 AWY")
    yield alice_msn.expect(r"CHG 40 AWY( .*)?")
    yield seen.sees("NLN AWY alice@example.com Alice", "away")
    reply = yield alice_rvp.set_state(ALICE_PATH, "idle", view_id=view)
    assert reply.status == 207
    alice_msn.send("OUT")
    yield alice_msn.wait_closed()
    # The next line is the idle RVP state: the idle above told nobody.
    yield seen.sees("NLN IDL alice@example.com Alice", "idle")
    yield alice_rvp.set_state(ALICE_PATH, "online", view_id=view)
    yield seen.sees("NLN NLN alice@example.com Alice", "online")
    yield alice_rvp.set_state(ALICE_PATH, "offline", view_id=view)
    yield seen.sees("FLN alice@example.com", "offline")
    yield rvpserver.finish(seen.bob, alice_rvp, carol, alice_node, seen.carol_node)


@pytest_twisted.inlineCallbacks
def test_rvp_signing_out_keeps_the_msn_state(server, rvp):
    """
    alice online on RVP, then busy on MSN (set last: shown).  Her RVP
    client signing out changes nothing for the watchers; appear-offline on
    MSN hides her from both; signing out of MSN leaves her offline.
    """
    seen, carol = yield watchers(server, rvp)
    alice_rvp, alice_node, view = yield rvp_user(rvp, "alice", "online")
    yield seen.sees("NLN NLN alice@example.com Alice", "online")
    alice_msn = yield msn_alice(server, "BSY")
    yield seen.sees("NLN BSY alice@example.com Alice", "busy")
    reply = yield alice_rvp.set_state(ALICE_PATH, "offline", view_id=view)
    assert reply.status == 207
    reply = yield alice_rvp.propfind(ALICE_PATH, ["r:state"])
    assert state_in(reply.xml()) == "busy"
    alice_msn.send("CHG 41 HDN")
    yield alice_msn.expect(r"CHG 41 HDN( .*)?")
    # The next line is FLN: the RVP sign-out above told nobody.
    yield seen.sees("FLN alice@example.com", "offline")
    alice_msn.send("OUT")
    yield alice_msn.wait_closed()
    alice_msn = yield msn_alice(server, "LUN")
    yield seen.sees("NLN LUN alice@example.com Alice", "at-lunch")
    alice_msn.send("OUT")
    yield alice_msn.wait_closed()
    yield seen.sees("FLN alice@example.com", "offline")
    yield rvpserver.finish(seen.bob, alice_rvp, carol, alice_node, seen.carol_node)
