"""
msnp.client against a live server: signing in through dispatch with MD5
and with Passport over verified TLS, lists and presence, conversations
with delivery reported from ACK and NAK, and keep-alive and reconnection.
"""

from __future__ import annotations

import functools

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.testing import StringTransport

from msnp.client import (
    AWAY,
    BUSY,
    OFFLINE,
    ONLINE,
    Client,
    ConnectionClosed,
    NotDelivered,
    ServerError,
    SignInError,
    UnsupportedByDialect,
)
from msnp.client.connection import CommandConnection
from msnp.devcert import write_self_signed


def live(test):
    """
    An C{async def} test run on the reactor, failed (not hung) when an
    awaited event never comes.
    """

    @functools.wraps(test)
    async def bounded(*args, **kwargs):
        running = defer.ensureDeferred(test(*args, **kwargs))
        running.addTimeout(20, reactor)
        return await running

    return pytest_twisted.ensureDeferred(bounded)


def client_for(server, handle, dialect="MSNP7", **options):
    password = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol", "dave": "pw-dave"}[handle.split("@")[0]]
    return Client(
        handle,
        password,
        server=f"127.0.0.1:{server.dispatch_port}",
        dialects=[dialect],
        nexus=f"https://127.0.0.1:{server.passport_port}/rdr/pprdr.asp",
        trust=server.cert_pem,
        **options,
    )


def next_event(client, name):
    """
    A Deferred that fires with the arguments of the next C{name} event.
    """
    d = defer.Deferred()

    def once(*args):
        if not d.called:
            d.callback(args)

    client.events.add(name, once)
    return d


def until(client, name, predicate):
    """
    A Deferred that fires with the arguments of the first C{name} event
    from now on whose arguments satisfy C{predicate}.
    """
    d = defer.Deferred()

    def check(*args):
        if not d.called and predicate(*args):
            d.callback(args)

    client.events.add(name, check)
    return d


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP7", "MSNP8", "MSNP12"])
@live
async def test_sign_in_sees_contacts_come_and_go(live_server, dialect):
    """
    In each dialect family the client signs in through dispatch (MD5 or
    Passport), has its list after SYN, and sees a contact come online,
    change status and name, and go offline.
    """
    alice = client_for(live_server, "alice@example.com", dialect)
    await alice.sign_in()
    assert alice.dialect.name == dialect and alice.status == ONLINE and alice.name == "Alice"
    await alice.add_contact("bob@example.com", "Bob")
    assert alice.contacts["bob@example.com"].lists == {"FL"} and not alice.contacts["bob@example.com"].online

    bob = client_for(live_server, "bob@example.com", "MSNP12")
    added = next_event(bob, "added_by")
    came = until(alice, "presence", lambda c: c.status == ONLINE)
    await bob.sign_in()
    (contact,) = await came
    assert contact.handle == "bob@example.com" and contact.name == "Bob"
    assert "RL" in bob.contacts["alice@example.com"].lists
    if dialect != "MSNP12":
        # Added while bob was offline: he learns of it from SYN, not an event.
        assert not added.called

    changed = until(alice, "presence", lambda c: c.status == BUSY and c.name == "Robert")
    await bob.set_status(BUSY)
    await bob.set_name("Robert")
    await changed
    gone = until(alice, "presence", lambda c: c.status == OFFLINE)
    await bob.sign_out()
    await gone
    await alice.sign_out()


@live
async def test_reverse_list_events_and_privacy(live_server):
    """
    Being added and removed reaches the other user as events; block hides
    me from a watcher (they see me offline), allow shows me again.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP12")
    bob = client_for(live_server, "bob@example.com", "MSNP7")
    await alice.sign_in()
    await bob.sign_in()
    added = next_event(alice, "added_by")
    await bob.add_contact("alice@example.com")
    assert await added == ("bob@example.com", "Bob")
    assert bob.contacts["alice@example.com"].status == ONLINE

    hidden = until(bob, "presence", lambda c: c.status == OFFLINE)
    await alice.block("bob@example.com")
    await hidden
    assert alice.contacts["bob@example.com"].lists == {"BL", "RL"}
    shown = until(bob, "presence", lambda c: c.status == ONLINE)
    await alice.allow("bob@example.com")
    await shown
    assert alice.contacts["bob@example.com"].lists == {"AL", "RL"}

    removed = next_event(alice, "removed_by")
    await bob.remove_contact("alice@example.com")
    assert await removed == ("bob@example.com",)
    await alice.sign_out()
    await bob.sign_out()


@live
async def test_contacts_and_groups_survive_the_next_sign_in(live_server):
    """
    What the client adds (with groups, by contact id in MSNP12) is what the
    next sign-in's SYN brings back; removing by contact id works.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP12")
    await alice.sign_in()
    group = await alice.add_group("Friends")
    await alice.add_contact("carol@example.com", "Carol", group=group)
    await alice.block("dave@example.com")
    await alice.sign_out()

    again = client_for(live_server, "alice@example.com", "MSNP12")
    await again.sign_in()
    assert again.groups == {group: "Friends"}
    carol = again.contacts["carol@example.com"]
    assert carol.lists == {"FL"} and carol.groups == {group} and carol.contact_id
    assert again.contacts["dave@example.com"].blocked
    await again.remove_contact("carol@example.com")
    await again.remove_group(group)
    await again.sign_out()

    old = client_for(live_server, "alice@example.com", "MSNP7")
    await old.sign_in()
    assert "carol@example.com" not in old.contacts
    assert old.contacts["dave@example.com"].blocked
    await old.sign_out()


@live
async def test_conversation_messages_typing_and_delivery(live_server):
    """
    A conversation across dialects: the callee is told of it, messages and
    typing notices arrive as events, send() fires on ACK; once the other
    side has left, send() fails with NotDelivered.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP12")
    bob = client_for(live_server, "bob@example.com", "MSNP2")
    await alice.sign_in()
    await bob.sign_in()
    incoming = next_event(bob, "conversation")
    conversation = await alice.start_conversation(["bob@example.com"])
    assert set(conversation.participants) == {"bob@example.com"}
    (theirs,) = await incoming
    assert theirs.participants == {"alice@example.com": "Alice"}

    typing = next_event(bob, "typing")
    heard = next_event(bob, "message")
    await conversation.send_typing()
    assert (await typing)[1] == "alice@example.com"
    await conversation.send("Hello, Bob! \u2603")
    _, message = await heard
    assert (message.sender, message.sender_name, message.text) == ("alice@example.com", "Alice", "Hello, Bob! \u2603")

    left = next_event(alice, "left")
    await theirs.leave()
    assert (await left)[1] == "bob@example.com"
    with pytest.raises(NotDelivered):
        await conversation.send("anyone?")
    await conversation.leave()
    assert alice.conversations == [] and bob.conversations == []
    await alice.sign_out()
    await bob.sign_out()


@live
async def test_invite_errors_and_unsupported_features(live_server):
    """
    Inviting someone offline fails with the server's 217; a personal
    message in MSNP7 is refused by the library itself; an action after
    signing out fails plainly; a wrong password is a SignInError with 911,
    for MD5 and for Passport.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP7")
    await alice.sign_in()
    with pytest.raises(ServerError) as refused:
        await alice.start_conversation(["carol@example.com"])
    assert refused.value.code == 217
    with pytest.raises(UnsupportedByDialect):
        await alice.set_personal_message("hi")
    await alice.sign_out()
    with pytest.raises(ConnectionClosed):
        await alice.set_status(BUSY)
    for dialect in ("MSNP7", "MSNP12"):
        wrong = client_for(live_server, "bob@example.com", dialect)
        wrong.password = "wrong"
        with pytest.raises(SignInError) as failed:
            await wrong.sign_in()
        assert failed.value.code == 911


@live
async def test_personal_message_reaches_watchers(live_server):
    """
    An MSNP12 personal message arrives at an MSNP11+ watcher as a presence
    event carrying the text.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP12")
    bob = client_for(live_server, "bob@example.com", "MSNP11")
    await bob.sign_in()
    await bob.add_contact("alice@example.com")
    await alice.sign_in()
    told = until(bob, "presence", lambda c: c.personal_message == "Out <for> lunch & back")
    await alice.set_personal_message("Out <for> lunch & back")
    await told
    await alice.set_status(AWAY)
    await alice.sign_out()
    await bob.sign_out()


@live
async def test_passport_tls_is_verified(live_server, tmp_path):
    """
    A trust store that does not hold the server's certificate makes the
    Passport login fail: the ticket is never sent over an unverified
    connection.
    """
    _, _, other_pem = write_self_signed(tmp_path)
    alice = client_for(live_server, "alice@example.com", "MSNP12")
    alice.trust = other_pem
    with pytest.raises(Exception) as failed:
        await alice.sign_in()
    assert "certificate" in repr(failed.value).lower() or "SSL" in repr(failed.value)


def sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@live
async def test_challenges_are_answered(live_server):
    """
    The server's CHL after the first CHG is answered in every dialect that
    has one: past the server's deadline (shortened here) the client is
    still signed in and its requests are answered.
    """
    live_server.config.challenge_deadline = 0.2
    clients = []
    for handle, dialect in (("alice@example.com", "MSNP7"), ("bob@example.com", "MSNP10"), ("carol@example.com", "MSNP12")):
        client = client_for(live_server, handle, dialect)
        await client.sign_in()
        clients.append(client)
    await sleep(0.4)
    for client in clients:
        await client.set_status(BUSY)
        await client.sign_out()


@live
async def test_reconnects_after_server_shutdown(live_server, tmp_path, server_config, accounts_database):
    """
    With reconnect on, OUT SSD signs the client out with reason SSD and it
    signs in again once the server is back on the same address.
    """
    from conftest import start_server

    alice = client_for(live_server, "alice@example.com", "MSNP7", reconnect=True, reconnect_delay=0.05)
    await alice.sign_in()
    out = next_event(alice, "signed_out")
    signed_in = next_event(alice, "signed_in")
    port = live_server.dispatch_port
    ns_port, sb_port = live_server.notification_port, live_server.switchboard_port
    await live_server.stop()
    assert await out == ("SSD",)
    again = await start_server(
        live_server.db_path,
        server_config,
        extra_endpoints={
            "dispatch": f"tcp:{port}:interface=127.0.0.1",
            "notification": f"tcp:{ns_port}:interface=127.0.0.1",
            "switchboard": f"tcp:{sb_port}:interface=127.0.0.1",
        },
    )
    try:
        await signed_in
        assert alice.status == ONLINE
        await alice.sign_out()
    finally:
        await again.stop()


def test_keep_alive_pings_follow_qng():
    """
    PNG goes out every ping interval; an MSNP9+ QNG names the next one.
    """
    clock = task.Clock()
    client = Client("alice@example.com", "pw", reactor=clock, ping_interval=45)
    transport = StringTransport()
    connection = CommandConnection(client._ns_command)
    connection.makeConnection(transport)
    client._ns = connection
    client._schedule_ping(client.ping_interval)
    clock.advance(44)
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value() == b"PNG\r\n"
    transport.clear()
    connection.dataReceived(b"QNG 20\r\n")
    clock.advance(19)
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value() == b"PNG\r\n"
    client._cancel_timers()
    assert clock.getDelayedCalls() == []
