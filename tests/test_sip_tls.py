"""
Mutual TLS between the SIP edge and a federated peer, over real TLS on
127.0.0.1 with certificates from a test authority: requests come in only
from a peer whose certificate names its domain; a peer without a
certificate, with one from another authority, or naming another domain is
refused; outbound, the edge presents its certificate and connects only to
a peer whose certificate names it.
"""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS

from conftest import ENDPOINTS, RunningServer
from msnclient import go_online
from msnp.config import ServerConfig
from msnp.service import MessengerService
from msnp.sip.tls import FederationTls, TlsSettingError, parse_ssl_description
from msnp.sip.transport import certificate_names
from ns_steps import sign_in
from sippeer import Dialog, SipPeer, _Stream, contact_uri, random_token
from test_sip_bridge import pidf
from tlscerts import Authority

KIM = "kim@partner.example"
ALICE = "alice@example.com"


def identity(key_path, cert_path):
    with open(key_path, "rb") as k, open(cert_path, "rb") as c:
        return PrivateCertificate.loadPEM(k.read() + c.read())


class TlsWorld:
    """
    A CA; the server (example.com) with an ssl: SIP listener; the peer
    (partner.example) with its own certificate, listening and connecting
    over TLS.
    """

    def __init__(self, directory, db_path, peer_names=("partner.example",)):
        self.ca = Authority(directory)
        self.server_key, self.server_cert = self.ca.issue("example.com")
        peer_key, peer_cert = self.ca.issue(*peer_names)
        self.peer_identity = identity(peer_key, peer_cert)
        authority = Certificate.loadPEM(open(self.ca.path, "rb").read())
        self.peer = SipPeer(
            "tls",
            server_tls=self.peer_identity.options(authority),
            client_tls=optionsForClientTLS("example.com", trustRoot=authority, clientCertificate=self.peer_identity),
        )
        self.peer.start(None)
        from msnp.sip.edge import SipSettings
        from msnp.sip.grammar import URI
        from msnp.sip.peers import Peer

        settings = SipSettings(
            domains=["example.com"],
            peers=[Peer("partner.example", URI.parse(f"sip:127.0.0.1:{self.peer.port};transport=tls"))],
            stream_endpoints=[f"ssl:0:interface=127.0.0.1:privateKey={self.server_key}:certKey={self.server_cert}"],
            notify_interval=0.0,
            tls_ca=self.ca.path,
        )
        service = MessengerService(ServerConfig(), db_path, dict(ENDPOINTS), reactor, sip_settings=settings)
        service.startService()
        self.server = RunningServer(service, db_path)
        self.sip_port = service.sip.sip.port("tls")
        self.peer.target = ("127.0.0.1", self.sip_port)

    @defer.inlineCallbacks
    def ready(self):
        yield self.server.service._store_ready
        yield self.server.service.sip.started

    @defer.inlineCallbacks
    def stop(self):
        yield self.server.stop()
        yield self.peer.stop()

    def subscribe(self):
        headers = [
            ("From", f"<sip:{KIM}>;tag={random_token()}"),
            ("To", f"<sip:{ALICE}>"),
            ("Call-ID", random_token()),
            ("CSeq", "1 SUBSCRIBE"),
            ("Contact", f"<sip:kim@127.0.0.1:{self.peer.port};transport=tls>"),
            ("Event", "presence"),
        ]
        return self.peer.request("SUBSCRIBE", f"sip:{ALICE}", headers)


@pytest.fixture
def world(tmp_path, accounts_database):
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    world = TlsWorld(tmp_path, str(db_path))
    pytest_twisted.blockon(world.ready())
    yield world
    pytest_twisted.blockon(world.stop())


@pytest_twisted.inlineCallbacks
def test_peer_with_its_certificate_is_admitted(world):
    response = yield world.subscribe()
    assert response.status == 403 and "PRESENCE_FILTERED" in response.get("ms-diagnostics")


@pytest_twisted.inlineCallbacks
def test_certificate_naming_another_domain_is_not_a_peer(world, tmp_path):
    """
    From the peer's address, with a certificate of the same authority that
    names another domain: 403, not a federated peer.
    """
    key, cert = world.ca.issue("evil.example")
    authority = Certificate.loadPEM(open(world.ca.path, "rb").read())
    world.peer.client_tls = optionsForClientTLS("example.com", trustRoot=authority, clientCertificate=identity(key, cert))
    response = yield world.subscribe()
    assert response.status == 403 and "not a federated peer" in response.first


@defer.inlineCallbacks
def _refused_handshake(world, client_options):
    """
    Connect to the edge with C{client_options} and send a request: the
    handshake fails and nothing is answered.
    """
    endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", world.sip_port, client_options)
    stream = _Stream(world.peer)
    try:
        yield connectProtocol(endpoint, stream)
    except Exception:
        return
    data, _ = world.peer.build("OPTIONS", "sip:example.com", [
        ("From", f"<sip:{KIM}>;tag=1"), ("To", "<sip:example.com>"), ("Call-ID", random_token()), ("CSeq", "1 OPTIONS"),
    ])
    stream.transport.write(data)
    yield stream.closed
    assert not [m for m in world.peer.received if not m.is_request]


@pytest_twisted.inlineCallbacks
def test_peer_without_a_certificate_is_refused_in_the_handshake(world):
    authority = Certificate.loadPEM(open(world.ca.path, "rb").read())
    yield _refused_handshake(world, optionsForClientTLS("example.com", trustRoot=authority))


@pytest_twisted.inlineCallbacks
def test_certificate_of_another_authority_is_refused_in_the_handshake(world, tmp_path):
    other = Authority(tmp_path / "..", "other")
    key, cert = other.issue("partner.example")
    authority = Certificate.loadPEM(open(world.ca.path, "rb").read())
    yield _refused_handshake(world, optionsForClientTLS("example.com", trustRoot=authority, clientCertificate=identity(key, cert)))


@pytest_twisted.inlineCallbacks
def test_outbound_subscription_over_mutual_tls(world):
    """
    alice adds kim: the edge connects to partner.example over TLS,
    presenting its example.com certificate, and kim's NOTIFY comes back on
    that connection.
    """
    alice = yield sign_in(world.server, ALICE)
    yield go_online(alice)
    alice.send("ADD 20 FL kim@partner.example Kim")
    yield alice.expect(r"ADD 20 FL \d+ kim@partner\.example Kim 0")
    subscribe = yield world.peer.next_request("SUBSCRIBE")
    connection = subscribe.origin[2]
    assert certificate_names(connection.transport) == ("example.com",)
    assert "SIP/2.0/TLS" in subscribe.get("via")
    tag = world.peer.respond(subscribe, 200, headers=[("Expires", "600"), ("Contact", f"<sip:kim@127.0.0.1:{world.peer.port};transport=tls>")])
    dialog = Dialog(world.peer, subscribe.get("call-id"), f"<sip:{KIM}>;tag={tag}", subscribe.get("from"), contact_uri(subscribe), cseq=0)
    answer = yield dialog.request(
        "NOTIFY",
        [("Event", "presence"), ("Subscription-State", "active;expires=600"), ("Content-Type", "application/pidf+xml")],
        pidf(f"sip:{KIM}", "open", "Online"),
    )
    assert answer.status == 200
    yield alice.expect_line("NLN NLN kim@partner.example kim@partner.example")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_outbound_to_a_peer_whose_certificate_names_another_domain_fails(tmp_path, accounts_database):
    """
    The peer's certificate names evil.example: the edge does not talk to
    it, and the subscription counts as refused (kim shows offline).
    """
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    world = TlsWorld(tmp_path, str(db_path), peer_names=("evil.example",))
    try:
        yield world.ready()
        alice = yield sign_in(world.server, ALICE)
        yield go_online(alice)
        alice.send("ADD 20 FL kim@partner.example Kim")
        yield alice.expect(r"ADD 20 FL \d+ kim@partner\.example Kim 0")
        watch = world.server.service.sip.edge.watcher.watches[(ALICE, KIM)]
        for _ in range(200):
            if watch.state == "refused":
                break
            yield _sleep(0.02)
        assert watch.state == "refused"
        assert not [m for m in world.peer.received if m.is_request]
        yield alice.expect_silence()
        yield alice.disconnect()
    finally:
        yield world.stop()


def test_tls_material_errors_are_one_line(tmp_path):
    ca = Authority(tmp_path)
    key, cert = ca.issue("example.com")
    FederationTls(key, cert, ca.path)
    with pytest.raises(TlsSettingError):
        FederationTls(key, cert, key)  # no certificate in the authorities file
    with pytest.raises(TlsSettingError):
        FederationTls(cert, cert, ca.path)  # no key
    with pytest.raises(TlsSettingError):
        FederationTls(str(tmp_path / "missing.pem"), cert, ca.path)
    listener = parse_ssl_description(r"ssl:5061:interface=127.0.0.1:privateKey=/a\:b/key.pem:certKey=cert.pem:backlog=10")
    assert (listener.port, listener.interface, listener.private_key, listener.certificate_path, listener.backlog) == (
        5061, "127.0.0.1", "/a:b/key.pem", "cert.pem", 10
    )
    assert parse_ssl_description("ssl:port=5061:privateKey=k.pem").certificate_path == "k.pem"


def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
