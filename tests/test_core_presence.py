"""
Presence, conversations and the directory without sockets or a reactor:
what each status change publishes and which endpoints hear of it.
"""

import pytest
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from corefakes import RecordingEndpoint, World
from msnp.core import errors, events, status as statuses
from msnp.core.accounts import ILoginThrottle, LoginThrottle
from msnp.core.conversations import Conversation
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.config import ServerConfig
from msnp.directory.interface import IDirectory
from msnp.directory.local import LocalDirectory
from msnp.msn.auth import IPassportTickets, PassportTickets


@pytest.fixture
def world():
    world = World()
    # bob and carol watch alice; carol is blocked.
    for watcher in ("bob@example.com", "carol@example.com"):
        endpoint = world.sign_in(watcher, statuses.ONLINE)
        world.result(world.messenger.lists.add(endpoint.me, "FL", "alice@example.com", "Alice"))
        world.messenger.sign_out(endpoint.me)
    alice = world.sign_in("alice@example.com")
    world.result(world.messenger.lists.add(alice.me, "BL", "carol@example.com", "Carol"))
    world.messenger.sign_out(alice.me)
    world.events()
    return world


def test_interfaces_are_provided():
    """
    The local implementations and the fakes provide the interfaces the
    core is written against.
    """
    assert verifyObject(IDirectory, LocalDirectory("n"))
    assert verifyObject(ILoginThrottle, LoginThrottle(ServerConfig(), lambda: 0.0))
    assert verifyObject(IPassportTickets, PassportTickets(60, lambda: 0.0))
    assert verifyObject(IEndpoint, RecordingEndpoint("a@example.com", []))


def test_first_status_reaches_allowed_watchers_only(world):
    """
    alice's first status goes to bob (allowed) and not to carol (blocked);
    setting the same status again tells nobody.
    """
    bob = world.sign_in("bob@example.com", statuses.ONLINE)
    carol = world.sign_in("carol@example.com", statuses.ONLINE)
    alice = world.sign_in("alice@example.com")
    world.events()
    assert world.messenger.presence.set_status(alice.me, statuses.AWAY, 0x10, "obj") is True
    assert world.events() == [
        ("bob@example.com", events.PresenceChanged("alice@example.com", statuses.AWAY, "Alice", 0x10, "obj")),
    ]
    assert bob.me and carol.me
    assert world.messenger.presence.set_status(alice.me, statuses.AWAY, 0x10, "obj") is False
    assert world.events() == []


def test_hiding_is_going_offline_and_details_only_changes(world):
    """
    HIDDEN is announced as offline; a change of capabilities alone is
    marked details_only.
    """
    world.sign_in("bob@example.com", statuses.ONLINE)
    alice = world.sign_in("alice@example.com", statuses.ONLINE)
    world.events()
    presence = world.messenger.presence
    presence.set_status(alice.me, statuses.ONLINE, 5)
    assert world.events() == [
        ("bob@example.com", events.PresenceChanged("alice@example.com", statuses.ONLINE, "Alice", 5, "", True))
    ]
    presence.set_status(alice.me, statuses.HIDDEN)
    assert world.events() == [("bob@example.com", events.PresenceChanged("alice@example.com", None, "Alice"))]
    presence.set_status(alice.me, statuses.HIDDEN, 7)
    assert world.events() == []


def test_visible_contacts_follow_the_privacy_of_each_contact(world):
    """
    The records a signing-in watcher gets: shown contacts whose rules let
    them see, in the order asked.
    """
    alice = world.sign_in("alice@example.com", statuses.BUSY)
    bob = world.sign_in("bob@example.com")
    carol = world.sign_in("carol@example.com")
    seen_by_bob = world.result(world.messenger.presence.visible_contacts(bob.me, ["alice@example.com"]))
    assert [(r.handle, r.status) for r in seen_by_bob] == [("alice@example.com", statuses.BUSY)]
    assert world.result(world.messenger.presence.visible_contacts(carol.me, ["alice@example.com"])) == []
    world.messenger.presence.set_status(alice.me, statuses.HIDDEN)
    assert world.result(world.messenger.presence.visible_contacts(bob.me, ["alice@example.com"])) == []


def test_signing_out_announces_offline_and_withdraws(world):
    world.sign_in("bob@example.com", statuses.ONLINE)
    alice = world.sign_in("alice@example.com", statuses.ONLINE)
    world.events()
    world.messenger.sign_out(alice.me)
    assert world.events() == [("bob@example.com", events.PresenceChanged("alice@example.com", None, "Alice"))]
    assert world.result(world.directory.presence_of(["alice@example.com"])) == {}
    assert world.result(world.directory.endpoints_of("alice@example.com")) == []


def test_personal_message_follows_when_shown(world):
    world.sign_in("bob@example.com", statuses.ONLINE)
    alice = world.sign_in("alice@example.com")
    world.events()
    world.messenger.presence.set_personal_message(alice.me, b"<Data/>")
    assert world.events() == []
    world.messenger.presence.set_status(alice.me, statuses.ONLINE)
    assert [type(e).__name__ for _, e in world.events()] == ["PresenceChanged", "PersonalMessageChanged"]


def test_a_second_sign_in_replaces_the_first(world):
    """
    Signing in again through the same protocol kicks the endpoint there
    was; another protocol's endpoint stays.
    """
    first = world.sign_in("alice@example.com")
    other = RecordingEndpoint("alice@example.com", world.log, protocol="rvp")
    world.directory.attach(other, other.endpoint_record("alice@example.com", 0))
    second = RecordingEndpoint("alice@example.com", world.log)
    second.endpoint_id = "test/second"
    replaced = world.result(world.directory.attach(second, second.endpoint_record("alice@example.com", 0)))
    assert [r.endpoint_id for r in replaced] == [first.endpoint_id]
    assert world.events() == [("alice@example.com", events.Kicked(events.REPLACED))]
    ids = {r.endpoint_id for r in world.result(world.directory.endpoints_of("alice@example.com"))}
    assert ids == {other.endpoint_id, "test/second"}


def test_kick_reaches_every_endpoint(world):
    world.sign_in("alice@example.com")
    assert world.result(world.messenger.kick("alice@example.com", events.LOCKED)) == 1
    assert world.events() == [("alice@example.com", events.Kicked(events.LOCKED))]


class Speaker:
    """
    A participant that records what the conversation gives it.
    """

    def __init__(self, handle, log, delivers=True):
        self.handle = handle
        self.name = handle.split("@")[0]
        self.log = log
        self.delivers = delivers

    def joined(self, newcomer):
        self.log.append((self.handle, "joined", newcomer.handle))

    def left(self, leaver, idle):
        self.log.append((self.handle, "left", leaver.handle, idle))

    def message(self, sender, payload, now):
        self.log.append((self.handle, "message", sender.handle, payload))
        return self.delivers


def test_invitations_follow_presence_and_privacy(world):
    """
    A shown, accepting callee is rung; a blocked caller, a hidden or
    refusing callee gets UserOffline and nobody is rung.
    """
    alice = world.sign_in("alice@example.com", statuses.ONLINE)
    world.events()
    conversation = Conversation("123", "sb:1865")
    bob = Speaker("bob@example.com", world.log)
    carol = Speaker("carol@example.com", world.log)
    conversations = world.messenger.conversations
    world.result(conversations.invite(conversation, bob, "alice@example.com", 60))
    assert world.events() == [
        ("alice@example.com", events.Ring("alice@example.com", "123", "sb:1865", "bob@example.com", "bob"))
    ]
    outcome = world.result(conversations.invite(conversation, carol, "alice@example.com", 60))
    assert isinstance(outcome, Failure) and outcome.check(errors.UserOffline)
    world.messenger.presence.set_accepts_invitations(alice.me, False)
    assert world.result(conversations.invite(conversation, bob, "alice@example.com", 60)).check(errors.UserOffline)
    world.events()
    assert world.result(conversations.invite(conversation, bob, "dave@example.com", 60)).check(errors.UserOffline)
    assert world.events() == []


def test_conversation_roster_and_relay():
    """
    Joins and leaves are told to the others in order; a message is
    delivered when every other participant took it.
    """
    log = []
    conversation = Conversation("1", "sb")
    alice, bob, carol = (Speaker(h, log) for h in ("alice@x", "bob@x", "carol@x"))
    assert conversation.join(alice) == []
    assert conversation.join(bob) == [alice]
    conversation.join(carol)
    assert conversation.relay(alice, b"hi") is True
    carol.delivers = False
    assert conversation.relay(alice, b"again") is False
    conversation.leave(bob, idle=True)
    assert log == [
        ("alice@x", "joined", "bob@x"),
        ("alice@x", "joined", "carol@x"),
        ("bob@x", "joined", "carol@x"),
        ("bob@x", "message", "alice@x", b"hi"),
        ("carol@x", "message", "alice@x", b"hi"),
        ("bob@x", "message", "alice@x", b"again"),
        ("carol@x", "message", "alice@x", b"again"),
        ("alice@x", "left", "bob@x", True),
        ("carol@x", "left", "bob@x", True),
    ]
    assert not conversation.ended


def test_endpoint_records_are_plain_data():
    record = EndpointRecord("n/1", "a@x", "n", "msn", "MSNP12", "MSNMSGR 7.5", "127.0.0.1", 5.0)
    assert record == EndpointRecord("n/1", "a@x", "n", "msn", "MSNP12", "MSNMSGR 7.5", "127.0.0.1", 5.0)
