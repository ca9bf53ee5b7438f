"""
The HTTP gateway (C{/gateway/gateway.dll}) for clients that cannot reach
the MSNP ports: each session is an ordinary notification or switchboard
connection whose bytes travel in HTTP requests.

    POST /gateway/gateway.dll?Action=open&Server=NS&IP=host   body: commands
      <- 200, X-MSN-Messenger: SessionID=<id>; GW-IP=<host>
         Content-Type: application/x-msn-messenger, body: what the server
         sent so far
    POST /gateway/gateway.dll?SessionID=<id>                  body: commands
    POST /gateway/gateway.dll?Action=poll&SessionID=<id>      body: empty

A session runs the role's own protocol (with its phases, limits and
errors) over a transport that keeps what the server writes until the next
request collects it.  A session holds at most C{max_gateway_buffer} bytes
for its client (past that it is closed, like a TCP client that stops
reading), is dropped after C{gateway_session_timeout} seconds without a
request, and at most C{max_gateway_sessions} are open at once (503 past
that).  When the connection behind a session closes, the answer that
carries its last bytes says C{Session=close}.
"""

from __future__ import annotations

import secrets
from typing import Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from zope.interface import implementer

from msnp.msn import passport_http

log = Logger()

CONTENT_TYPE = b"application/x-msn-messenger"
# Bodies bigger than this are refused: a client posts a few commands.
MAX_BODY = 64 * 1024


class BufferedTransport:
    """
    The transport under a gateway session's protocol: writes wait in a
    buffer for the next HTTP answer.
    """

    disconnecting = False

    def __init__(self, session: "GatewaySession", peer, host):
        self._session = session
        self._peer = peer
        self._host = host
        self.buffer: list[bytes] = []
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.buffer.append(data)
        self.size += len(data)
        if self.size > self._session.limit:
            log.info("gateway session {id} closed: {size} bytes waiting for the client", id=self._session.session_id, size=self.size)
            self.abortConnection()

    def writeSequence(self, data) -> None:
        for part in data:
            self.write(part)

    def take(self) -> bytes:
        data, self.buffer, self.size = b"".join(self.buffer), [], 0
        return data

    def loseConnection(self) -> None:
        # What is buffered still goes out with the next answer.
        self._end()

    def abortConnection(self) -> None:
        self.buffer, self.size = [], 0
        self._end()

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self.disconnecting = True
            self._session.connection_ended()

    def getPeer(self):
        return self._peer

    def getHost(self):
        return self._host

    # The protocol pauses reading while a command waits on a Deferred; the
    # gateway feeds it request by request, so there is nothing to pause.
    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.abortConnection()

    def registerProducer(self, producer, streaming) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


implementer(ITransport)(BufferedTransport)


class GatewaySession:
    """
    One gateway session: the protocol of its role and what waits for the
    client.
    """

    def __init__(self, gateway: "Gateway", session_id: str, factory, peer, host):
        self.gateway = gateway
        self.session_id = session_id
        self.limit = gateway.config.max_gateway_buffer
        self.transport = BufferedTransport(self, peer, host)
        self.protocol = factory.buildProtocol(peer)
        self.ended = False
        self._expiry = None
        self.protocol.makeConnection(self.transport)
        self.touch()

    def touch(self) -> None:
        """
        A request came: the session lives another timeout from now.
        """
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self.gateway.clock.callLater(self.gateway.config.gateway_session_timeout, self._expired)

    def _expired(self) -> None:
        self._expiry = None
        log.info("gateway session {id} dropped: no request in time", id=self.session_id)
        self.close()

    def feed(self, data: bytes) -> None:
        if data and not self.transport.closed:
            self.protocol.dataReceived(data)

    def connection_ended(self) -> None:
        """
        The protocol closed its side: it is told, and the session ends once
        its last bytes are collected.
        """
        if not self.ended:
            self.ended = True
            # As on TCP, the protocol hears of the close after the call
            # that closed, not inside it.
            self.gateway.clock.callLater(0, self.protocol.connectionLost, Failure(ConnectionDone("closed")))

    def close(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self.transport.abortConnection()
        self.gateway.forget(self)


class Gateway(resource.Resource):
    """
    C{/gateway/gateway.dll}: opens sessions on the notification or
    switchboard factory, feeds them, and answers with what they wrote.
    """

    isLeaf = True

    def __init__(self, config, factories: dict, clock):
        super().__init__()
        self.config = config
        self.factories = factories  # "NS" / "SB" -> protocol factory
        self.clock = clock
        self.sessions: dict[str, GatewaySession] = {}

    def forget(self, session: GatewaySession) -> None:
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.close()

    def _new_id(self) -> str:
        # The official shape (digits.digits): libpurple splits at the dot.
        while True:
            session_id = f"{secrets.randbelow(9 * 10**9) + 10**9}.{secrets.randbelow(9 * 10**4) + 10**4}"
            if session_id not in self.sessions:
                return session_id

    def render_GET(self, request):
        return self._refuse(request, http.NOT_ALLOWED, "GET instead of POST")

    def render_POST(self, request):
        args = request.args
        action = _arg(args, b"Action")
        session_id = _arg(args, b"SessionID")
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return self._refuse(request, http.REQUEST_ENTITY_TOO_LARGE, "body too large")
        if action == "open":
            server_kind = _arg(args, b"Server") or "NS"
            factory = self.factories.get(server_kind)
            if factory is None:
                return self._refuse(request, http.BAD_REQUEST, f"no server {server_kind!r}")
            if len(self.sessions) >= self.config.max_gateway_sessions:
                return self._refuse(request, http.SERVICE_UNAVAILABLE, "too many gateway sessions")
            peer = request.getClientAddress()
            if not isinstance(peer, IPv4Address):
                peer = IPv4Address("TCP", "127.0.0.1", 0)
            session = GatewaySession(self, self._new_id(), factory, peer, request.getHost())
            self.sessions[session.session_id] = session
            log.info("gateway session {id} opened to {kind} for {peer}", id=session.session_id, kind=server_kind, peer=peer.host)
        elif action in (None, "poll"):
            session = self.sessions.get(session_id or "")
            if session is None:
                return self._refuse(request, http.BAD_REQUEST, "unknown or expired session")
            if action == "poll" and body:
                return self._refuse(request, http.BAD_REQUEST, "poll with a body")
        else:
            return self._refuse(request, http.BAD_REQUEST, f"unknown action {action!r}")
        session.touch()
        session.feed(body)
        data = session.transport.take()
        fields = [f"SessionID={session.session_id}", f"GW-IP={self.config.public_host}"]
        if session.ended:
            fields.append("Session=close")
            session.close()
        request.setHeader(b"X-MSN-Messenger", "; ".join(fields).encode("ascii"))
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        request.setHeader(b"Content-Length", b"%d" % len(data))
        request.setHeader(b"Cache-Control", b"no-cache")
        return data

    def _refuse(self, request, code: int, reason: str) -> bytes:
        passport_http.refuse(request, reason)
        request.setResponseCode(code)
        request.setHeader(b"Content-Length", b"0")
        return b""


def _arg(args: dict, name: bytes) -> Optional[str]:
    values = args.get(name)
    if not values:
        return None
    try:
        return values[0].decode("ascii")
    except UnicodeDecodeError:
        return None


def make_site(gateway: Gateway) -> server.Site:
    """
    The gateway's HTTP site: C{/gateway/gateway.dll} (absolute-form
    targets too, as libpurple writes them), bodies bounded, refusals
    logged once.
    """
    root = resource.Resource()
    folder = resource.Resource()
    folder.putChild(b"gateway.dll", gateway)
    root.putChild(b"gateway", folder)
    site = passport_http.PassportSite(root)
    site.displayTracebacks = False
    return site
