"""
RVP and MSN users of one server, each in their own protocol, over real
sockets: presence both ways with the state mapping, messages both ways
through a switchboard (RNG, MSG, typing, leave as BYE), subscriptions as
forward list with the reverse-list notice, and the ACL as the MSN privacy
lists.
"""

import pytest_twisted
from twisted.internet import defer

from msnclient import answer_ring, go_online, login, open_switchboard
from rvpclient import NS, RvpClient, state_in
from rvpserver import finish, rvp_user

ALICE = "alice@example.com"
BOB = "bob@example.com"


@defer.inlineCallbacks
def msn_user(server, handle, password, status="NLN"):
    client = yield login(server.notification_port, handle, password)
    yield go_online(client, status=status)
    return client


@defer.inlineCallbacks
def message_from(sb, handle, name="Alice"):
    """
    The next line at a switchboard client, which must be a MSG from
    C{handle}; returns it with its payload.
    """
    line = yield sb.next()
    assert line.args[:3] == ["MSG", handle, name] and len(line.payload) == int(line.args[3]), line
    return line


@pytest_twisted.inlineCallbacks
def test_rvp_states_reach_msn_watchers(server, rvp):
    """
    An MSN user watching an RVP user sees each RVP state as its MSN status
    at once: online NLN, busy BSY, idle IDL, back-soon BRB, away AWY,
    on-phone PHN, at-lunch LUN; invisible and offline FLN.
    """
    bob = yield msn_user(server, BOB, "pw-bob")
    bob.send("ADD 30 FL alice@example.com Alice")
    yield bob.expect(r"ADD 30 FL \d+ alice@example.com Alice( 0)?")
    alice, node = yield rvp_user(rvp, "alice", "online")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    path = "/instmsg/aliases/alice"
    view = rvp.frontend.presence.views(ALICE).popitem()[0]
    for state, code in [("busy", "BSY"), ("idle", "IDL"), ("back-soon", "BRB"), ("away", "AWY"),
                        ("on-phone", "PHN"), ("at-lunch", "LUN")]:
        yield alice.set_state(path, state, view_id=view)
        yield bob.expect_line(f"NLN {code} alice@example.com Alice")
    yield alice.set_state(path, "invisible", view_id=view)
    yield bob.expect_line("FLN alice@example.com")
    yield alice.set_state(path, "online", view_id=view)
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    yield alice.set_state(path, "offline", view_id=view)
    yield bob.expect_line("FLN alice@example.com")
    yield finish(alice, node, bob)


@pytest_twisted.inlineCallbacks
def test_msn_statuses_reach_rvp_watchers_and_subscribing_fills_the_lists(server, rvp):
    """
    An RVP user's property subscription to an MSN user puts them on its
    forward list (the MSN user gets ADD RL) and shows the MSN status; each
    CHG is NOTIFYed (NLN online … HDN offline), and so is signing out.
    """
    bob = yield msn_user(server, BOB, "pw-bob", "BSY")
    alice, node = yield rvp_user(rvp, "alice")
    reply = yield alice.subscribe(alice.url("bob"), alice.principal)
    assert state_in(reply.xml()) == "busy"
    yield bob.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    told = 0
    for code, state in [("NLN", "online"), ("IDL", "idle"), ("BRB", "back-soon"), ("AWY", "away"),
                        ("PHN", "on-phone"), ("LUN", "at-lunch"), ("HDN", "offline"), ("NLN", "online")]:
        bob.send(f"CHG 40 {code}")
        yield bob.expect(rf"CHG 40 {code}( .*)?")
        told += 1
        notifications = yield node.wait_for(told)
        assert state_in(notifications[-1].xml()) == state, code
    bob.send("OUT")
    yield bob.wait_closed()
    notifications = yield node.wait_for(told + 1)
    assert state_in(notifications[-1].xml()) == "offline"
    yield finish(alice, node)


@pytest_twisted.inlineCallbacks
def test_rvp_message_rings_the_msn_user(server, rvp):
    """
    An RVP user's NOTIFY to an MSN user rings them (RNG); once they answer,
    the message arrives as MSG and only then is the NOTIFY answered 200
    (DeepOr).  The MSN user's reply, typing and leaving come back as
    NOTIFYs under the RVP Session-Id; RVP typing arrives as
    text/x-msmsgscontrol and the RVP leave as BYE.
    """
    bob_ns = yield msn_user(server, BOB, "pw-bob")
    alice, node = yield rvp_user(rvp, "alice")
    session = "{11111111-2222-3333-4444-555555555555}"
    sent = alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "Let's have lunch", session_id=session)
    bob, ring, roster = yield answer_ring(bob_ns, BOB)
    assert ring[3] == ALICE
    assert roster == ["IRO 1 1 1 alice@example.com Alice"]
    message = yield message_from(bob, ALICE)
    assert message.payload.endswith(b"\r\n\r\nLet's have lunch")
    assert b"Content-Type: text/plain; charset=UTF-8\r\n" in message.payload
    assert b"Session-Id" not in message.payload
    reply = yield sent
    assert reply.status == 200

    bob.send_payload("MSG 2 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nSure, noon?")
    [back] = yield node.wait_for(1)
    assert back.xml().find("r:message/r:notification-from/r:contact/d:href", NS).text == alice.url("bob")
    assert back.header("RVP-From-Principal") == alice.url("bob")
    mime = back.mime()
    assert f"Session-Id: {session}" in mime and mime.endswith("Sure, noon?")

    bob.send_payload("MSG 3 U", b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n")
    [_, typing] = yield node.wait_for(2)
    assert "Content-Type: text/x-msmsgscontrol" in typing.mime() and "TypingUser: bob@example.com" in typing.mime()

    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "", session_id=session,
                                     content_type="text/x-msmsgscontrol", extra="TypingUser: alice@example.com\r\n")
    assert reply.status == 200
    typed = yield message_from(bob, ALICE)
    assert b"text/x-msmsgscontrol" in typed.payload and b"TypingUser: alice@example.com" in typed.payload

    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "", session_id=session, content_type="text/x-imleave")
    assert reply.status == 200
    yield bob.expect_line("BYE alice@example.com")
    yield finish(alice, node, bob, bob_ns)


@pytest_twisted.inlineCallbacks
def test_msn_user_calls_the_rvp_user(server, rvp):
    """
    An MSN user's CAL brings the RVP user into the conversation at once
    (JOI); each MSG becomes a NOTIFY under one Session-Id for the whole
    switchboard; the RVP reply with that Session-Id arrives in the same
    conversation; the MSN user's leaving is an x-imleave NOTIFY.
    """
    bob_ns = yield msn_user(server, BOB, "pw-bob")
    alice, node = yield rvp_user(rvp, "alice")
    bob = yield open_switchboard(bob_ns, BOB)
    bob.send("CAL 2 alice@example.com")
    yield bob.expect(r"CAL 2 RINGING \d+")
    yield bob.expect_line("JOI alice@example.com Alice")
    bob.send_payload("MSG 3 A", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello alice")
    yield bob.expect_line("ACK 3")
    bob.send_payload("MSG 4 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nsecond")
    first, second = yield node.wait_for(2)
    session = [line for line in first.mime().splitlines() if line.startswith("Session-Id: ")][0][12:]
    assert first.mime().endswith("hello alice") and f"Session-Id: {session}" in second.mime()
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "hi bob", session_id=session)
    assert reply.status == 200
    answer = yield message_from(bob, ALICE)
    assert answer.payload.endswith(b"hi bob")
    bob.send("OUT")
    yield bob.wait_closed()
    [_, _, leave] = yield node.wait_for(3)
    assert "Content-Type: text/x-imleave" in leave.mime() and f"Session-Id: {session}" in leave.mime()
    yield finish(alice, node, bob_ns)


@pytest_twisted.inlineCallbacks
def test_unreachable_msn_users_get_412(server, rvp):
    """
    A message to an MSN user who is offline, hidden, or blocks the RVP
    user is 412; an MSN CAL to an RVP user who is offline or blocks the
    caller is 217.
    """
    alice, node = yield rvp_user(rvp, "alice")
    reply = yield alice.send_message("/instmsg/aliases/carol", alice.url("carol"), "anyone?")
    assert reply.status == 412
    bob_ns = yield msn_user(server, BOB, "pw-bob", "HDN")
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "hidden?")
    assert reply.status == 412
    bob_ns.send("CHG 50 NLN")
    yield bob_ns.expect(r"CHG 50 NLN( .*)?")
    bob_ns.send("ADD 51 BL alice@example.com Alice")
    yield bob_ns.expect(r"ADD 51 BL \d+ alice@example.com Alice")
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "blocked?")
    assert reply.status == 412
    sb = yield open_switchboard(bob_ns, BOB)
    sb.send("CAL 2 carol@example.com")
    yield sb.expect_line("217 2")
    yield alice.write_acl("/instmsg/aliases/alice", "<a:ace><a:principal><a:rvp-principal>"
                          f"{alice.url('bob')}</a:rvp-principal><a:credentials><a:digest/></a:credentials></a:principal>"
                          "<a:grant/><a:deny><a:send-to/><a:presence/></a:deny></a:ace>")
    sb.send("CAL 3 alice@example.com")
    yield sb.expect_line("217 3")
    yield finish(alice, node, sb, bob_ns)


@pytest_twisted.inlineCallbacks
def test_acl_and_msn_privacy_are_one_rule(server, rvp):
    """
    An RVP ACL deny hides the RVP user from an MSN watcher (FLN) and an
    allow shows them again (NLN); an MSN BLP/BL change hides the MSN user
    from the RVP watcher (NOTIFY offline); the ACL read shows what MSN set.
    """
    bob = yield msn_user(server, BOB, "pw-bob")
    bob.send("ADD 30 FL alice@example.com Alice")
    yield bob.expect(r"ADD 30 FL \d+ alice@example.com Alice( 0)?")
    alice, node = yield rvp_user(rvp, "alice")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    deny = ("<a:ace><a:principal><a:rvp-principal>" + alice.url("bob") +
            "</a:rvp-principal><a:credentials><a:digest/></a:credentials></a:principal><a:grant/>"
            "<a:deny><a:presence/></a:deny></a:ace>")
    reply = yield alice.write_acl("/instmsg/aliases/alice", deny)
    assert reply.status == 200
    yield bob.expect_line("FLN alice@example.com")
    reply = yield alice.write_acl("/instmsg/aliases/alice", deny.replace("<a:grant/>", "<a:grant><a:presence/></a:grant>").replace("<a:deny><a:presence/></a:deny>", "<a:deny/>"))
    assert reply.status == 200
    yield bob.expect_line("NLN NLN alice@example.com Alice")

    reply = yield alice.subscribe(alice.url("bob"), alice.principal)
    assert state_in(reply.xml()) == "online"
    yield bob.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    # The privacy tab: bob watches through his MSN list, no RVP subscription.
    carol_client = RvpClient(rvp.port, username="carol", password="pw-carol",
                             principal=f"http://127.0.0.1:{rvp.port}/instmsg/aliases/carol")
    reply = yield carol_client.subscribe("/instmsg/aliases/alice", carol_client.principal)
    assert reply.status == 207
    reply = yield alice.subscriptions("/instmsg/aliases/alice")
    entries = reply.xml().findall("r:subscription", NS)
    assert [(e.findtext("r:subscription-id", None, NS), e.findtext("a:principal/a:rvp-principal", None, NS)) for e in entries] == [
        (reply_id := entries[0].findtext("r:subscription-id", None, NS), carol_client.principal), (None, alice.url("bob"))]
    assert reply_id
    reply = yield alice.subscriptions("/instmsg/aliases/alice", "pragma/notify")
    assert len(reply.xml().findall("r:subscription", NS)) == 1
    yield carol_client.close()
    bob.send("BLP 60 BL")
    yield bob.expect(r"BLP 60 \d+ BL")
    [told] = yield node.wait_for(1)
    assert state_in(told.xml()) == "offline"
    bob.send("ADD 61 AL alice@example.com Alice")
    yield bob.expect(r"ADD 61 AL \d+ alice@example.com Alice")
    [_, again] = yield node.wait_for(2)
    assert state_in(again.xml()) == "online"
    yield finish(alice, node, bob)
