"""
The HTTP gateway (gateway.dll): a whole MSNP7 login, presence and a
switchboard conversation carried over HTTP polling beside TCP clients;
its refusals (unknown session, poll with a body, too many sessions); and,
on a task.Clock, session expiry and the buffered-bytes limit; a property
test of the request handling.
"""

from __future__ import annotations

import io
import re

import pytest
import pytest_twisted
from hypothesis import given, settings, strategies as st
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from conftest import ACCOUNTS, ENDPOINTS, RunningServer
from msnclient import login, md5_answer
from msnp.config import ServerConfig
from msnp.msn.gateway import Gateway
from msnp.service import MessengerService
import twn


@defer.inlineCallbacks
def start_gateway_server(tmp_path, config):
    endpoints = dict(ENDPOINTS)
    endpoints["gateway"] = "tcp:0:interface=127.0.0.1"
    service = MessengerService(config, str(tmp_path / "msnp.sqlite"), endpoints, reactor)
    service.startService()
    yield service._store_ready
    for handle, (password, name) in ACCOUNTS.items():
        yield service.store.create_account(handle, password, name)
    return RunningServer(service, str(tmp_path / "msnp.sqlite"))


@pytest.fixture
def gw_server(tmp_path, server_config):
    running = pytest_twisted.blockon(start_gateway_server(tmp_path, server_config))
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())


class GatewayClient:
    """
    A client speaking MSNP through the gateway the way libpurple does:
    absolute-form targets, one request at a time, polling.
    """

    def __init__(self, server, kind="NS", ip="127.0.0.1:1863"):
        self.port = server.service.listeners["gateway"].port.getHost().port
        self.kind, self.ip = kind, ip
        self.session = None
        self.received = b""
        self.closed = False

    @defer.inlineCallbacks
    def post(self, body: bytes = b"", query: str = None):
        if query is None:
            query = f"Action=open&Server={self.kind}&IP={self.ip}" if self.session is None else f"SessionID={self.session}"
        url = f"http://127.0.0.1:{self.port}/gateway/gateway.dll?{query}".encode()
        producer = FileBodyProducer(io.BytesIO(body))
        response = yield Agent(reactor).request(b"POST", url, Headers({b"Content-Type": [b"text/xml"]}), producer)
        data = yield twn.read_body(response)
        header = response.headers.getRawHeaders(b"x-msn-messenger")
        if header:
            fields = dict(part.strip().partition("=")[::2] for part in header[0].decode().split(";"))
            self.session = fields.get("SessionID", self.session)
            self.closed = self.closed or fields.get("Session") == "close"
            assert fields.get("GW-IP") == "127.0.0.1"
            assert response.headers.getRawHeaders(b"content-type") == [b"application/x-msn-messenger"]
        self.received += data
        return response.code, data

    @defer.inlineCallbacks
    def expect(self, pattern: str, polls: int = 200):
        """
        Poll until a whole line matching C{pattern} has arrived; returns the
        match (the text before it is dropped).
        """
        for _ in range(polls):
            match = re.search(pattern.encode(), self.received)
            if match:
                self.received = self.received[match.end():]
                return match
            yield self.post(query=f"Action=poll&SessionID={self.session}")
            yield task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"gateway: no {pattern!r} in {self.received!r}")


@pytest_twisted.inlineCallbacks
def test_login_presence_and_conversation_through_the_gateway(gw_server):
    """
    Alice logs in (MSNP7, MD5) through the gateway, goes online; Bob over
    TCP adds her and sees her online; Alice opens a switchboard through a
    gateway SB session, calls Bob and they exchange messages.
    """
    alice = GatewayClient(gw_server)
    code, data = yield alice.post(b"VER 1 MSNP7 CVR0\r\n")
    assert code == 200 and alice.session and re.fullmatch(r"\d+\.\d+", alice.session)
    yield alice.expect(r"VER 1 MSNP7\r\n")
    yield alice.post(b"INF 2\r\nUSR 3 MD5 I alice@example.com\r\n")
    yield alice.expect(r"INF 2 MD5\r\n")
    match = yield alice.expect(r"USR 3 MD5 S (\S+)\r\n")
    yield alice.post(f"USR 4 MD5 S {md5_answer(match.group(1).decode(), 'pw-alice')}\r\n".encode())
    yield alice.expect(r"USR 4 OK alice@example.com Alice 1\r\n")
    yield alice.post(b"SYN 5 0\r\nCHG 6 NLN\r\n")
    yield alice.expect(r"CHG 6 NLN\r\n")
    bob = yield login(gw_server.notification_port, "bob@example.com", "pw-bob", "MSNP7")
    bob.send("CHG 1 NLN")
    yield bob.expect_line("CHG 1 NLN")
    bob.send("ADD 2 FL alice@example.com Alice")
    yield bob.expect(r"ADD 2 FL \d+ alice@example.com Alice 0")
    yield bob.expect_line("ILN 2 NLN alice@example.com Alice")
    yield alice.expect(r"ADD 0 RL \d+ bob@example.com Bob\r\n")
    yield alice.post(b"ADD 7 AL bob@example.com Bob\r\nXFR 8 SB\r\n")
    match = yield alice.expect(r"XFR 8 SB (127\.0\.0\.1:\d+) CKI (\S+)\r\n")
    sb = GatewayClient(gw_server, "SB", match.group(1).decode())
    yield sb.post(f"USR 1 alice@example.com {match.group(2).decode()}\r\n".encode())
    assert sb.session != alice.session
    yield sb.expect(r"USR 1 OK alice@example.com Alice\r\n")
    yield sb.post(b"CAL 2 bob@example.com\r\n")
    yield sb.expect(r"CAL 2 RINGING \d+\r\n")
    from msnclient import answer_ring

    bob_sb, _, roster = yield answer_ring(bob, "bob@example.com")
    assert roster == ["IRO 1 1 1 alice@example.com Alice"]
    yield sb.expect(r"JOI bob@example.com Bob\r\n")
    message = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello over http"
    yield sb.post(b"MSG 3 A %d\r\n" % len(message) + message)
    yield sb.expect(r"ACK 3\r\n")
    relayed = yield bob_sb.next()
    assert relayed.text == f"MSG alice@example.com Alice {len(message)}" and relayed.payload == message
    bob_sb.send_payload("MSG 2 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi back")
    yield sb.expect(r"MSG bob@example.com Bob \d+\r\n")
    yield sb.post(b"OUT\r\n")
    assert sb.closed
    code, _ = yield sb.post(query=f"Action=poll&SessionID={sb.session}")
    assert code == 400
    yield alice.post(b"OUT\r\n")
    for client in (bob_sb, bob):
        yield client.disconnect()


@pytest.mark.parametrize("server_config", [ServerConfig(max_gateway_sessions=1)])
@pytest_twisted.inlineCallbacks
def test_gateway_refusals(gw_server):
    """
    An unknown session, a poll with a body, an unknown action or server,
    and a session past the limit are refused; the open one keeps going.
    """
    one = GatewayClient(gw_server)
    code, _ = yield one.post(b"VER 1 MSNP7\r\n")
    assert code == 200
    two = GatewayClient(gw_server)
    code, _ = yield two.post(b"VER 1 MSNP7\r\n")
    assert code == 503
    for query in ("SessionID=1.2", f"Action=poll&SessionID={one.session}", "Action=dance", "Action=open&Server=XX"):
        code, _ = yield one.post(b"PNG\r\n", query=query)
        assert code in (400, 503), query
    yield one.expect(r"VER 1 MSNP7\r\n")
    yield one.post(b"OUT\r\n")


class Recorder(Protocol):
    """
    A protocol that records what it is fed and can write a lot.
    """

    def __init__(self):
        self.fed = []
        self.lost = []

    def dataReceived(self, data):
        self.fed.append(data)
        for _ in range(data.count(b"flood")):
            self.transport.write(b"x" * 100)

    def connectionLost(self, reason=None):
        self.lost.append(reason)


def clock_gateway(**settings_):
    config = ServerConfig(**settings_)
    clock = task.Clock()
    factory = Factory.forProtocol(Recorder)
    return Gateway(config, {"NS": factory}, clock), clock


def post(gateway, query: bytes, body: bytes = b""):
    request = DummyRequest([b""])
    request.method = b"POST"
    request.args = {}
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key:
            request.args.setdefault(key, []).append(value)
    request.content = io.BytesIO(body)
    data = gateway.render_POST(request)
    return request, data


def test_session_expires_without_requests():
    gateway, clock = clock_gateway(gateway_session_timeout=60.0)
    request, _ = post(gateway, b"Action=open&Server=NS", b"hi")
    (session,) = gateway.sessions.values()
    clock.advance(59)
    post(gateway, b"Action=poll&SessionID=" + session.session_id.encode())
    clock.advance(59)
    assert gateway.sessions
    clock.advance(2)
    assert not gateway.sessions
    request, _ = post(gateway, b"Action=poll&SessionID=" + session.session_id.encode())
    assert request.responseCode == 400
    clock.advance(0)
    assert session.protocol.lost and not clock.getDelayedCalls()


def test_buffer_limit_closes_the_session():
    gateway, clock = clock_gateway(max_gateway_buffer=150)
    post(gateway, b"Action=open&Server=NS", b"flood")
    (session,) = gateway.sessions.values()
    request, data = post(gateway, b"SessionID=" + session.session_id.encode(), b"flood")
    assert data == b"x" * 100
    request, data = post(gateway, b"SessionID=" + session.session_id.encode(), b"floodflood")
    # 200 bytes were waiting: the session is closed, its buffer dropped.
    assert data == b"" and b"Session=close" in request.responseHeaders.getRawHeaders(b"x-msn-messenger")[0]
    assert not gateway.sessions
    clock.advance(0)
    assert session.protocol.lost
    gateway.close_all()
    assert not clock.getDelayedCalls()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([b"Action=open", b"Action=poll", b"Action=x", b"Server=NS", b"Server=SB", b"SessionID=1.1", b"SessionID=", b"IP=\xff"]), max_size=4),
    st.binary(max_size=64),
)
def test_any_request_is_answered(parts, body):
    """
    Whatever the query and body, the gateway answers with a status (200 or
    a refusal), never an exception, and never leaves a session it did not
    report.
    """
    gateway, clock = clock_gateway()
    request, data = post(gateway, b"&".join(parts), body)
    assert isinstance(data, bytes)
    assert request.responseCode in (None, 200, 400, 405, 413, 503)
    if gateway.sessions:
        header = request.responseHeaders.getRawHeaders(b"x-msn-messenger")[0].decode()
        assert any(f"SessionID={s}" in header for s in gateway.sessions)
    gateway.close_all()
    clock.advance(0)


@pytest_twisted.inlineCallbacks
def test_session_header_is_written_in_its_exact_case(gw_server):
    """
    papyon looks the X-MSN-Messenger header up by its exact name: the
    gateway writes it so, not in Twisted's canonical X-Msn-Messenger.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = gw_server.service.listeners["gateway"].port.getHost().port

    class Raw(Protocol):
        def __init__(self):
            self.data = b""
            self.done = defer.Deferred()

        def dataReceived(self, data):
            self.data += data

        def connectionLost(self, reason=None):
            self.done.callback(self.data)

    raw = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Raw())
    body = b"VER 1 MSNP7\r\nOUT\r\n"
    raw.transport.write(
        b"POST http://127.0.0.1/gateway/gateway.dll?Action=open&Server=NS&IP=127.0.0.1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    data = yield raw.done
    assert b"\r\nX-MSN-Messenger: SessionID=" in data and b"Session=close" in data
    assert data.endswith(b"\r\n\r\nVER 1 MSNP7\r\nOUT\r\n")
