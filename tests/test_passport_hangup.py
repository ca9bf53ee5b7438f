"""
A Passport client that hangs up while its password is being checked: when
the check finishes the answer is dropped quietly (learnt through the
request's public C{notifyFinish}), with no error from writing to or
finishing a request whose connection is gone.
"""

from __future__ import annotations

import gc

import pytest
import pytest_twisted
from twisted.cred.credentials import IUsernamePassword
from twisted.internet import defer, reactor, tcp
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import globalLogPublisher

from msnp.config import ServerConfig
from msnp.msn import passport
from msnp.msn.auth import PassportTickets
from test_passport_rst import rst_envelope
from twn import authorization


class HeldChecker:
    """
    A checker whose answers the test gives by hand.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self):
        self.pending: list[defer.Deferred] = []

    def requestAvatarId(self, credentials):
        d = defer.Deferred()
        self.pending.append(d)
        return d


class Requester(Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.request)
        self.factory.connected.callback(self)


def until(predicate, timeout: float = 5.0) -> defer.Deferred:
    deadline = reactor.seconds() + timeout
    d = defer.Deferred()

    def poll():
        if predicate():
            d.callback(None)
        elif reactor.seconds() > deadline:
            d.errback(AssertionError("condition never held"))
        else:
            reactor.callLater(0.005, poll)

    poll()
    return d


def login2_request() -> bytes:
    return (
        b"GET /login2.srf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
        + authorization("alice@example.com", "pw-alice")
        + b"\r\n\r\n"
    )


def rst_request() -> bytes:
    body = rst_envelope("alice@example.com", "pw-alice")
    return b"POST /RST.srf HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("request_bytes", [login2_request(), rst_request()], ids=["login2", "rst"])
@pytest_twisted.inlineCallbacks
def test_answer_after_hangup_is_dropped(request_bytes):
    """
    login2.srf and RST.srf: the client hangs up before the checker
    answers; the late answer logs no error.
    """
    checker = HeldChecker()
    site = passport.make_site(ServerConfig(), checker, PassportTickets(60, reactor.seconds))
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    errors = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        factory = ClientFactory.forProtocol(Requester)
        factory.noisy = False
        factory.request = request_bytes
        factory.connected = defer.Deferred()
        reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        client = yield factory.connected
        yield until(lambda: checker.pending)
        client.transport.loseConnection()

        def server_side_gone():
            number = port.getHost().port
            return not any(isinstance(r, tcp.Server) and r.getHost().port == number for r in reactor.getReaders())

        yield until(server_side_gone)
        checker.pending.pop().callback("alice@example.com")
        # An error in the answer would surface as an unhandled failure of
        # that Deferred, reported when it is collected.
        gc.collect()
        assert errors == []
    finally:
        globalLogPublisher.removeObserver(observe)
        yield port.stopListening()
