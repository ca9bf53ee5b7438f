"""
Two msnp servers federating over SIP, each a real C{twistd msnp} process
with its own domain and database: a.example (alice) and b.example (bob),
each the other's --sip-peer, over TCP and over mutual TLS.  MSN users on both sides add each other, see
each other's presence, and chat through their own switchboards.
"""

from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import defer

from msnclient import answer_ring, go_online, login, open_switchboard
from serverprocess import ServerProcess, free_ports, make_accounts
from tlscerts import Authority

TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"


def typing(handle: str) -> bytes:
    return f"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: {handle}\r\n\r\n\r\n".encode("ascii")


@pytest.fixture(params=["tcp", "tls"])
def two_servers(request, tmp_path):
    """
    Over TCP, or over mutual TLS with certificates from one authority
    naming each server's domain.
    """
    transport = request.param
    authority = Authority(tmp_path) if transport == "tls" else None
    port_a, port_b = free_ports(2)
    servers = {}
    for name, domain, port, peer_domain, peer_port, user in (
        ("a", "a.example", port_a, "b.example", port_b, "alice"),
        ("b", "b.example", port_b, "a.example", port_a, "bob"),
    ):
        directory = tmp_path / name
        directory.mkdir()
        db_path = str(directory / "msnp.sqlite")
        make_accounts(db_path, {f"{user}@{domain}": (f"pw-{user}", user.title())})
        if authority is not None:
            key, cert = authority.issue(domain)
            listen = ["--sip", f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}", "--sip-ca", authority.path]
        else:
            listen = ["--sip", f"tcp:{port}:interface=127.0.0.1"]
        servers[name] = ServerProcess(
            directory,
            db_path,
            *listen,
            "--sip-domain", domain,
            "--sip-peer", f"{peer_domain}=sip:127.0.0.1:{peer_port};transport={transport}",
        )
    try:
        for server in servers.values():
            pytest_twisted.blockon(server.start())
        yield servers["a"], servers["b"]
    finally:
        for server in servers.values():
            server.kill()


@defer.inlineCallbacks
def signed_in(server, handle, password):
    client = yield login(server.notification_port, handle, password, "MSNP7", name=handle.split("@")[0])
    yield go_online(client)
    return client


@defer.inlineCallbacks
def expect_eventually(client, pattern, timeout=10.0):
    """
    Skip lines until one matches C{pattern} (what comes between depends
    on how the two servers' requests interleave); returns the match.
    """
    while True:
        line = yield client.next(timeout)
        match = re.fullmatch(pattern, line.text)
        if match is not None:
            return match


@pytest_twisted.inlineCallbacks
def test_msn_users_of_two_federated_servers_see_each_other_and_chat(two_servers):
    server_a, server_b = two_servers
    alice = yield signed_in(server_a, "alice@a.example", "pw-alice")
    bob = yield signed_in(server_b, "bob@b.example", "pw-bob")

    # alice adds bob: b.example refuses her subscription until bob agrees,
    # and bob's client hears that alice added him.
    alice.send("ADD 20 FL bob@b.example Bob")
    yield alice.expect(r"ADD 20 FL \d+ bob@b\.example Bob( 0)?")
    # The reverse lists show friendly names (the SUBSCRIBE's From).
    yield bob.expect(r"ADD 0 RL \d+ alice@a\.example Alice")

    # bob adds alice back: both subscriptions succeed.
    bob.send("ADD 21 AL alice@a.example Alice")
    yield bob.expect(r"ADD 21 AL \d+ alice@a\.example Alice")
    bob.send("ADD 22 FL alice@a.example Alice")
    yield bob.expect(r"ADD 22 FL \d+ alice@a\.example Alice( 0)?")
    yield expect_eventually(alice, r"ADD 0 RL \d+ bob@b\.example Bob")
    yield expect_eventually(bob, r"NLN NLN alice@a\.example alice@a\.example")
    yield expect_eventually(alice, r"NLN NLN bob@b\.example bob@b\.example")

    alice.send("CHG 23 BSY")
    yield alice.expect_line("CHG 23 BSY")
    yield expect_eventually(bob, r"NLN BSY alice@a\.example alice@a\.example")

    # alice calls bob: bob joins at once on a.example's switchboard (his
    # server stands for him); her message rings bob on b.example's.
    sb_alice = yield open_switchboard(alice, "alice@a.example")
    sb_alice.send("CAL 2 bob@b.example")
    yield sb_alice.expect(r"CAL 2 RINGING \d+")
    yield sb_alice.expect_line("JOI bob@b.example bob@b.example")
    sb_alice.send_payload("MSG 3 A", TEXT + "Hi Bob, caf\u00e9?".encode("utf-8"))
    sb_bob, ring, roster = yield answer_ring(bob, "bob@b.example")
    assert ring[3] == "alice@a.example" and roster == ["IRO 1 1 1 alice@a.example alice@a.example"]
    msg = yield sb_bob.next()
    assert msg.text.startswith("MSG alice@a.example alice@a.example ")
    assert msg.payload.endswith("Hi Bob, caf\u00e9?".encode("utf-8"))
    yield sb_alice.expect_line("ACK 3")

    # Typing and the reply come back into alice's conversation.
    sb_bob.send_payload("MSG 2 U", typing("bob@b.example"))
    shown = yield sb_alice.next()
    assert b"text/x-msmsgscontrol" in shown.payload and b"TypingUser: bob@b.example" in shown.payload
    sb_bob.send_payload("MSG 3 A", TEXT + b"Sure!")
    yield sb_bob.expect_line("ACK 3")
    reply = yield sb_alice.next()
    assert reply.text.startswith("MSG bob@b.example bob@b.example ") and reply.payload.endswith(b"Sure!")

    # bob blocks alice: his server ends her subscription and she sees him
    # offline.  Unblocking prompts her server to subscribe again at once
    # (not after its 300 s retry): she sees him online.
    bob.send("REM 24 AL alice@a.example")
    yield expect_eventually(bob, r"REM 24 AL \d+ alice@a\.example")
    bob.send("ADD 25 BL alice@a.example Alice")
    yield expect_eventually(bob, r"ADD 25 BL \d+ alice@a\.example Alice")
    yield expect_eventually(alice, r"FLN bob@b\.example")
    bob.send("REM 26 BL alice@a.example")
    yield expect_eventually(bob, r"REM 26 BL \d+ alice@a\.example")
    yield expect_eventually(alice, r"NLN NLN bob@b\.example bob@b\.example")

    # bob signs out: alice sees him go offline.
    yield sb_bob.disconnect()
    yield bob.disconnect()
    yield expect_eventually(alice, r"FLN bob@b\.example")
    yield sb_alice.disconnect()
    yield alice.disconnect()
