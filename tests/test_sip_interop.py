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
from sipua import Child, ensure_installed, free_udp_port

SCENARIOS = os.path.join(os.path.dirname(__file__), "sipp")
KIM = "kim@partner.example"
ALICE = "alice@example.com"
TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"


class Server:
    """
    msnp with its SIP edge on UDP, partner.example routed to C{ua_port}.
    """

    def __init__(self, db_path: str, ua_port: int):
        self.ua_port = ua_port
        settings = SipSettings(
            domains=["example.com"],
            peers=[Peer("partner.example", URI.parse(f"sip:127.0.0.1:{ua_port};transport=udp"))],
            stream_endpoints=["tcp:0:interface=127.0.0.1"],
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


@pytest.fixture
def server(tmp_path, accounts_database):
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    running = Server(str(db_path), free_udp_port())
    pytest_twisted.blockon(running.ready())
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
