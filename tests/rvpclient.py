"""
An RVP client for tests, written from the protocol reference: raw HTTP/1.1
over one keep-alive TCP connection, Digest (MD5, qop=auth) answered from
the 401 challenge, request bodies shaped like the reference's examples,
and a local node (the client's own listener) that records the NOTIFYs the
server sends.  Responses are read by Content-Length and their XML checked
with the standard library's ElementTree, not with the server's code.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from typing import Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

DAV = "DAV:"
RVP = "http://schemas.microsoft.com/rvp/"
ACLNS = "http://schemas.microsoft.com/rvp/acl/"
NS = {"d": DAV, "r": RVP, "a": ACLNS}
DECLS = "xmlns:d='DAV:' xmlns:r='http://schemas.microsoft.com/rvp/' xmlns:a='http://schemas.microsoft.com/rvp/acl/'"
TIMEOUT = 5.0


class HttpReply:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        for key, value in self.header_list:
            if key.lower() == name.lower():
                return value
        return None

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def __repr__(self) -> str:
        return f"<HttpReply {self.status} {self.reason} {self.body[:200]!r}>"


def _read_message(buffer: bytearray, is_request: bool, bodyless_without_length: bool = False):
    """
    One HTTP message from the front of C{buffer}: (start line parts,
    headers, body) or None when incomplete.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    length = 0
    for name, value in headers:
        if name.lower() == "content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return head[0], headers, body


class _Connection(Protocol):
    def __init__(self):
        self.buffer = bytearray()
        self.waiting: list[defer.Deferred] = []
        self.replies: list[HttpReply] = []
        self.closed = defer.Deferred()
        self.is_closed = False

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            message = _read_message(self.buffer, False)
            if message is None:
                break
            start, headers, body = message
            _, status, reason = start.split(" ", 2)
            self.replies.append(HttpReply(int(status), reason, headers, body))
        self._wake()

    def _wake(self) -> None:
        while self.waiting and (self.replies or self.is_closed):
            d = self.waiting.pop(0)
            if self.replies:
                d.callback(self.replies.pop(0))
            else:
                d.errback(ConnectionError("closed before a reply"))

    def next_reply(self) -> defer.Deferred:
        d = defer.Deferred()
        self.waiting.append(d)
        self._wake()
        return d.addTimeout(TIMEOUT, reactor)

    def connectionLost(self, reason) -> None:
        self.is_closed = True
        self._wake()
        self.closed.callback(None)


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def parse_challenge(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "digest", header
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'([A-Za-z-]+)=(?:"([^"]*)"|([^,\s]*))', rest)}


class RvpClient:
    """
    One user's connection to an RVP server.  C{username} is what Digest
    carries (handle, alias or DOMAIN\\alias); C{principal} the user's URL.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", username: Optional[str] = None,
                 password: Optional[str] = None, principal: Optional[str] = None, bind: Optional[str] = None):
        self.port = port
        self.host = host
        self.username = username
        self.password = password
        self.principal = principal
        self.bind = bind
        self.connection: Optional[_Connection] = None
        self.challenge: Optional[dict[str, str]] = None
        self.nc = 0

    @defer.inlineCallbacks
    def connect(self):
        bind = (self.bind, 0) if self.bind else None
        endpoint = TCP4ClientEndpoint(reactor, self.host, self.port, timeout=TIMEOUT, bindAddress=bind)
        self.connection = yield connectProtocol(endpoint, _Connection())
        return self

    def url(self, alias: str, port: Optional[int] = None) -> str:
        return f"http://{self.host}:{port or self.port}/instmsg/aliases/{alias}"

    def send_raw(self, data: bytes) -> defer.Deferred:
        self.connection.transport.write(data)
        return self.connection.next_reply()

    def _authorization(self, method: str, target: str) -> Optional[str]:
        if self.challenge is None or self.username is None:
            return None
        self.nc += 1
        realm, nonce = self.challenge["realm"], self.challenge["nonce"]
        cnonce = os.urandom(8).hex()
        nc = "%08x" % self.nc
        ha1 = md5(f"{self.username}:{realm}:{self.password}")
        ha2 = md5(f"{method}:{target}")
        answer = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.username}", realm="{realm}", nonce="{nonce}", uri="{target}", '
                f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{answer}", algorithm=MD5')

    def _render(self, method: str, target: str, headers: dict, body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}", "RVP-Notifications-Version: 0.2"]
        if self.principal is not None and "RVP-From-Principal" not in headers:
            lines.append(f"RVP-From-Principal: {self.principal}")
        authorization = self._authorization(method, target)
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        for name, value in headers.items():
            if value is not None:
                lines.append(f"{name}: {value}")
        if body:
            lines.append("Content-Type: text/xml")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body

    @defer.inlineCallbacks
    def request(self, method: str, target: str, headers: Optional[dict] = None, body: bytes = b"", authenticate: bool = True):
        """
        Send a request; on a 401 answer the Digest challenge once and send
        it again (as a real client does).
        """
        headers = dict(headers or {})
        if self.connection is None or self.connection.is_closed:
            yield self.connect()
        reply = yield self.send_raw(self._render(method, target, headers, body))
        if reply.status == 401 and authenticate and self.username is not None:
            self.challenge = parse_challenge(reply.header("WWW-Authenticate"))
            self.nc = 0
            if self.connection.is_closed:
                yield self.connect()
            reply = yield self.send_raw(self._render(method, target, headers, body))
        return reply

    def close(self) -> defer.Deferred:
        if self.connection is None or self.connection.is_closed:
            return defer.succeed(None)
        self.connection.transport.loseConnection()
        return self.connection.closed

    # The methods, shaped as in the reference

    def login_subscribe(self, alias: str, callback: str, lifetime: int = 14400):
        return self.request("SUBSCRIBE", f"/instmsg/aliases/{alias}", {
            "Notification-Type": "pragma/notify", "Call-Back": callback, "Subscription-Lifetime": str(lifetime)})

    def subscribe(self, url_or_path: str, callback: str, lifetime: Optional[int] = 14400):
        return self.request("SUBSCRIBE", url_or_path, {
            "Notification-Type": "update/propchange", "Call-Back": callback,
            "Subscription-Lifetime": str(lifetime) if lifetime is not None else None})

    def renew(self, path: str, sub_id: str, lifetime: int = 14400):
        return self.request("SUBSCRIBE", path, {"Subscription-Id": sub_id, "Subscription-Lifetime": str(lifetime)})

    def unsubscribe(self, path: str, sub_id: str):
        return self.request("UNSUBSCRIBE", path, {"Subscription-Id": sub_id})

    def subscriptions(self, path: str, kind: Optional[str] = "update/propchange"):
        return self.request("SUBSCRIPTIONS", path, {"Notification-Type": kind})

    def set_state(self, path: str, state: str, timeout: Optional[int] = 1200, view_id: Optional[str] = None):
        timeout_xml = f"<d:timeout>{timeout}</d:timeout>" if timeout is not None else ""
        view = f"<r:view-id>{view_id}</r:view-id>" if view_id is not None else ""
        body = (f"<?xml version=\"1.0\"?>\n<d:propertyupdate {DECLS}><d:set><d:prop><r:state>"
                f"<r:leased-value><r:value><r:{state}/></r:value><r:default-value><r:offline/></r:default-value>"
                f"{timeout_xml}</r:leased-value>{view}</r:state></d:prop></d:set></d:propertyupdate>")
        return self.request("PROPPATCH", path, {}, body.encode())

    def propfind(self, path: str, props: Optional[list[str]] = None, depth: Optional[str] = "0"):
        if props is None:
            inner = "<d:allprop/>"
        else:
            inner = "<d:prop>" + "".join(f"<{p}/>" for p in props) + "</d:prop>"
        body = f"<?xml version=\"1.0\"?>\n<d:propfind {DECLS}>{inner}</d:propfind>"
        return self.request("PROPFIND", path, {"Depth": depth}, body.encode())

    def send_message(self, path: str, to_url: str, text: str, session_id: str = "{79FC61B5-1234-1234-8A10-941F33CA4C90}",
                     ack: str = "DeepOr", content_type: str = "text/plain; charset=UTF-8", extra: str = ""):
        mime = (f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{extra}"
                f"Session-Id: {session_id}\r\n\r\n{text}")
        body = (f"<?xml version=\"1.0\"?>\n<r:notification {DECLS}><r:message>"
                f"<r:notification-from><r:contact><d:href>{self.principal}</d:href>"
                f"<r:description>me</r:description></r:contact></r:notification-from>"
                f"<r:notification-to><r:contact><d:href>{to_url}</d:href><r:description/></r:contact></r:notification-to>"
                f"<r:msgbody><r:mime-data><![CDATA[{mime.replace(']]>', ']]]]><![CDATA[>')}]]></r:mime-data></r:msgbody></r:message></r:notification>")
        return self.request("NOTIFY", path, {"RVP-Ack-Type": ack, "RVP-Hop-Count": "1"}, body.encode())

    def read_acl(self, path: str):
        return self.request("ACL", path)

    def write_acl(self, path: str, aces: str):
        body = f"<?xml version=\"1.0\"?>\n<a:rvpacl {DECLS}><a:acl><a:inheritance>none</a:inheritance>{aces}</a:acl></a:rvpacl>"
        return self.request("ACL", path, {}, body.encode())


def ace(principal: Optional[str], grant=(), deny=(), credentials=("assertion", "digest")) -> str:
    who = "<a:allprincipals/>" if principal is None else f"<a:rvp-principal>{principal}</a:rvp-principal>"
    creds = "" if credentials is None else "<a:credentials>" + "".join(f"<a:{c}/>" for c in credentials) + "</a:credentials>"
    return (f"<a:ace><a:principal>{who}{creds}</a:principal><a:grant>{''.join(f'<a:{g}/>' for g in grant)}</a:grant>"
            f"<a:deny>{''.join(f'<a:{d}/>' for d in deny)}</a:deny></a:ace>")


def state_in(element: ET.Element) -> Optional[str]:
    """
    The status element inside the first r:state of a 207 or NOTIFY body.
    """
    state = element.find(".//r:state", NS)
    if state is None:
        return None
    first = list(state)[0]
    if first.tag == f"{{{RVP}}}leased-value":
        first = list(first.find("r:value", NS))[0]
    return first.tag.split("}")[1]


class Notification:
    def __init__(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def mime(self) -> str:
        return self.xml().find(".//r:mime-data", NS).text


class _NodeConnection(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.buffer = getattr(self, "buffer", bytearray()) + data
        while True:
            message = _read_message(self.buffer, True)
            if message is None:
                return
            start, headers, body = message
            method, target, _ = start.split(" ")
            self.factory.node.record(Notification(method, target, headers, body))
            status = self.factory.node.status
            reply = f"HTTP/1.1 {status} {'OK' if status < 300 else 'Refused'}\r\nContent-Length: 0\r\n\r\n"
            self.transport.write(reply.encode())

    def connectionMade(self) -> None:
        self.factory.node.connections.add(self)

    def connectionLost(self, reason) -> None:
        self.factory.node.connections.discard(self)


class LocalNode:
    """
    The client's own listener: records every NOTIFY and answers C{status}.
    """

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[Notification] = []
        self.waiting: list[tuple[int, defer.Deferred]] = []
        self.port = None
        self.connections: set = set()

    @defer.inlineCallbacks
    def start(self, interface: str = "127.0.0.1"):
        factory = Factory.forProtocol(_NodeConnection)
        factory.node = self
        factory.noisy = False
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface=interface).listen(factory)
        return self

    @property
    def url(self) -> str:
        address = self.port.getHost()
        return f"http://{address.host}:{address.port}"

    def record(self, notification: Notification) -> None:
        self.received.append(notification)
        self._wake()

    def _wake(self) -> None:
        for entry in list(self.waiting):
            count, d = entry
            if len(self.received) >= count:
                self.waiting.remove(entry)
                d.callback(self.received[:count])

    def wait_for(self, count: int) -> defer.Deferred:
        """
        Fires once C{count} NOTIFYs have arrived in all.
        """
        d = defer.Deferred()
        self.waiting.append((count, d))
        self._wake()
        return d.addTimeout(TIMEOUT, reactor)

    @defer.inlineCallbacks
    def stop(self):
        for connection in list(self.connections):
            connection.transport.loseConnection()
        if self.port is not None:
            yield self.port.stopListening()
