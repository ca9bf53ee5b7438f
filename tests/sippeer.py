"""
A SIP peer for the tests, written from RFC 3261/3265/3428 and independent
of msnp's own codec: it writes messages as text, reads them with its own
small parser, and speaks UDP, TCP or TLS on 127.0.0.1.  Tests use it as the
remote domain's server (partner.example): it sends requests and waits for
their final response, and queues the requests it receives for the test
to answer.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol

DEFAULT_TIMEOUT = 10.0
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length", "c": "content-type", "o": "event"}


class PeerMessage:
    """
    One message as the peer read it: C{first} line, C{headers} as a list
    of (lower-case name, value), C{body} bytes, and where it came from.
    """

    def __init__(self, first: str, headers: list, body: bytes, origin=None):
        self.first = first
        self.headers = headers
        self.body = body
        self.origin = origin

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.first.split(" ")[0]

    @property
    def uri(self) -> str:
        return self.first.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.first.split(" ")[1])

    def get(self, name: str, default=None):
        for key, value in self.headers:
            if key == name.lower():
                return value
        return default

    def all(self, name: str) -> list:
        return [value for key, value in self.headers if key == name.lower()]

    def tag(self, name: str) -> Optional[str]:
        match = re.search(r";\s*tag=([^;>\s]+)", self.get(name, "").split(">")[-1])
        return match.group(1) if match else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return f"<PeerMessage {self.first!r}>"


def parse(data: bytes) -> tuple[Optional[PeerMessage], bytes]:
    """
    One message from the front of C{data}, and the rest; (None, data) when
    it is not complete yet.
    """
    while data.startswith(b"\r\n"):
        data = data[2:]
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, data
    lines = data[:end].decode("utf-8").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.append((_COMPACT.get(name, name), value.strip()))
    length = int(dict(headers).get("content-length", "0"))
    rest = data[end + 4 :]
    if len(rest) < length:
        return None, data
    return PeerMessage(lines[0], headers, rest[:length]), rest[length:]


def random_token() -> str:
    return os.urandom(6).hex()


class _Udp(DatagramProtocol):
    def __init__(self, peer):
        self.peer = peer

    def datagramReceived(self, data, address):
        message, _ = parse(data)
        if message is not None:
            message.origin = ("udp", address, None)
            self.peer._received(message)


class _Stream(Protocol):
    def __init__(self, peer):
        self.peer = peer
        self.buffer = b""
        self.closed = defer.Deferred()

    def connectionMade(self):
        self.peer.connections.append(self)

    def dataReceived(self, data):
        self.buffer += data
        while True:
            message, self.buffer = parse(self.buffer)
            if message is None:
                return
            message.origin = ("tcp", None, self)
            self.peer._received(message)

    def connectionLost(self, reason=None):
        if self in self.peer.connections:
            self.peer.connections.remove(self)
        self.closed.callback(None)


class SipPeer:
    """
    The remote domain's SIP server, as a test drives it.
    """

    def __init__(self, transport: str = "udp", domain: str = "partner.example", server_tls=None, client_tls=None):
        self.transport = transport
        self.domain = domain
        # For "tls": Twisted TLS options for listening and for connecting.
        self.server_tls = server_tls
        self.client_tls = client_tls
        self.port: Optional[int] = None
        self.target: Optional[tuple[str, int]] = None  # the edge under test
        self.connections: list = []
        self._listener = None
        self._client: Optional[_Stream] = None
        self._waiting_responses: dict = {}
        self._requests: list = []
        self._request_waiters: list = []
        self.received: list = []
        self.auto_answer: dict = {}  # method -> status answered without the test

    def start(self, target: tuple[str, int]) -> None:
        self.target = target
        if self.transport == "udp":
            self._listener = reactor.listenUDP(0, _Udp(self), interface="127.0.0.1")
        elif self.transport == "tls":
            factory = Factory.forProtocol(lambda: _Stream(self))
            self._listener = reactor.listenSSL(0, factory, self.server_tls, interface="127.0.0.1")
        else:
            factory = Factory.forProtocol(lambda: _Stream(self))
            self._listener = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.port = self._listener.getHost().port

    @defer.inlineCallbacks
    def stop(self):
        closing = [c.closed for c in self.connections]
        for connection in list(self.connections):
            connection.transport.loseConnection()
        yield defer.DeferredList(closing)
        if self._listener is not None:
            yield self._listener.stopListening()

    @property
    def via_transport(self) -> str:
        return self.transport.upper()

    # Sending

    @defer.inlineCallbacks
    def _write(self, data: bytes, origin=None):
        if self.transport == "udp":
            address = origin[1] if origin and origin[1] else self.target
            self._listener.write(data, address)
            return
        connection = origin[2] if origin and origin[2] is not None and origin[2].transport.connected else None
        if connection is None:
            if self._client is None or not self._client.transport.connected:
                if self.transport == "tls":
                    endpoint = SSL4ClientEndpoint(reactor, self.target[0], self.target[1], self.client_tls)
                else:
                    endpoint = TCP4ClientEndpoint(reactor, self.target[0], self.target[1])
                self._client = yield connectProtocol(endpoint, _Stream(self))
            connection = self._client
        connection.transport.write(data)

    def build(self, method: str, uri: str, headers: list, body: bytes = b"", branch: Optional[str] = None) -> tuple[bytes, str]:
        branch = branch or "z9hG4bK" + random_token()
        lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/{self.via_transport} 127.0.0.1:{self.port};branch={branch};rport"]
        names = {name.lower() for name, _ in headers}
        if "max-forwards" not in names:
            lines.append("Max-Forwards: 70")
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body, branch

    def request(self, method: str, uri: str, headers: list, body: bytes = b"", timeout: float = DEFAULT_TIMEOUT) -> defer.Deferred:
        """
        Send a request; fires with its final response (1xx are skipped).
        """
        data, branch = self.build(method, uri, headers, body)
        d = defer.Deferred()
        self._waiting_responses[branch] = d
        self._write(data)
        timer = reactor.callLater(timeout, self._response_timeout, branch)
        d.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        return d

    def _response_timeout(self, branch):
        d = self._waiting_responses.pop(branch, None)
        if d is not None:
            d.errback(AssertionError("no final response"))

    def send_raw(self, data: bytes) -> None:
        self._write(data)

    def respond(self, request: PeerMessage, status: int, reason: str = "OK", headers: list = (), body: bytes = b"", to_tag: Optional[str] = None) -> str:
        """
        Answer a received request; returns the To tag used.
        """
        to = request.get("to")
        tag = request.tag("to") or to_tag or random_token()
        if request.tag("to") is None and status > 100:
            to = f"{to};tag={tag}"
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {value}" for value in request.all("via")]
        lines += [f"From: {request.get('from')}", f"To: {to}", f"Call-ID: {request.get('call-id')}", f"CSeq: {request.get('cseq')}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body, request.origin)
        return tag

    # Receiving

    def _received(self, message: PeerMessage) -> None:
        self.received.append(message)
        if not message.is_request:
            if message.status < 200:
                return
            branch = re.search(r"branch=([^;,\s]+)", message.get("via", ""))
            d = self._waiting_responses.pop(branch.group(1), None) if branch else None
            if d is not None:
                d.callback(message)
            return
        if message.method == "ACK":
            self._requests.append(message)
            self._wake()
            return
        status = self.auto_answer.get(message.method)
        if status is not None:
            self.respond(message, status)
        self._requests.append(message)
        self._wake()

    def _wake(self) -> None:
        waiters, self._request_waiters = self._request_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    @defer.inlineCallbacks
    def next_request(self, method: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT):
        """
        The next received request (of C{method}), in arrival order;
        requests of other methods stay queued.
        """
        deadline = reactor.seconds() + timeout
        while True:
            for index, message in enumerate(self._requests):
                if method is None or message.method == method:
                    del self._requests[index]
                    return message
            remaining = deadline - reactor.seconds()
            if remaining <= 0:
                raise AssertionError(f"no {method or 'request'} arrived; got {self._requests}")
            waiter = defer.Deferred()
            self._request_waiters.append(waiter)
            timer = reactor.callLater(remaining, lambda: waiter.called or waiter.callback(None))
            yield waiter
            if timer.active():
                timer.cancel()

    @defer.inlineCallbacks
    def expect_no_request(self, method: str, seconds: float = 0.3):
        d = defer.Deferred()
        reactor.callLater(seconds, d.callback, None)
        yield d
        assert not [m for m in self._requests if m.method == method], self._requests


class Dialog:
    """
    The peer's side of a dialog, enough to send in-dialog requests.
    """

    def __init__(self, peer: SipPeer, call_id: str, local: str, remote: str, target: str, cseq: int = 1):
        self.peer = peer
        self.call_id = call_id
        self.local = local  # our From, with tag
        self.remote = remote  # their To, with tag
        self.target = target
        self.cseq = cseq

    def request(self, method: str, headers: list = (), body: bytes = b"", cseq: Optional[int] = None) -> defer.Deferred:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        base = [("From", self.local), ("To", self.remote), ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}")]
        return self.peer.request(method, self.target, base + list(headers), body)

    def ack(self, cseq: int) -> None:
        base = [("From", self.local), ("To", self.remote), ("Call-ID", self.call_id), ("CSeq", f"{cseq} ACK")]
        data, _ = self.peer.build("ACK", self.target, base)
        self.peer.send_raw(data)


def contact_uri(message: PeerMessage) -> str:
    return re.search(r"<([^>]+)>", message.get("contact")).group(1)
