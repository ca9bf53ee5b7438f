"""
The contact-list service without sockets or a reactor: each edit's store
call, its confirmation, and the events that follow, in exact order.
"""

import pytest
from twisted.python.failure import Failure

from corefakes import RecordingEndpoint, World
from msnp.core import errors, events, status as statuses


@pytest.fixture
def world():
    return World()


def confirmations(log):
    return lambda edit: log.append(("confirm", edit.version))


def test_adding_to_the_forward_list_confirms_then_tells_the_reverse_list(world):
    """
    FL add: committed, applied, confirmed to the caller, then bob's endpoint
    hears that alice added him, with his own new list version.
    """
    alice = world.sign_in("alice@example.com")
    bob = world.sign_in("bob@example.com")
    world.events()
    edit = world.result(world.messenger.lists.add(alice.me, "FL", "bob@example.com", "Bob", None, confirmations(world.log)))
    assert ("store", "add_to_list", "alice@example.com", "FL", "bob@example.com", "Bob", None) in world.store.log
    version = edit.version
    bob_version = world.store.database.load_user("bob@example.com").version
    assert world.events() == [
        ("confirm", version),
        ("bob@example.com", events.ReverseListChanged("bob@example.com", "alice@example.com", "Alice", True, bob_version)),
    ]
    assert alice.me.user.lists["FL"] == {"bob@example.com": "Bob"}
    assert alice.me.user.version == version
    assert bob.me is not None


def test_reverse_change_is_applied_idempotently(world):
    """
    Every endpoint of a user may apply the same reverse-list event.
    """
    bob = world.sign_in("bob@example.com")
    event = events.ReverseListChanged("bob@example.com", "alice@example.com", "Alice", True, 9)
    world.messenger.lists.apply_reverse_change(bob.me, event)
    world.messenger.lists.apply_reverse_change(bob.me, event)
    assert bob.me.user.lists["RL"] == {"alice@example.com": "Alice"}
    assert bob.me.user.version == 9


@pytest.mark.parametrize(
    "setup, lst, error",
    [
        ([("FL", "bob@example.com")], "FL", errors.AlreadyListed),
        ([("AL", "bob@example.com")], "BL", errors.InOppositeList),
        ([("BL", "bob@example.com")], "AL", errors.InOppositeList),
    ],
)
def test_refusals_touch_nothing(world, setup, lst, error):
    """
    A refused edit raises the domain error and never reaches the store.
    """
    alice = world.sign_in("alice@example.com")
    for setup_list, contact in setup:
        world.result(world.messenger.lists.add(alice.me, setup_list, contact, contact))
    world.log.clear()
    outcome = world.result(world.messenger.lists.add(alice.me, lst, "bob@example.com", "Bob"))
    assert isinstance(outcome, Failure) and outcome.check(error)
    assert world.log == []


def test_full_list(world):
    """
    Past the list's limit: ListFull.
    """
    world.messenger.lists._limits["AL"] = 0
    alice = world.sign_in("alice@example.com")
    outcome = world.result(world.messenger.lists.add(alice.me, "AL", "bob@example.com", "Bob"))
    assert outcome.check(errors.ListFull)


def test_unknown_account(world):
    """
    A contact without an account: the store's refusal becomes NoSuchUser.
    """
    alice = world.sign_in("alice@example.com")
    outcome = world.result(world.messenger.lists.add(alice.me, "FL", "nobody@example.com", "Nobody"))
    assert outcome.check(errors.NoSuchUser)
    assert alice.me.user.lists["FL"] == {}


def test_removing_from_the_forward_list_tells_the_reverse_list(world):
    alice = world.sign_in("alice@example.com")
    world.sign_in("bob@example.com")
    world.result(world.messenger.lists.add(alice.me, "FL", "bob@example.com", "Bob"))
    world.events()
    world.result(world.messenger.lists.remove(alice.me, "FL", "bob@example.com", confirmations(world.log)))
    ((_, version), (who, event)) = world.events()
    assert who == "bob@example.com"
    assert (event.watcher, event.added) == ("alice@example.com", False)
    assert world.result(world.messenger.lists.remove(alice.me, "FL", "bob@example.com")).check(errors.NotListed)


def test_blocking_a_watcher_hides_and_unblocking_shows(world):
    """
    Blocking an online watcher on alice's reverse list sends them alice
    offline right after the confirmation; unblocking shows her again.
    """
    bob = world.sign_in("bob@example.com", statuses.ONLINE)
    world.result(world.messenger.lists.add(bob.me, "FL", "alice@example.com", "Alice"))
    alice = world.sign_in("alice@example.com", statuses.BUSY)
    world.events()
    world.result(world.messenger.lists.add(alice.me, "BL", "bob@example.com", "Bob", None, confirmations(world.log)))
    (confirm, (who, hidden)) = world.events()
    assert confirm[0] == "confirm"
    assert who == "bob@example.com" and hidden.status is None and hidden.handle == "alice@example.com"
    world.result(world.messenger.lists.remove(alice.me, "BL", "bob@example.com", confirmations(world.log)))
    (confirm, (who, shown)) = world.events()
    assert (who, shown.status) == ("bob@example.com", statuses.BUSY)


def test_privacy_mode_change_reevaluates_every_watcher(world):
    """
    BLP to BL hides alice from every watcher not on her allow list.
    """
    bob = world.sign_in("bob@example.com", statuses.ONLINE)
    carol = world.sign_in("carol@example.com", statuses.ONLINE)
    for watcher in (bob, carol):
        world.result(world.messenger.lists.add(watcher.me, "FL", "alice@example.com", "Alice"))
    alice = world.sign_in("alice@example.com", statuses.ONLINE)
    world.result(world.messenger.lists.add(alice.me, "AL", "carol@example.com", "Carol"))
    world.events()
    world.result(world.messenger.lists.set_privacy(alice.me, "blp", "BL", confirmations(world.log)))
    happened = world.events()
    assert happened[0][0] == "confirm"
    assert [(who, e.status) for who, e in happened[1:]] == [("bob@example.com", None)]
    assert world.result(world.messenger.lists.set_privacy(alice.me, "blp", "BL")).check(errors.AlreadyInMode)


def test_groups(world):
    """
    Groups: numbered from the first free one, renamed, removed (group 0
    stays), and contacts only in a removed group leave the forward list.
    """
    alice = world.sign_in("alice@example.com")
    lists = world.messenger.lists
    work = world.result(lists.add_group(alice.me, "Work")).group_id
    assert alice.me.user.groups[work] == "Work"
    world.result(lists.add(alice.me, "FL", "bob@example.com", "Bob", work))
    world.result(lists.rename_group(alice.me, work, "Office"))
    assert alice.me.user.groups[work] == "Office"
    assert world.result(lists.remove_group(alice.me, 0)).check(errors.CannotRemoveGroupZero)
    assert world.result(lists.remove_from_group(alice.me, "bob@example.com", 0)).check(errors.NotInGroup)
    world.result(lists.remove_group(alice.me, work))
    assert "bob@example.com" not in alice.me.user.lists["FL"]
    assert world.result(lists.rename_group(alice.me, work, "x")).check(errors.NoSuchGroup)
    lists.max_groups = len(alice.me.user.groups)
    assert world.result(lists.add_group(alice.me, "More")).check(errors.TooManyGroups)


def test_privacy_edits_reach_federated_handles_whatever_the_status(world):
    """
    Every allow/block edit of a federated contact, and a mode change to the
    federated reverse-list entries, is told as L{events.PrivacyChanged}
    even while alice is hidden or when the MSN view does not change (off
    the allow list under BLP AL); local contacts get no such event.
    """
    got = []
    world.messenger.lists.federated_domains.add("partner.example")
    world.directory.route_domain("partner.example", lambda handle: RecordingEndpoint(handle, got))
    kim, lee = "kim@partner.example", "lee@partner.example"
    alice = world.sign_in("alice@example.com", statuses.HIDDEN)
    lists = world.messenger.lists
    for watcher in (kim, lee, "bob@example.com"):
        alice.me.user.lists["RL"][watcher] = watcher
    changed = events.PrivacyChanged("alice@example.com")
    world.result(lists.add(alice.me, "AL", kim, kim))
    assert got == [(kim, changed)]
    world.result(lists.remove(alice.me, "AL", kim))
    world.result(lists.add(alice.me, "BL", kim, kim))
    world.result(lists.add(alice.me, "AL", "bob@example.com", "Bob"))
    assert got == [(kim, changed)] * 3
    got.clear()
    world.result(lists.set_privacy(alice.me, "blp", "BL"))
    assert sorted(who for who, _ in got) == [kim, lee]
    got.clear()
    world.result(lists.set_privacy(alice.me, "gtc", "N"))
    world.result(lists.add(alice.me, "FL", lee, "Lee"))
    assert all(not isinstance(event, events.PrivacyChanged) for _, event in got)
    # Shown, off the allow list under BLP AL: no MSN watcher's view changes.
    world.messenger.presence.set_status(alice.me, statuses.ONLINE)
    world.result(lists.set_privacy(alice.me, "blp", "AL"))
    world.result(lists.add(alice.me, "AL", lee, lee))
    got.clear()
    world.events()
    world.result(lists.remove(alice.me, "AL", lee))
    assert got == [(lee, changed)] and [e for e in world.events() if e[0] != "confirm"] == []


def test_published_privacy_follows_every_edit(world):
    """
    The privacy view that travels with alice's presence record (what other
    nodes and the bridges decide by) follows block, unblock and mode edits.
    """
    alice = world.sign_in("alice@example.com", statuses.ONLINE)
    directory = world.messenger.directory

    def view():
        return world.result(directory.presence_of(["alice@example.com"]))["alice@example.com"].privacy

    assert view().allows("bob@example.com")
    world.result(world.messenger.lists.add(alice.me, "BL", "bob@example.com", "Bob"))
    assert not view().allows("bob@example.com")
    world.result(world.messenger.lists.remove(alice.me, "BL", "bob@example.com"))
    assert view().allows("bob@example.com")
    world.result(world.messenger.lists.add(alice.me, "AL", "carol@example.com", "Carol"))
    world.result(world.messenger.lists.set_privacy(alice.me, "blp", "BL"))
    assert (view().mode, view().allows("bob@example.com"), view().allows("carol@example.com")) == ("BL", False, True)
