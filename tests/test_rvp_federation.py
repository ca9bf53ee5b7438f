"""
Two msnp server processes, each with its own RVP domain and database,
federating over RVP: a user of one watches a user of the other and they
exchange messages, every request between the domains going server to
server; and, in process, a router's 302 to the home server is followed.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol

from rvpclient import NS, LocalNode, RvpClient, state_in
from rvpserver import start_rvp
from serverprocess import ServerProcess, free_ports, make_accounts


class RvpServerProcess(ServerProcess):
    def __init__(self, directory, domain, accounts, rvp_port, peers, host="127.0.0.1"):
        directory.mkdir()
        db_path = str(directory / "msnp.sqlite")
        make_accounts(db_path, accounts)
        args = ["--rvp", f"tcp:{rvp_port}:interface=127.0.0.1", "--rvp-domain", domain, "--rvp-host", host]
        for peer_domain, url in peers.items():
            args += ["--rvp-peer", f"{peer_domain}={url}"]
        super().__init__(directory, db_path, *args)
        self.rvp_port = rvp_port


@pytest.fixture
def two_servers(tmp_path):
    port_a, port_b = free_ports(2)
    a = RvpServerProcess(tmp_path / "a", "example.com",
                         {"alice@example.com": ("pw-alice", "Alice"), "bob@example.com": ("pw-bob", "Bob")}, port_a,
                         {"other.org": f"http://127.0.0.1:{port_b}"})
    b = RvpServerProcess(tmp_path / "b", "other.org",
                         {"carol@other.org": ("pw-carol", "Carol"), "dave@other.org": ("pw-dave", "Dave")}, port_b,
                         {"example.com": f"http://127.0.0.1:{port_a}"})
    try:
        pytest_twisted.blockon(a.start())
        pytest_twisted.blockon(b.start())
        yield a, b
    finally:
        for server in (a, b):
            if server.process is not None and server.process.poll() is None:
                server.signal(15)
                pytest_twisted.blockon(server.wait_exit())


@defer.inlineCallbacks
def logged_in(port, alias, password, state):
    # From 127.0.0.2: the servers trust each other by 127.0.0.1.
    client = RvpClient(port, username=alias, password=password, bind="127.0.0.2",
                       principal=f"http://127.0.0.1:{port}/instmsg/aliases/{alias}")
    node = yield LocalNode().start("127.0.0.2")
    reply = yield client.login_subscribe(alias, node.url)
    assert reply.status == 200, reply
    reply = yield client.set_state(f"/instmsg/aliases/{alias}", state)
    assert reply.status == 207, reply
    return client, node


@pytest_twisted.inlineCallbacks
def test_two_domains_see_each_other_and_chat(two_servers):
    """
    alice@example.com subscribes to carol@other.org through her own server
    (207 with carol's state from the other process); carol's change reaches
    alice's local node through both servers; a DeepOr message each way is
    answered 200 once delivered, with the hop count growing 1 → 2 → 3.
    """
    a, b = two_servers
    alice, alice_node = yield logged_in(a.rvp_port, "alice", "pw-alice", "online")
    carol, carol_node = yield logged_in(b.rvp_port, "carol", "pw-carol", "busy")
    carol_url = f"http://127.0.0.1:{b.rvp_port}/instmsg/aliases/carol"
    reply = yield alice.subscribe(carol_url, alice.principal)
    assert reply.status == 207, reply
    assert state_in(reply.xml()) == "busy"
    assert reply.xml().find(".//r:email", NS).text == "carol@other.org"
    sub_id = reply.header("Subscription-Id")
    yield carol.set_state("/instmsg/aliases/carol", "away")
    [told] = yield alice_node.wait_for(1)
    assert state_in(told.xml()) == "away"
    assert told.xml().find("r:propnotification/r:notification-from/r:contact/d:href", NS).text == carol_url
    assert told.header("Subscription-Id") == sub_id

    reply = yield alice.send_message(carol_url, carol_url, "hello from example.com")
    assert reply.status == 200, reply
    [message] = yield carol_node.wait_for(1)
    assert message.header("RVP-Hop-Count") == "3"
    assert message.header("RVP-From-Principal") == alice.principal
    assert message.mime().endswith("hello from example.com")
    reply = yield carol.send_message(alice.principal, alice.principal, "hello back")
    assert reply.status == 200, reply
    [_, answer] = yield alice_node.wait_for(2)
    assert answer.mime().endswith("hello back")
    assert answer.xml().find("r:message/r:notification-from/r:contact/d:href", NS).text == carol_url

    # Carol's node refusing (she left) comes back to alice through both servers.
    carol_node.status = 500
    reply = yield alice.send_message(carol_url, carol_url, "still there?")
    assert reply.status == 500
    reply = yield alice.unsubscribe(carol_url, sub_id)
    assert reply.status == 200
    for thing in (alice, carol, alice_node, carol_node):
        yield thing.close() if isinstance(thing, RvpClient) else thing.stop()


@pytest_twisted.inlineCallbacks
def test_two_processes_msn_users_and_an_rvp_user(two_servers):
    """
    Across the two processes: bob (MSN, example.com) adds dave (MSN,
    other.org) and sees him online; alice (RVP, example.com) subscribes to
    dave and gets his status change; bob calls dave, who is rung by his own
    server, and they exchange messages both ways.
    """
    from msnclient import answer_ring, go_online, login, open_switchboard

    a, b = two_servers
    dave = yield login(b.notification_port, "dave@other.org", "pw-dave")
    yield go_online(dave)
    bob = yield login(a.notification_port, "bob@example.com", "pw-bob")
    yield go_online(bob)
    bob.send("ADD 30 FL dave@other.org Dave")
    yield bob.expect(r"ADD 30 FL \d+ dave@other.org Dave( 0)?")
    yield dave.expect(r"ADD 0 RL \d+ bob@example.com \S+")
    yield bob.expect_line("NLN NLN dave@other.org Dave")
    alice, alice_node = yield logged_in(a.rvp_port, "alice", "pw-alice", "online")
    dave_url = f"http://127.0.0.1:{b.rvp_port}/instmsg/aliases/dave"
    reply = yield alice.subscribe(dave_url, alice.principal)
    assert reply.status == 207 and state_in(reply.xml()) == "online"
    yield dave.expect(r"ADD 0 RL \d+ alice@example.com \S+")
    dave.send("CHG 40 BSY")
    yield dave.expect(r"CHG 40 BSY( .*)?")
    yield bob.expect_line("NLN BSY dave@other.org Dave")
    [told] = yield alice_node.wait_for(1)
    assert state_in(told.xml()) == "busy"

    sb = yield open_switchboard(bob, "bob@example.com")
    sb.send("CAL 2 dave@other.org")
    yield sb.expect(r"CAL 2 RINGING \d+")
    yield sb.expect_line("JOI dave@other.org Dave")
    sb.send_payload("MSG 3 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi dave")
    dave_sb, ring, _ = yield answer_ring(dave, "dave@other.org")
    assert ring[3] == "bob@example.com"
    line = yield dave_sb.next()
    assert line.args[:2] == ["MSG", "bob@example.com"] and line.payload.endswith(b"hi dave")
    dave_sb.send_payload("MSG 2 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi bob")
    line = yield sb.next()
    assert line.args[:3] == ["MSG", "dave@other.org", "Dave"] and line.payload.endswith(b"hi bob")
    for client in (sb, dave_sb, bob, dave, alice):
        yield client.disconnect() if not isinstance(client, RvpClient) else client.close()
    yield alice_node.stop()


class _Router(Protocol):
    """
    A domain's front door: answers every request 302 to the home server's
    physical URL, as an Exchange router does.
    """

    def dataReceived(self, data):
        self.buffer = getattr(self, "buffer", b"") + data
        if b"\r\n\r\n" not in self.buffer:
            return
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        path = head.split(b" ")[1].decode()
        alias = path.rstrip("/").rsplit("/", 1)[1]
        location = f"http://127.0.0.1:{self.factory.home_port}/instmsg/local/{self.factory.logical}/instmsg/aliases/{alias}"
        self.transport.write(f"HTTP/1.1 302 Object Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
        self.buffer = b""


@pytest_twisted.inlineCallbacks
def test_redirect_to_the_home_server_is_followed(server, tmp_path):
    """
    other.org's router answers 302 with the physical URL of carol's home
    server; our server follows it for alice's subscription and message.
    """
    from conftest import start_server
    from msnp.config import ServerConfig
    from msnp.rvp.principals import Site
    from serverprocess import make_accounts

    factory = Factory.forProtocol(_Router)
    router = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    logical = f"127.0.0.1:{router.getHost().port}"
    db_b = str(tmp_path / "b.sqlite")
    make_accounts(db_b, {"carol@other.org": ("pw-carol", "Carol")})
    other = yield start_server(db_b, ServerConfig(), accounts={})
    ours = yield start_rvp(server, peers={"other.org": f"http://{logical}"})
    home = yield start_rvp(other, domain="other.org", peers={"example.com": f"http://127.0.0.1:{ours.port}"})
    home.frontend.set_site(Site("127.0.0.1", router.getHost().port))  # principal URLs name the router
    factory.home_port, factory.logical = home.port, logical
    alice = RvpClient(ours.port, username="alice", password="pw-alice", bind="127.0.0.2",
                      principal=f"http://127.0.0.1:{ours.port}/instmsg/aliases/alice")
    alice_node = yield LocalNode().start("127.0.0.2")
    yield alice.login_subscribe("alice", alice_node.url)
    carol_logical = f"http://{logical}/instmsg/aliases/carol"
    reply = yield alice.subscribe(carol_logical, alice.principal)
    assert reply.status == 207, reply
    assert reply.xml().find("d:response/d:href", NS).text == carol_logical
    carol = RvpClient(home.port, username="carol", password="pw-carol", bind="127.0.0.2", principal=carol_logical)
    carol_node = yield LocalNode().start("127.0.0.2")
    yield carol.login_subscribe("carol", carol_node.url)
    yield carol.set_state("/instmsg/aliases/carol", "on-phone")
    [told] = yield alice_node.wait_for(1)
    assert state_in(told.xml()) == "on-phone"
    reply = yield alice.send_message(carol_logical, carol_logical, "via the router")
    assert reply.status == 200
    [message] = yield carol_node.wait_for(1)
    assert message.mime().endswith("via the router")
    for thing in (alice, carol, alice_node, carol_node):
        yield thing.close() if isinstance(thing, RvpClient) else thing.stop()
    yield ours.stopService()
    yield home.stopService()
    yield other.stop()
    yield router.stopListening()


@defer.inlineCallbacks
def federated_pair(server, tmp_path):
    """
    Our server (example.com, the fixture's) and a second one for other.org
    with carol and dave, each serving RVP with the other as its peer.
    """
    from conftest import start_server
    from msnp.config import ServerConfig

    db_b = str(tmp_path / "other.sqlite")
    make_accounts(db_b, {"carol@other.org": ("pw-carol", "Carol"), "dave@other.org": ("pw-dave", "Dave")})
    other = yield start_server(db_b, ServerConfig(), accounts={})
    port_a, port_b = free_ports(2)
    from msnp.rvp.bridge import MessengerHome
    from msnp.rvp.service import RvpService

    def rvp_for(running, domain, port, peer_domain, peer_port):
        home = MessengerHome(running.service.messenger, running.service.switchboard)
        return RvpService(reactor, f"tcp:{port}:interface=127.0.0.1", home, domain, "127.0.0.1",
                          {peer_domain: f"http://127.0.0.1:{peer_port}"})

    ours = rvp_for(server, "example.com", port_a, "other.org", port_b)
    theirs = rvp_for(other, "other.org", port_b, "example.com", port_a)
    for service in (ours, theirs):
        service.startService()
        yield service._resolving
    return other, ours, theirs


@pytest_twisted.inlineCallbacks
def test_msn_users_of_two_domains_through_rvp(server, tmp_path):
    """
    bob (MSN, example.com) adds carol (MSN, other.org) to his list: his
    server subscribes at hers, carol gets the reverse-list notice, bob sees
    her online and her status changes; bob calls carol: she is rung by her
    own server and they exchange messages both ways.
    """
    from msnclient import answer_ring, go_online, login, open_switchboard

    other, ours, theirs = yield federated_pair(server, tmp_path)
    services = [ours, theirs]
    try:
        yield _two_domains(server, other, services)
    finally:
        for service in services:
            if service.running:
                yield service.stopService()
        yield other.stop()


@defer.inlineCallbacks
def _two_domains(server, other, services):
    from msnclient import answer_ring, go_online, login, open_switchboard

    ours, theirs = services
    carol = yield login(other.notification_port, "carol@other.org", "pw-carol")
    yield go_online(carol)
    bob = yield login(server.notification_port, "bob@example.com", "pw-bob")
    yield go_online(bob)
    bob.send("ADD 30 FL carol@other.org Carol")
    yield bob.expect(r"ADD 30 FL \d+ carol@other.org Carol( 0)?")
    yield carol.expect(r"ADD 0 RL \d+ bob@example.com \S+")
    yield bob.expect_line("NLN NLN carol@other.org Carol")
    carol.send("CHG 40 AWY")
    yield carol.expect(r"CHG 40 AWY( .*)?")
    yield bob.expect_line("NLN AWY carol@other.org Carol")

    sb = yield open_switchboard(bob, "bob@example.com")
    sb.send("CAL 2 carol@other.org")
    yield sb.expect(r"CAL 2 RINGING \d+")
    yield sb.expect_line("JOI carol@other.org Carol")
    text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello across domains"
    sb.send_payload("MSG 3 N", text)
    carol_sb, ring, roster = yield answer_ring(carol, "carol@other.org")
    assert ring[3] == "bob@example.com"
    line = yield carol_sb.next()
    assert line.args[:2] == ["MSG", "bob@example.com"] and line.payload.endswith(b"hello across domains")
    carol_sb.send_payload("MSG 2 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello back")
    line = yield sb.next()
    assert line.args[:3] == ["MSG", "carol@other.org", "Carol"] and line.payload.endswith(b"hello back")

    # Subscriptions to other servers are made again at start.
    yield ours.stopService()
    ours = services[0] = yield restarted(server, ours)
    yield bob.expect_line("NLN AWY carol@other.org Carol")
    # Only federated domains: an unknown domain is still 205.
    bob.send("ADD 50 FL zed@unknown.example ZED")
    yield bob.expect_line("205 50")
    carol.send("OUT")
    yield carol.wait_closed()
    yield bob.expect_line("FLN carol@other.org")
    bob.send("REM 51 FL carol@other.org")
    yield bob.expect(r"REM 51 FL \d+ carol@other.org")
    yield wait_until(lambda: not theirs.frontend.subscriptions.of_node("carol@other.org"))
    for client in (sb, carol_sb, bob):
        yield client.disconnect()


@defer.inlineCallbacks
def restarted(server, service):
    """
    A new RVP service in place of C{service} (stopped), on the same port
    with the same peers.
    """
    from msnp.rvp.bridge import MessengerHome
    from msnp.rvp.service import RvpService

    home = MessengerHome(server.service.messenger, server.service.switchboard)
    settings = service.frontend.settings
    again = RvpService(reactor, f"tcp:{settings.site.port}:interface=127.0.0.1", home, settings.domain, "127.0.0.1", settings.peers)
    again.startService()
    yield again._resolving
    return again


@defer.inlineCallbacks
def wait_until(condition, timeout=5.0):
    from serverprocess import sleep

    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        yield sleep(0.05)
    raise AssertionError("condition not met in time")
