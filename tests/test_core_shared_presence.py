"""
One published presence per user with several endpoints signed in at once
(an MSN and an RVP endpoint of one account), without sockets: the status
set last wins, idle yields to an endpoint that is not idle, and signing
one endpoint out shows the other's state instead of FLN.
"""

import pytest

from corefakes import RecordingEndpoint, World
from msnp.core import events, status as statuses

ALICE = "alice@example.com"
BOB = "bob@example.com"


@pytest.fixture
def world():
    world = World()
    bob = world.sign_in(BOB, statuses.ONLINE)
    world.result(world.messenger.lists.add(bob.me, "FL", ALICE, "Alice"))
    world.events()
    return world


def second_endpoint(world, handle=ALICE, protocol="rvp"):
    endpoint = RecordingEndpoint(handle, world.log, protocol)
    user = world.store.database.load_user(handle)
    world.messenger.sign_in(endpoint, user).addCallback(lambda me: setattr(endpoint, "me", me))
    return endpoint


def told_bob(world) -> list:
    return [
        (event.status if isinstance(event, events.PresenceChanged) else type(event).__name__)
        for handle, event in world.events()
        if handle == BOB and not isinstance(event, events.ReverseListChanged)
    ]


def published(world):
    return world.result(world.directory.presence_of([ALICE])).get(ALICE)


def test_the_status_set_last_wins_and_idle_yields(world):
    """
    MSN online, then RVP busy: busy is shown (and published); MSN away:
    away.  RVP going idle changes nothing while MSN is not idle; MSN idle
    too: idle.
    """
    presence = world.messenger.presence
    msn = world.sign_in(ALICE, statuses.ONLINE)
    rvp = second_endpoint(world)
    assert told_bob(world) == [statuses.ONLINE]
    presence.set_status(rvp.me, statuses.BUSY)
    assert told_bob(world) == [statuses.BUSY]
    assert published(world).endpoint_id == rvp.endpoint_id
    presence.set_status(msn.me, statuses.AWAY)
    assert told_bob(world) == [statuses.AWAY]
    presence.set_status(rvp.me, statuses.IDLE)
    assert told_bob(world) == []
    assert published(world).status == statuses.AWAY
    presence.set_status(msn.me, statuses.IDLE)
    assert told_bob(world) == [statuses.IDLE]
    assert published(world).status == statuses.IDLE


def test_signing_one_endpoint_out_shows_the_other(world):
    """
    With MSN busy (set last) and RVP online, MSN signing out shows online,
    not FLN, and publishes the RVP endpoint's record; RVP signing out then
    is FLN.  Signing out an endpoint that is not the shown one changes
    nothing for watchers.
    """
    presence = world.messenger.presence
    rvp = second_endpoint(world)
    presence.set_status(rvp.me, statuses.ONLINE)
    msn = world.sign_in(ALICE, statuses.BUSY)
    assert told_bob(world) == [statuses.ONLINE, statuses.BUSY]
    world.messenger.sign_out(msn.me)
    assert told_bob(world) == [statuses.ONLINE]
    assert published(world).endpoint_id == rvp.endpoint_id
    msn = world.sign_in(ALICE, statuses.AWAY)
    presence.set_status(rvp.me, statuses.BUSY)
    assert told_bob(world) == [statuses.AWAY, statuses.BUSY]
    world.messenger.sign_out(msn.me)
    assert told_bob(world) == []
    assert published(world).status == statuses.BUSY
    world.messenger.sign_out(rvp.me)
    assert told_bob(world) == [None]
    assert published(world) is None


def test_hidden_set_last_hides_the_user(world):
    """
    Appear-offline is a choice like any other state: set last on one
    endpoint it hides the user (FLN) although the other shows online;
    when the hidden endpoint signs out the other is shown again.
    """
    presence = world.messenger.presence
    msn = world.sign_in(ALICE, statuses.ONLINE)
    rvp = second_endpoint(world)
    presence.set_status(rvp.me, statuses.HIDDEN)
    assert told_bob(world) == [statuses.ONLINE, None]
    assert not published(world).visible_to(BOB)
    world.messenger.sign_out(rvp.me)
    assert told_bob(world) == [statuses.ONLINE]
    assert published(world).endpoint_id == msn.endpoint_id


def test_a_privacy_edit_reaches_the_published_endpoint(world):
    """
    Blocking a watcher from the endpoint that is not the shown one hides
    the user from it at once, and the published record carries the new
    rule.
    """
    presence = world.messenger.presence
    msn = world.sign_in(ALICE, statuses.ONLINE)
    rvp = second_endpoint(world)
    presence.set_status(rvp.me, statuses.BUSY)
    world.events()
    world.result(world.messenger.lists.add(msn.me, "BL", BOB, "Bob"))
    assert told_bob(world) == [None]
    assert published(world).endpoint_id == rvp.endpoint_id
    assert not published(world).visible_to(BOB)
    world.result(world.messenger.lists.remove(msn.me, "BL", BOB))
    assert told_bob(world) == [statuses.BUSY]
