"""
How the Redis directory connects: every connection retried at most
L{RECONNECT_MAX_DELAY} apart, and with a C{redis+sentinel://} URL, to the
primary that the Sentinel set names (L{SentinelSet}, L{PrimaryEndpoint}).
txredisapi imports Twisted's global reactor when it is imported, as
L{msnp.directory.redis} says.
"""

from __future__ import annotations

from typing import Optional

import txredisapi
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

# The reply timeout of every command, in seconds (above the blocking wait of
# an inbox read).
REPLY_TIMEOUT = 5


# Seconds between attempts to reconnect at most (txredisapi's default, 10,
# is longer than a lease: service would resume long after Redis did).
RECONNECT_MAX_DELAY = 1.0


def tune_reconnecting(connection):
    # txredisapi has no argument for it; its factory reads the attribute
    # on every retry.
    connection._factory.maxDelay = RECONNECT_MAX_DELAY
    return connection


class SentinelSet(txredisapi.Sentinel):
    """
    The Sentinels of a C{redis+sentinel://} URL.  The primary is the
    address the first Sentinel to answer C{SENTINEL
    get-master-addr-by-name} gives; a connection then checks with C{ROLE}
    that it reached a primary (txredisapi's Sentinel protocol), else tries
    again.  One question at a time per Sentinel: a caller while one is
    asked waits for its answer, so a Sentinel out of reach does not pile up
    unanswered questions.
    """

    discovery_timeout = REPLY_TIMEOUT

    def __init__(self, addresses, reactor):
        super().__init__(addresses, replyTimeout=REPLY_TIMEOUT, connectTimeout=REPLY_TIMEOUT, convertNumbers=False)
        for sentinel in self.sentinels:
            tune_reconnecting(sentinel)
        self._reactor = reactor
        # For each Sentinel asked now, who waits for its answer.
        self._waiting: list[Optional[list]] = [None] * len(self.sentinels)

    def discover_master(self, service_name):
        result = Deferred()
        unanswered = [len(self.sentinels)]

        def give_up(reason):
            if not result.called:
                result.errback(txredisapi.MasterNotFoundError(f"no Sentinel named a primary for {service_name} ({reason})"))

        def answered(reply):
            if result.called:
                return
            if reply and len(reply) == 2:
                result.callback((str(reply[0]), int(reply[1])))
                return
            unanswered[0] -= 1
            if unanswered[0] == 0:
                give_up("none knows it")

        for index, sentinel in enumerate(self.sentinels):
            if self._waiting[index] is None:
                self._waiting[index] = []
                asking = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", service_name)
                asking.addCallbacks(self._answered, self._answered, callbackArgs=(index,), errbackArgs=(index,))
            self._waiting[index].append(answered)
        timer = self._reactor.callLater(self.discovery_timeout, give_up, "no answer")

        def done(outcome):
            if timer.active():
                timer.cancel()
            return outcome

        return result.addBoth(done)

    def _answered(self, reply, index):
        waiting, self._waiting[index] = self._waiting[index] or [], None
        if isinstance(reply, Failure):
            reply = None
        for answered in waiting:
            answered(reply)


class PrimaryEndpoint:
    """
    Connects to the primary the Sentinels name, asking them before every
    connection; C{address} is the one the last connection went to.
    """

    def __init__(self, sentinels: SentinelSet, service: str, reactor):
        self.sentinels = sentinels
        self.service = service
        self.address: Optional[tuple[str, int]] = None
        self._reactor = reactor

    def connect(self, protocol_factory):
        from twisted.internet.endpoints import HostnameEndpoint

        def found(address):
            self.address = address
            endpoint = HostnameEndpoint(self._reactor, address[0], address[1], timeout=REPLY_TIMEOUT)
            return endpoint.connect(protocol_factory)

        return self.sentinels.discover_master(self.service).addCallback(found)


class PrimaryConnections(txredisapi.SentinelConnectionFactory):
    """
    Connections to the primary of a Sentinel set, retried at most a
    second apart (see L{RECONNECT_MAX_DELAY}).
    """

    maxDelay = RECONNECT_MAX_DELAY
