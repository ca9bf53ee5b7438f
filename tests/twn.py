"""
Helpers for Passport (MSNP8+) tests: a development certificate made in the
test, a server with the Passport login on TLS, an HTTPS client that trusts
that certificate, and the whole TWN login of a scripted client.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from conftest import ACCOUNTS, ENDPOINTS, RunningServer
from msnclient import connect
from msnp.config import ServerConfig
from msnp.devcert import write_self_signed
from msnp.service import MessengerService


class PassportServer(RunningServer):
    cert_pem: bytes = b""

    @property
    def passport_port(self) -> int:
        return self.service.listeners["passport"].port.getHost().port

    def agent(self) -> Agent:
        """
        An HTTPS client that trusts only this server's certificate.
        """
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(self.cert_pem))
        return Agent(reactor, contextFactory=policy)

    def url(self, path: str) -> bytes:
        return f"https://127.0.0.1:{self.passport_port}{path}".encode("ascii")


@defer.inlineCallbacks
def start_passport_server(tmp_path, config: ServerConfig = None):
    key_path, cert_path, cert_pem = write_self_signed(tmp_path)
    endpoints = dict(ENDPOINTS)
    endpoints["passport"] = f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    service = MessengerService(config or ServerConfig(), str(tmp_path / "msnp.sqlite"), endpoints, reactor)
    service.startService()
    yield service._store_ready
    for handle, (password, name) in ACCOUNTS.items():
        yield service.store.create_account(handle, password, name)
    running = PassportServer(service, str(tmp_path / "msnp.sqlite"))
    running.cert_pem = cert_pem
    return running


class BodyCollector(Protocol):
    """
    Gathers a response body handed over by C{Response.deliverBody}.
    """

    def __init__(self):
        self.parts = []
        self.done = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason=None) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def read_body(response) -> defer.Deferred:
    """
    The whole body of C{response}.  Unlike C{readBody} this needs no way to
    abort the connection, which is gone once a short body has arrived.
    """
    collector = BodyCollector()
    response.deliverBody(collector)
    return collector.done


def authorization(handle: str, password: str, policy: str = "lc=1033,id=507") -> bytes:
    return (
        "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
        f"sign-in={quote(handle, safe='')},pwd={quote(password, safe='')},{policy}"
    ).encode("ascii")


@defer.inlineCallbacks
def passport_login(server: PassportServer, handle: str, password: str, policy: str = "lc=1033,id=507"):
    """
    The HTTPS login; returns (response, ticket or None).
    """
    agent = server.agent()
    response = yield agent.request(
        b"GET", server.url("/login2.srf"), Headers({b"Authorization": [authorization(handle, password, policy)]})
    )
    yield read_body(response)
    ticket = None
    info = response.headers.getRawHeaders(b"authentication-info")
    if info:
        match = re.search(r"from-PP='([^']*)'", info[0].decode("ascii"))
        ticket = match.group(1) if match else None
    return response, ticket


@defer.inlineCallbacks
def twn_start(server: PassportServer, handle: str, dialect: str = "MSNP8", name=None):
    """
    VER, CVR and USR TWN I at the notification server; returns the client
    and the policy string to hand to Passport.
    """
    client = yield connect(server.notification_port, name or handle.split("@")[0])
    client.send(f"VER 1 {dialect} CVR0")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send(f"CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.5.0324 MSMSGS {handle}")
    yield client.expect(r"CVR 2 \S+ \S+ \S+ \S+ \S+")
    client.send(f"USR 3 TWN I {handle}")
    match = yield client.expect(r"USR 3 TWN S (\S+)")
    return client, match.group(1)


@defer.inlineCallbacks
def twn_with_ticket(server: PassportServer, handle: str, ticket: str, dialect: str = "MSNP12"):
    """
    L{twn_start}, then USR TWN S with C{ticket}; returns the client and the
    server's answer to it.
    """
    client, policy = yield twn_start(server, handle, dialect)
    assert policy.startswith("lc=1033,id=507,"), policy
    client.send(f"USR 4 TWN S {ticket}")
    answer = yield client.next()
    return client, answer


@defer.inlineCallbacks
def twn_login(server: PassportServer, handle: str, password: str, dialect: str = "MSNP8", name=None):
    """
    VER, CVR, USR TWN I, the Passport exchange and USR TWN S; reads through
    the profile message (and SBS from MSNP11) and returns the client.
    """
    client, policy = yield twn_start(server, handle, dialect, name)
    response, ticket = yield passport_login(server, handle, password, policy)
    assert response.code == 200 and ticket, response.code
    client.send(f"USR 4 TWN S {ticket}")
    yield client.expect(rf"USR 4 OK {re.escape(handle)} .*")
    if int(dialect[4:]) >= 11:
        yield client.expect_line("SBS 0 null")
    profile = yield client.next()
    assert profile.name == "MSG" and b"text/x-msmsgsprofile" in profile.payload, profile
    return client


class RawTLSClient(Protocol):
    """
    Collects every byte a TLS server sends.
    """

    def __init__(self):
        self.data = b""
        self.done = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason=None) -> None:
        self.done.callback(self.data)


@defer.inlineCallbacks
def raw_https_request(server: PassportServer, request: bytes) -> bytes:
    """
    The exact bytes the Passport site answers to C{request} (sent as it
    is), read over TLS without any HTTP library in between.
    """
    options = optionsForClientTLS("127.0.0.1", trustRoot=Certificate.loadPEM(server.cert_pem))
    endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", server.passport_port))
    client = yield connectProtocol(endpoint, RawTLSClient())
    client.transport.write(request)
    data = yield client.done
    return data


def raw_https_get(server: PassportServer, path: str) -> defer.Deferred:
    """
    The exact bytes of the response to C{GET path}.
    """
    return raw_https_request(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("ascii"))


def parse_response(data: bytes) -> tuple[int, dict, bytes]:
    """
    Status code, headers (lower-case names, last value wins) and body of
    one raw HTTP/1.1 response.
    """
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


@pytest.fixture
def pp_server(tmp_path, server_config):
    """
    A live server with the Passport login on TLS (import this fixture).
    """
    running = pytest_twisted.blockon(start_passport_server(tmp_path, server_config))
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())
