"""
Interop with real SIP user agents from Debian, run headless against a live
msnp server whose SIP edge federates with partner.example, where the user
agent stands: SIPp (sip-tester) scenarios as kim watching alice and as
kim's presentity, baresip as kim (watcher, presentity, pager-mode IM both
ways), and linphone's lp-sendmsg sending one MESSAGE.  MSN users are
scripted MSNP clients.  What each agent did is in protocol-notes/sip.md.
"""

from __future__ import annotations

import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from conftest import ENDPOINTS, RunningServer
from msnclient import answer_ring, go_online
from msnp.config import ServerConfig
from msnp.service import MessengerService
from msnp.sip.edge import SipSettings
from msnp.sip.grammar import URI
from msnp.sip.peers import Peer
from ns_steps import sign_in
from sipua import Child, ensure_installed, free_sip_port

SCENARIOS = os.path.join(os.path.dirname(__file__), "sipp")
KIM = "kim@partner.example"
ALICE = "alice@example.com"
TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"


class Server:
    """
    msnp with its SIP edge on UDP, partner.example routed to C{ua_port}.
    """

    def __init__(self, db_path: str, ua_port: int, contact_routing: bool = False):
        self.ua_port = ua_port
        peer = Peer("partner.example", URI.parse(f"sip:127.0.0.1:{ua_port};transport=udp"), contact_routing=contact_routing)
        settings = SipSettings(
            domains=["example.com"],
            peers=[peer],
            udp_port=0,
            notify_interval=0.0,
        )
        service = MessengerService(ServerConfig(), db_path, dict(ENDPOINTS), reactor, sip_settings=settings)
        service.startService()
        self.running = RunningServer(service, db_path)
        self.service = service
        self.sip_port = service.sip.sip.port("udp")

    @defer.inlineCallbacks
    def ready(self):
        yield self.service._store_ready
        yield self.service.sip.started

    def stop(self):
        return self.running.stop()

    @property
    def edge(self):
        return self.service.sip.edge


def serving(tmp_path, accounts_database, contact_routing=False):
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    running = Server(str(db_path), free_sip_port(), contact_routing)
    pytest_twisted.blockon(running.ready())
    return running


@pytest.fixture
def server(tmp_path, accounts_database):
    running = serving(tmp_path, accounts_database)
    yield running
    pytest_twisted.blockon(running.stop())


@pytest.fixture
def ua_server(tmp_path, accounts_database):
    """
    The server with partner.example being one user agent: requests to its
    users go to the Contact they sent (route=contact).
    """
    running = serving(tmp_path, accounts_database, contact_routing=True)
    yield running
    pytest_twisted.blockon(running.stop())


@defer.inlineCallbacks
def online(server, handle=ALICE):
    client = yield sign_in(server.running, handle)
    yield go_online(client)
    return client


@defer.inlineCallbacks
def until(condition, timeout=15.0, what="condition"):
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what} not reached")
        d = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)
        yield d


# SIPp


def sipp(tmp_path, scenario: str, server, remote: bool = True) -> Child:
    program = ensure_installed("sipp")
    argv = [
        program, "-sf", os.path.join(SCENARIOS, scenario), "-m", "1", "-i", "127.0.0.1", "-p", str(server.ua_port),
        "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-trace_msg",
        "-message_file", str(tmp_path / f"{scenario}.messages"), "-error_file", str(tmp_path / f"{scenario}.errors"),
    ]
    if remote:
        argv.append(f"127.0.0.1:{server.sip_port}")
    return Child(argv, str(tmp_path), log_path=str(tmp_path / f"{scenario}.log"))


def sipp_report(tmp_path, scenario: str) -> str:
    parts = []
    for suffix in ("errors", "messages"):
        path = tmp_path / f"{scenario}.{suffix}"
        if path.exists():
            parts.append(path.read_text(errors="replace")[-4000:])
    return "\n".join(parts)


@pytest_twisted.inlineCallbacks
def test_sipp_watcher_filtered_then_allowed_with_notify_message_and_unsubscribe(server, tmp_path):
    """
    SIPp as kim: 403 with ms-diagnostics before alice allows kim (alice's
    client gets the reverse-list notice); after, 200, NOTIFY open and on
    CHG BSY a busy NOTIFY, a MESSAGE that rings alice and reaches her MSG,
    and Expires: 0 answered with a terminated NOTIFY.
    """
    alice = yield online(server)
    refused = sipp(tmp_path, "filtered.xml", server)
    code = yield refused.wait()
    assert code == 0, sipp_report(tmp_path, "filtered.xml")
    yield alice.expect(r"ADD 0 RL \d+ kim@partner\.example Kim")

    alice.send("ADD 20 AL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 20 AL \d+ kim@partner\.example kim@partner\.example")
    watcher = sipp(tmp_path, "watcher.xml", server)
    yield until(lambda: server.edge.notifier.subscriptions, what="kim subscribed")
    alice.send("CHG 21 BSY")
    yield alice.expect_line("CHG 21 BSY")
    sb, ring, roster = yield answer_ring(alice, ALICE)
    assert ring[3] == KIM
    msg = yield sb.next()
    assert msg.text.startswith("MSG kim@partner.example") and msg.payload.endswith(b"Hello from SIPp\r\n")
    code = yield watcher.wait()
    assert code == 0, sipp_report(tmp_path, "watcher.xml")
    assert not server.edge.notifier.subscriptions
    yield sb.disconnect()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_sipp_presentity_seen_by_an_msn_user(server, tmp_path):
    """
    SIPp as kim's side: the edge SUBSCRIBEs on alice's behalf when she
    adds kim; kim's NOTIFYs (open with note Busy, then closed) reach alice
    as NLN BSY and FLN; removing kim unsubscribes.
    """
    presentity = sipp(tmp_path, "presentity.xml", server, remote=False)
    alice = yield online(server)
    alice.send("ADD 20 FL kim@partner.example Kim")
    yield alice.expect(r"ADD 20 FL \d+ kim@partner\.example Kim 0")
    yield alice.expect_line("NLN BSY kim@partner.example kim@partner.example", timeout=15.0)
    yield alice.expect_line("FLN kim@partner.example", timeout=15.0)
    alice.send("REM 21 FL kim@partner.example")
    yield alice.expect(r"REM 21 FL \d+ kim@partner\.example")
    code = yield presentity.wait()
    assert code == 0, sipp_report(tmp_path, "presentity.xml")
    yield alice.disconnect()


# baresip


class Baresip:
    """
    baresip 1.0 as kim@partner.example, headless: configured in a
    directory of its own, every request through the msnp edge (its
    outbound proxy), driven through its UDP console (cons module).
    """

    def __init__(self, tmp_path, server, contacts=('"Alice" <sip:alice@example.com>;presence=p2p',)):
        program = ensure_installed("baresip")
        self.directory = tmp_path / "baresip"
        self.directory.mkdir()
        self.console_port = free_sip_port()  # the console listens on TCP too
        (self.directory / "config").write_text(
            "poll_method epoll\n"
            f"sip_listen 127.0.0.1:{server.ua_port}\n"
            "module_path /usr/lib/baresip/modules\n"
            "module g711.so\n"
            "module cons.so\n"
            "module_tmp uuid.so\n"
            "module_tmp account.so\n"
            "module_app contact.so\n"
            "module_app menu.so\n"
            "module_app presence.so\n"
            f"cons_listen 127.0.0.1:{self.console_port}\n"
        )
        (self.directory / "accounts").write_text(
            f'<sip:kim@partner.example>;regint=0;pubint=0;outbound="sip:127.0.0.1:{server.sip_port}"\n'
        )
        (self.directory / "contacts").write_text("".join(line + "\n" for line in contacts))
        # No newline at the end, or baresip does not find the contact.
        (self.directory / "current_contact").write_text("sip:alice@example.com")
        # -s: baresip prints every SIP message, so what it received shows.
        self.child = Child([program, "-s", "-f", str(self.directory)], str(self.directory), log_path=str(tmp_path / "baresip.log"))
        self.replies = []
        self._socket = None

    @defer.inlineCallbacks
    def command(self, text: str, expect: str = "", timeout: float = 10.0):
        """
        Send a console command; with C{expect}, wait until the answer (or
        baresip's output) contains it and return everything said since.
        """
        from twisted.internet.protocol import DatagramProtocol

        if self._socket is None:
            owner = self

            class Console(DatagramProtocol):
                def datagramReceived(self, data, address):
                    owner.replies.append(data.decode("utf-8", "replace"))

            self._socket = reactor.listenUDP(0, Console(), interface="127.0.0.1")
        before = len(self.replies)
        mark = len(self.child.output)
        self._socket.write((text + "\n").encode("utf-8"), ("127.0.0.1", self.console_port))
        deadline = reactor.seconds() + timeout
        while expect:
            said = "".join(self.replies[before:]) + self.child.output[mark:]
            if expect in said:
                return said
            if reactor.seconds() > deadline:
                raise AssertionError(f"baresip: {text!r} did not lead to {expect!r}; said {said!r}")
            d = defer.Deferred()
            reactor.callLater(0.05, d.callback, None)
            yield d
        return ""

    @defer.inlineCallbacks
    def stop(self):
        if self._socket is not None:
            yield self._socket.stopListening()
        yield self.child.stop("TERM", 5.0)
        self.child.kill()
        yield self.child.wait(5.0)


@pytest_twisted.inlineCallbacks
def test_baresip_watches_alice_and_is_watched_and_messages_both_ways(ua_server, tmp_path):
    """
    baresip as kim: its SUBSCRIBE (allowed by alice) shows alice Online;
    alice adds kim and sees baresip's /presence_online as NLN and
    /presence_offline as FLN; baresip's /message rings alice and reaches
    her MSG; alice's reply is delivered (ACK), and typing answered 415
    stops typing notices to kim.
    """
    server = ua_server
    alice = yield online(server)
    alice.send("ADD 20 AL kim@partner.example kim@partner.example")
    yield alice.expect(r"ADD 20 AL \d+ kim@partner\.example kim@partner\.example")
    baresip = Baresip(tmp_path, server)
    try:
        yield baresip.child.wait_for_output("baresip is ready", timeout=30.0)
        yield until(lambda: server.edge.notifier.subscriptions, what="baresip subscribed to alice")
        yield alice.expect(r"ADD 0 RL \d+ kim@partner\.example kim@partner\.example")
        contacts = yield baresip.command("/contacts", "Online")
        assert "alice@example.com" in contacts

        alice.send("ADD 21 FL kim@partner.example Kim")
        yield alice.expect(r"ADD 21 FL \d+ kim@partner\.example Kim 0")
        yield until(lambda: any(w.state == "active" for w in server.edge.watcher.watches.values()), what="alice's subscription to kim")
        yield baresip.command("/presence_online")
        yield alice.expect_line("NLN NLN kim@partner.example kim@partner.example", timeout=10.0)
        yield baresip.command("/presence_offline")
        yield alice.expect_line("FLN kim@partner.example", timeout=10.0)
        yield baresip.command("/presence_online")
        yield alice.expect_line("NLN NLN kim@partner.example kim@partner.example", timeout=10.0)

        yield baresip.command("/message Hello from baresip")
        sb, ring, roster = yield answer_ring(alice, ALICE)
        assert ring[3] == KIM
        msg = yield sb.next()
        assert msg.text.startswith("MSG kim@partner.example") and msg.payload.endswith(b"Hello from baresip")

        sb.send_payload("MSG 2 A", TEXT + b"Hi baresip")
        yield sb.expect_line("ACK 2", timeout=10.0)
        yield baresip.child.wait_for_output("Hi baresip")  # in its trace of the MESSAGE it took
        sb.send_payload("MSG 3 U", b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: alice@example.com\r\n\r\n\r\n")
        yield until(lambda: KIM in server.edge.im.no_typing, what="isComposing refused")
        yield sb.disconnect()
        yield alice.disconnect()
    finally:
        yield baresip.stop()


# linphone


@pytest_twisted.inlineCallbacks
def test_linphonec_messages_both_ways_and_watches_alice(server, tmp_path):
    """
    linphonec (liblinphone 5.1) as carol@partner.example with the edge as
    its proxy (no REGISTER): its chat command rings alice and reaches her
    MSG; alice's reply is shown by linphonec; its friend subscription
    (if it sends one) is answered like any watcher's.
    """
    program = ensure_installed("linphonec")
    alice = yield online(server)
    home = tmp_path / "home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True)  # its message database
    rc = home / "linphonerc"
    rc.write_text(
        "[sip]\n"
        f"sip_port={server.ua_port}\nsip_tcp_port=0\nsip_tls_port=0\nguess_hostname=0\n"
        f'contact="Carol" <sip:carol@127.0.0.1:{server.ua_port}>\ndefault_proxy=0\n'
        "[proxy_0]\n"
        f"reg_proxy=<sip:127.0.0.1:{server.sip_port};transport=udp>\n"
        f"reg_route=<sip:127.0.0.1:{server.sip_port};transport=udp;lr>\n"
        'reg_identity="Carol" <sip:carol@partner.example>\nreg_sendregister=0\npublish=0\n'
    )
    linphone = Child([program, "-c", str(rc), "-d", "0"], str(home), env=dict(os.environ, HOME=str(home)), log_path=str(tmp_path / "linphonec.log"))
    try:
        yield linphone.wait_for_output("linphonec>", timeout=30.0)
        linphone.send_line("chat sip:alice@example.com Hello from linphone")
        sb, ring, roster = yield answer_ring(alice, ALICE)
        assert ring[3] == "carol@partner.example"
        msg = yield sb.next()
        assert msg.text.startswith("MSG carol@partner.example") and msg.payload.endswith(b"Hello from linphone")
        sb.send_payload("MSG 2 A", TEXT + b"Hi linphone")
        yield sb.expect_line("ACK 2", timeout=10.0)
        yield linphone.wait_for_output("Hi linphone")
        yield sb.disconnect()
        yield alice.disconnect()
    finally:
        linphone.send_line("quit")
        yield linphone.wait(10.0)
