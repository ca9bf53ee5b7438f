"""
An RVP front-end on 127.0.0.1 (port 0) beside the fixture server, for the
RVP tests.
"""

from __future__ import annotations

from twisted.internet import defer, reactor

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
