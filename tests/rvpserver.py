"""
An RVP front-end on 127.0.0.1 (port 0) beside the fixture server, for the
RVP tests.
"""

from __future__ import annotations

from twisted.internet import defer, reactor

from rvpclient import LocalNode, RvpClient
from msnp.rvp.bridge import MessengerHome
from msnp.rvp.service import RvpService


@defer.inlineCallbacks
def start_rvp(running, domain="example.com", peers=None, clock=None, home=None):
    """
    Start an RVP service over C{running}'s store; C{running} is a
    conftest RunningServer.
    """
    service = RvpService(
        reactor, "tcp:0:interface=127.0.0.1", home or MessengerHome(running.service.messenger, running.service.switchboard), domain, "127.0.0.1", peers or {}, clock
    )
    service.startService()
    yield service._resolving
    return service


@defer.inlineCallbacks
def rvp_user(rvp, alias, state="online"):
    """
    An RVP client of C{alias} logged in with a call-back node of its own,
    and in C{state} unless that is None; returns the client and the node.
    """
    client = RvpClient(rvp.port, username=alias, password=f"pw-{alias}",
                       principal=f"http://127.0.0.1:{rvp.port}/instmsg/aliases/{alias}")
    node = yield LocalNode().start()
    reply = yield client.login_subscribe(alias, node.url)
    assert reply.status == 200
    if state is not None:
        reply = yield client.set_state(f"/instmsg/aliases/{alias}", state)
        assert reply.status == 207
    return client, node


@defer.inlineCallbacks
def finish(*things):
    """
    Close what a test opened, in order: RVP clients, call-back nodes and
    MSN clients.
    """
    for thing in things:
        if isinstance(thing, LocalNode):
            yield thing.stop()
        elif isinstance(thing, RvpClient):
            yield thing.close()
        else:
            yield thing.disconnect()
