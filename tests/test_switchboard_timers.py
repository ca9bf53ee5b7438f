"""
The switchboard's clocks and edge cases, driven without a network: a
StringTransport per connection and a task.Clock for the login deadline,
the idle timeout, cookie expiry and the CAL rate.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from zope.interface import implementer

from msnp.config import ServerConfig
from msnp.core import events, status as statuses
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.messenger import Messenger
from msnp.core.presence import SignedInUser
from msnp.directory.local import LocalDirectory
from msnp.msn import dialects
from msnp.msn.wire import url_decode
from msnp.msn.switchboard import SwitchboardServer, SwitchboardTicket, grant_switchboard, new_cookie
from msnp.store.records import UserState

P2P = b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n\x00\x01\x02"
TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi"


@implementer(IEndpoint)
class FakeNotificationSession:
    """
    A callee's notification endpoint as the switchboard reaches it: a
    published presence, and the rings (L{events.Ring}) it was given.
    """

    def __init__(self, handle, name, version=7, accepting=True):
        self.handle = handle
        self.endpoint_id = f"test/{handle}"
        user = UserState(handle, name, 1, "A", "AL", {}, {"FL": {}, "AL": {}, "BL": {}, "RL": {}}, {}, {})
        self.me = SignedInUser(user, self.endpoint_id)
        self.me.status = statuses.ONLINE
        self.me.accepts_invitations = accepting
        self.dialect = dialects.ALL_DIALECTS[version]
        self.rings = []

    def receive(self, event):
        if isinstance(event, events.Ring):
            self.rings.append(event)

class Harness:
    """
    A switchboard server on a fake clock, and connections to it.
    """

    def __init__(self, **settings):
        self.clock = Clock()
        self.config = ServerConfig(**settings)
        self.directory = LocalDirectory()
        self.messenger = Messenger(None, self.directory, self.clock, self.config.list_limits, self.config.max_groups)
        self.server = SwitchboardServer(self.config, self.messenger, self.clock)
        self.connections = []

    def add_callee(self, callee):
        """
        Sign C{callee} in: reachable through the directory, presence shown.
        """
        record = EndpointRecord(callee.endpoint_id, callee.handle, self.directory.node, "msn")
        self.directory.attach(callee, record)
        self.directory.publish_presence(callee.me.record())
        return callee

    def connect(self):
        protocol = self.server.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + len(self.connections)))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return protocol, transport

    def cookie(self, handle, name, version=7, session_id=None, lifetime=None):
        cookie = new_cookie()
        lifetime = self.config.cookie_lifetime if lifetime is None else lifetime
        ticket = SwitchboardTicket(handle, name, version, 0, self.clock.seconds() + lifetime, session_id, url_decode(name))
        self.directory.add_cookie(cookie, ticket, self.clock.seconds())
        return cookie

    def open(self, handle="alice@example.com", name="Alice", version=7):
        protocol, transport = self.connect()
        protocol.dataReceived(f"USR 1 {handle} {self.cookie(handle, name, version)}\r\n".encode())
        assert transport.value() == f"USR 1 OK {handle} {name}\r\n".encode(), transport.value()
        transport.clear()
        return protocol, transport

    def join(self, session_id, handle="bob@example.com", name="Bob", version=7):
        protocol, transport = self.connect()
        cookie = self.cookie(handle, name, version, session_id)
        protocol.dataReceived(f"ANS 1 {handle} {cookie} {session_id}\r\n".encode())
        return protocol, transport

    def drop(self, protocol):
        protocol.connectionLost(None)

    def close_all(self):
        for protocol, _ in self.connections:
            if protocol.session is not None:
                protocol.connectionLost(None)
        assert self.clock.getDelayedCalls() == [], "timers left behind"


@pytest.fixture
def harness():
    harness = Harness()
    yield harness
    harness.close_all()


def session_id_of(protocol):
    return protocol.session.conversation.session_id


def test_login_deadline(harness):
    """
    A connection that has not logged in 60 s after connecting is closed,
    even if it kept sending commands; one that logged in is not.
    """
    silent, silent_transport = harness.connect()
    talkative, talkative_transport = harness.connect()
    harness.clock.advance(59)
    talkative.dataReceived(b"CAL 1 bob@example.com\r\n")
    assert talkative_transport.value() == b"302 1\r\n"
    assert not silent_transport.disconnecting
    alice, alice_transport = harness.open()
    harness.clock.advance(1)
    assert silent_transport.disconnecting
    assert talkative_transport.disconnecting
    assert not alice_transport.disconnecting
    harness.drop(silent)
    harness.drop(talkative)


def test_idle_participant_is_removed_with_bye_1(harness):
    """
    A participant silent for the idle timeout is removed: the others get
    BYE handle 1 and its connection is closed.  Messages it receives count
    as activity.
    """
    idle = harness.config.sb_idle_timeout
    alice, alice_transport = harness.open()
    harness.clock.advance(idle / 2)
    bob, bob_transport = harness.join(session_id_of(alice))
    alice_transport.clear()
    bob_transport.clear()
    # Alice is sent a message just before her timeout: she stays.
    harness.clock.advance(idle / 2 - 1)
    bob.dataReceived(b"MSG 2 U %d\r\n%s" % (len(TEXT), TEXT))
    harness.clock.advance(1)
    assert not alice_transport.disconnecting
    # A command of her own (here a failed CAL) keeps Alice a second longer
    # than Bob, so Bob is the first to idle out.
    alice.dataReceived(b"CAL 3 nobody@example.com\r\n")
    alice_transport.clear()
    harness.clock.advance(idle - 1)
    assert bob_transport.disconnecting
    assert alice_transport.value() == b"BYE bob@example.com 1\r\n"
    assert not alice_transport.disconnecting
    harness.drop(bob)
    harness.clock.advance(1)
    assert alice_transport.disconnecting
    harness.drop(alice)
    assert harness.server.conversations == {}


def test_cookie_expires_after_its_lifetime(harness):
    """
    A cookie from XFR SB works until its lifetime is over and not at or
    after that moment.
    """
    session = FakeNotificationSession("alice@example.com", "Alice")
    cookies = []
    grant_switchboard(harness.directory, harness.clock, harness.config, session).addCallback(cookies.append)
    grant_switchboard(harness.directory, harness.clock, harness.config, session).addCallback(cookies.append)
    harness.clock.advance(harness.config.cookie_lifetime - 0.5)
    early, early_transport = harness.connect()
    early.dataReceived(f"USR 1 alice@example.com {cookies[0]}\r\n".encode())
    assert early_transport.value() == b"USR 1 OK alice@example.com Alice\r\n"
    harness.clock.advance(0.5)
    late, late_transport = harness.connect()
    late.dataReceived(f"USR 1 alice@example.com {cookies[1]}\r\n".encode())
    assert late_transport.value() == b"911 1\r\n"
    assert late_transport.disconnecting
    harness.drop(late)


def test_expired_cookies_are_forgotten(harness):
    """
    Cookies nobody redeems do not pile up in the directory.
    """
    session = FakeNotificationSession("alice@example.com", "Alice")
    for _ in range(100):
        grant_switchboard(harness.directory, harness.clock, harness.config, session)
    assert harness.directory.pending_cookies() == 100
    harness.clock.advance(harness.config.cookie_lifetime)
    grant_switchboard(harness.directory, harness.clock, harness.config, session)
    assert harness.directory.pending_cookies() == 1


def test_call_rate(harness):
    """
    Ten invitations may go out at once; the eleventh gets 713 until the
    rate has refilled.
    """
    alice, transport = harness.open()
    for n in range(11):
        harness.add_callee(FakeNotificationSession(f"user{n}@example.com", f"User{n}"))
    for n in range(10):
        alice.dataReceived(f"CAL {n} user{n}@example.com\r\n".encode())
    lines = transport.value().split(b"\r\n")[:-1]
    assert all(line.startswith(b"CAL %d RINGING " % n) for n, line in enumerate(lines)), lines
    transport.clear()
    alice.dataReceived(b"CAL 10 user10@example.com\r\n")
    assert transport.value() == b"713 10\r\n"
    transport.clear()
    harness.clock.advance(1 / harness.server.call_rate)
    alice.dataReceived(b"CAL 11 user10@example.com\r\n")
    assert transport.value().startswith(b"CAL 11 RINGING ")


def test_rng_carries_the_session_and_a_fresh_cookie(harness):
    """
    CAL rings the callee's endpoints with the session id, the switchboard
    address and the caller; a cookie for that session admits the callee.
    """
    callee = harness.add_callee(FakeNotificationSession("bob@example.com", "Bob"))
    alice, transport = harness.open(name="Alice%20A")
    alice.dataReceived(b"CAL 2 bob@example.com\r\n")
    session_id = session_id_of(alice)
    assert transport.value() == f"CAL 2 RINGING {session_id}\r\n".encode()
    assert callee.rings == [
        events.Ring("bob@example.com", session_id, harness.config.switchboard_address, "alice@example.com", "Alice A")
    ]
    # The callee's notification server issues the cookie (see
    # test_presence/test_switchboard for RNG on the wire).
    cookie = harness.cookie("bob@example.com", "Bob", session_id=session_id)
    bob, bob_transport = harness.connect()
    bob.dataReceived(f"ANS 5 bob@example.com {cookie} {session_id}\r\n".encode())
    assert bob_transport.value() == b"IRO 5 1 1 alice@example.com Alice%20A\r\nANS 5 OK\r\n"


def test_invitation_lapses_with_its_cookie(harness):
    """
    A callee who never answers can be invited again once the cookie of the
    first invitation has expired.
    """
    harness.add_callee(FakeNotificationSession("bob@example.com", "Bob"))
    alice, transport = harness.open()
    alice.dataReceived(b"CAL 2 bob@example.com\r\nCAL 3 bob@example.com\r\n")
    assert transport.value().endswith(b"215 3\r\n")
    transport.clear()
    harness.clock.advance(harness.config.cookie_lifetime)
    alice.dataReceived(b"CAL 4 bob@example.com\r\n")
    assert transport.value().startswith(b"CAL 4 RINGING ")


def test_participant_limit(harness):
    """
    A session holds at most max_sb_participants, counting invitations
    still ringing; past that CAL gets 712.
    """
    harness.config.max_sb_participants = 3
    for n in range(3):
        harness.add_callee(FakeNotificationSession(f"user{n}@example.com", f"U{n}"))
    alice, transport = harness.open()
    alice.dataReceived(b"CAL 1 user0@example.com\r\nCAL 2 user1@example.com\r\nCAL 3 user2@example.com\r\n")
    lines = transport.value().split(b"\r\n")
    assert lines[0].startswith(b"CAL 1 RINGING") and lines[1].startswith(b"CAL 2 RINGING")
    assert lines[2] == b"712 3"


def test_data_messages_from_msnp9(harness):
    """
    MSG D is refused (closed) in MSNP7; from MSNP9 a peer-to-peer payload is
    delivered and acknowledged, and anything else gets 282.
    """
    alice, alice_transport = harness.open(version=9)
    bob, bob_transport = harness.join(session_id_of(alice), version=9)
    alice_transport.clear()
    bob_transport.clear()
    alice.dataReceived(b"MSG 2 D %d\r\n%s" % (len(P2P), P2P))
    assert alice_transport.value() == b"ACK 2\r\n"
    assert bob_transport.value() == b"MSG alice@example.com Alice %d\r\n%s" % (len(P2P), P2P)
    alice_transport.clear()
    bob_transport.clear()
    alice.dataReceived(b"MSG 3 D %d\r\n%s" % (len(TEXT), TEXT))
    assert alice_transport.value() == b"282 3\r\n"
    assert bob_transport.value() == b""

    carol, carol_transport = harness.open("carol@example.com", "Carol", version=7)
    carol.dataReceived(b"MSG 2 D %d\r\n%s" % (len(P2P), P2P))
    assert carol_transport.disconnecting


def test_msnp12_roster_carries_capabilities(harness):
    """
    IRO and JOI carry the participant's client capabilities for an MSNP12
    reader and not for an older one.
    """
    alice, alice_transport = harness.open(version=7)
    protocol, transport = harness.connect()
    cookie = new_cookie()
    ticket = SwitchboardTicket("bob@example.com", "Bob", 12, 0x40000024, harness.clock.seconds() + 60, session_id_of(alice))
    harness.directory.add_cookie(cookie, ticket, harness.clock.seconds())
    protocol.dataReceived(f"ANS 1 bob@example.com {cookie} {session_id_of(alice)}\r\n".encode())
    assert transport.value() == b"IRO 1 1 1 alice@example.com Alice 0\r\nANS 1 OK\r\n"
    assert alice_transport.value() == b"JOI bob@example.com Bob\r\n"
    carol, carol_transport = harness.join(session_id_of(alice), "carol@example.com", "Carol", version=12)
    assert transport.value().endswith(b"JOI carol@example.com Carol 0\r\n")


def test_shutdown_announces_departures(harness):
    """
    When the server stops, each switchboard connection is closed and the
    rest of its session sees it leave.
    """
    alice, alice_transport = harness.open()
    bob, bob_transport = harness.join(session_id_of(alice))
    alice_transport.clear()
    bob.shut_down()
    assert bob_transport.disconnecting
    assert alice_transport.value() == b"BYE bob@example.com\r\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payloads=st.lists(st.binary(max_size=1664), min_size=1, max_size=4),
    cut=st.integers(min_value=1, max_value=64),
)
def test_payloads_are_relayed_byte_exact_however_they_arrive(payloads, cut):
    """
    Any payload up to 1664 bytes (CRLFs, NULs, text that looks like
    commands) reaches the other participant byte for byte, however the
    stream is cut into reads, and each MSG U N A gets its due answer.
    """
    harness = Harness()
    try:
        alice, alice_transport = harness.open()
        bob, bob_transport = harness.join(session_id_of(alice))
        alice_transport.clear()
        bob_transport.clear()
        stream = b"".join(b"MSG %d %s %d\r\n%s" % (n, b"UNA"[n % 3 : n % 3 + 1], len(p), p) for n, p in enumerate(payloads))
        for start in range(0, len(stream), cut):
            alice.dataReceived(stream[start : start + cut])
        expected = b"".join(b"MSG alice@example.com Alice %d\r\n%s" % (len(p), p) for p in payloads)
        assert bob_transport.value() == expected
        assert alice_transport.value() == b"".join(b"ACK %d\r\n" % n for n in range(len(payloads)) if n % 3 == 2)
    finally:
        harness.close_all()
