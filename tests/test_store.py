"""
The store's behaviour through IStore, run on both engines (SQLite and a
throwaway PostgreSQL cluster) so that they cannot diverge: accounts and
both password forms, list versions, the reverse list, groups, privacy,
phone properties and their visibility, the errors, and names that only
some databases store as they are.
"""

from __future__ import annotations

import inspect

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface.verify import verifyObject

from msnp.store.interface import IStore
from msnp.store.postgres import PostgresDatabase, PostgresStore
from msnp.store.records import (
    Account,
    AccountExists,
    GroupRemoval,
    ListChange,
    NoSuchAccount,
    GroupIdTaken,
    UnknownAccount,
    verify_password_hash,
)
from msnp.store.sqlite import Database, ThreadedStore

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """
    A started, empty store of each kind.
    """
    if request.param == "sqlite":
        store = ThreadedStore(str(tmp_path / "store.sqlite"), reactor)
    else:
        store = PostgresStore(request.getfixturevalue("postgres_database"), reactor)
    pytest_twisted.blockon(store.start())
    yield store
    pytest_twisted.blockon(store.stop())


@pytest.fixture
def people(store):
    """
    alice, bob and carol, with their friendly names.
    """
    for handle, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        pytest_twisted.blockon(store.create_account(handle, "pw-" + name, name))
    return store


def store_failure(d: defer.Deferred) -> defer.Deferred:
    """
    Fires with the exception C{d} failed with (fails if it succeeded).
    """

    def succeeded(result):
        raise AssertionError(f"expected a failure, got {result!r}")

    return d.addCallbacks(succeeded, lambda failure: failure.value)


def test_both_stores_provide_istore(store):
    """
    Each store provides every operation of IStore.
    """
    assert verifyObject(IStore, store)


def test_database_signatures_match_the_interface():
    """
    The synchronous databases behind the stores take exactly the
    parameters IStore names, so a call means the same on both.
    """
    for name in IStore.names():
        if name in ("start", "stop"):
            continue
        declared = IStore[name].getSignatureInfo()
        expected = declared["positional"]
        for database in (Database, PostgresDatabase):
            parameters = list(inspect.signature(getattr(database, name)).parameters)[1:]
            assert tuple(parameters) == expected, (database.__name__, name)


@pytest_twisted.inlineCallbacks
def test_create_account_keeps_both_password_forms(store):
    """
    A new account: handle in lower case, name defaulting to the handle,
    the MD5 password-equivalent (unless keep_md5 is false) and a scrypt
    hash; the same handle in any case again is AccountExists.
    """
    account = yield store.create_account("Alice@Example.com", "secret")
    assert account.handle == ALICE and account.friendly_name == ALICE and account.md5_password == "secret"
    assert verify_password_hash("secret", account.password_hash)
    assert (yield store.get_account("ALICE@example.com")) == account
    error = yield store_failure(store.create_account("alice@EXAMPLE.com", "other"))
    assert isinstance(error, AccountExists)
    bare = yield store.create_account(BOB, "secret", "Bob", keep_md5=False)
    assert bare.md5_password == "" and verify_password_hash("secret", bare.password_hash)
    assert (yield store.get_account(BOB)) == bare
    assert (yield store.get_account("nobody@example.com")) is None


@pytest_twisted.inlineCallbacks
def test_list_accounts_in_byte_order(store):
    """
    Accounts listed by handle as bytes compare, whatever the database's
    collation would say.
    """
    for handle in ("ab@example.com", "a_b@example.com", "a-b@example.com", "a.b@example.com", "aa@example.com"):
        yield store.create_account(handle, "pw")
    listed = [account.handle for account in (yield store.list_accounts())]
    assert listed == sorted(listed, key=lambda handle: handle.encode())
    assert len(listed) == 5


@pytest_twisted.inlineCallbacks
def test_set_password_and_purge_md5(people):
    store = people
    yield store.set_password("ALICE@example.com", "new")
    alice = yield store.get_account(ALICE)
    assert alice.md5_password == "new" and verify_password_hash("new", alice.password_hash)
    yield store.set_password(BOB, "bob2", keep_md5=False)
    bob = yield store.get_account(BOB)
    assert bob.md5_password == "" and verify_password_hash("bob2", bob.password_hash)
    error = yield store_failure(store.set_password("nobody@example.com", "x"))
    assert isinstance(error, NoSuchAccount)
    assert (yield store.purge_md5_passwords()) == 2
    assert (yield store.purge_md5_passwords()) == 0
    assert all(account.md5_password == "" for account in (yield store.list_accounts()))
    # The slow hash still checks the password.
    assert verify_password_hash("new", (yield store.get_account(ALICE)).password_hash)


@pytest_twisted.inlineCallbacks
def test_new_account_state(people):
    """
    A new account is at list version 1 with GTC A, BLP AL, group 0 "~",
    empty lists and no properties.
    """
    user = yield people.load_user("Alice@Example.com")
    assert (user.handle, user.friendly_name, user.version, user.gtc, user.blp) == (ALICE, "Alice", 1, "A", "AL")
    assert user.lists == {"FL": {}, "AL": {}, "BL": {}, "RL": {}}
    assert (user.groups, user.memberships, user.properties) == ({0: "~"}, {}, {})
    assert (yield people.load_user("nobody@example.com")) is None


@pytest_twisted.inlineCallbacks
def test_load_user_admits_with_the_account(people):
    """
    admit sees the account (both password forms) and decides: refused
    gives None, admitted the state.
    """
    seen = []
    refused = yield people.load_user(BOB, lambda account: seen.append(account) or False)
    assert refused is None
    assert seen[0].handle == BOB and seen[0].md5_password == "pw-Bob" and isinstance(seen[0], Account)
    admitted = yield people.load_user(BOB, lambda account: True)
    assert admitted.handle == BOB


@pytest_twisted.inlineCallbacks
def test_forward_list_puts_the_owner_on_the_reverse_list(people):
    """
    ADD FL moves the owner's version on and, the first time, puts the owner
    (with the owner's name) on the contact's RL, moving that version on.
    """
    store = people
    change = yield store.add_to_list(ALICE, "FL", BOB, "Bobby", 0)
    assert change == ListChange(2, 2)
    alice = yield store.load_user(ALICE)
    bob = yield store.load_user(BOB)
    assert alice.lists["FL"] == {BOB: "Bobby"} and alice.memberships == {BOB: {0}}
    assert bob.lists["RL"] == {ALICE: "Alice"} and bob.version == 2
    # Already on bob's RL: only alice's version moves.
    assert (yield store.add_to_list(ALICE, "FL", BOB, "Bobby")) == ListChange(3, None)
    assert (yield store.add_to_list(ALICE, "AL", BOB, "Bobby")) == ListChange(4, None)
    assert (yield store.add_to_list(ALICE, "BL", CAROL, "Carol")) == ListChange(5, None)
    carol = yield store.load_user(CAROL)
    assert carol.version == 1 and carol.lists["RL"] == {}


@pytest_twisted.inlineCallbacks
def test_unknown_accounts_are_refused_and_change_nothing(people):
    store = people
    for call in (
        lambda: store.add_to_list(ALICE, "FL", "nobody@example.com", "x", 0),
        lambda: store.add_to_list("nobody@example.com", "FL", ALICE, "x"),
        lambda: store.set_friendly_name("nobody@example.com", "x"),
        lambda: store.add_group("nobody@example.com", 1, "x"),
    ):
        error = yield store_failure(call())
        assert isinstance(error, UnknownAccount) and str(error) == "nobody@example.com"
    alice = yield store.load_user(ALICE)
    assert alice.version == 1 and alice.lists["FL"] == {}


@pytest_twisted.inlineCallbacks
def test_remove_from_forward_list_leaves_the_reverse_list(people):
    """
    REM FL drops the contact's group memberships and the owner from the
    contact's RL (moving its version on); other lists touch only the owner.
    """
    store = people
    yield store.add_to_list(ALICE, "FL", BOB, "Bob", 0)
    yield store.add_to_list(ALICE, "AL", BOB, "Bob")
    assert (yield store.remove_from_list(ALICE, "AL", BOB)) == ListChange(4, None)
    assert (yield store.remove_from_list(ALICE, "FL", BOB)) == ListChange(5, 3)
    alice = yield store.load_user(ALICE)
    bob = yield store.load_user(BOB)
    assert alice.lists["FL"] == {} and alice.memberships == {}
    assert bob.lists["RL"] == {}
    # Nothing on the RL to remove: only the owner's version moves.
    assert (yield store.remove_from_list(ALICE, "FL", BOB)) == ListChange(6, None)


@pytest_twisted.inlineCallbacks
def test_lists_keep_the_order_entries_were_added_in(people):
    store = people
    handles = [f"c{index}@example.com" for index in range(6, 0, -1)]
    for handle in handles:
        yield store.create_account(handle, "pw")
    for handle in handles:
        yield store.add_to_list(ALICE, "AL", handle, handle.upper())
    yield store.add_to_list(ALICE, "BL", BOB, "Bob")
    yield store.remove_from_list(ALICE, "AL", handles[2])
    yield store.add_to_list(ALICE, "AL", handles[2], "again")
    alice = yield store.load_user(ALICE)
    assert list(alice.lists["AL"]) == handles[:2] + handles[3:] + [handles[2]]
    assert alice.lists["AL"][handles[0]] == handles[0].upper()


@pytest_twisted.inlineCallbacks
def test_groups(people):
    """
    ADG/REG/RMG and group membership: each moves the version by one; a
    taken group id is GroupIdTaken and changes nothing; removing a group drops the
    contacts only in it from the FL, and the owner from their RLs.
    """
    store = people
    assert (yield store.add_group(ALICE, 1, "Work")) == 2
    error = yield store_failure(store.add_group(ALICE, 1, "Again"))
    assert isinstance(error, GroupIdTaken)
    assert (yield store.rename_group(ALICE, 1, "Office")) == 3
    yield store.add_to_list(ALICE, "FL", BOB, "Bob", 1)  # 4
    yield store.add_to_list(ALICE, "FL", CAROL, "Carol", 1)  # 5
    assert (yield store.add_to_group(ALICE, CAROL, 0)) == 6
    assert (yield store.remove_from_group(ALICE, CAROL, 1)) == 7
    assert (yield store.add_to_group(ALICE, CAROL, 1)) == 8
    alice = yield store.load_user(ALICE)
    assert alice.groups == {0: "~", 1: "Office"}
    assert alice.memberships == {BOB: {1}, CAROL: {0, 1}}
    removal = yield store.remove_group(ALICE, 1, [BOB])
    assert removal == GroupRemoval(9, ((BOB, 3),))
    alice = yield store.load_user(ALICE)
    bob = yield store.load_user(BOB)
    assert alice.groups == {0: "~"} and alice.lists["FL"] == {CAROL: "Carol"}
    assert alice.memberships == {CAROL: {0}}
    assert bob.lists["RL"] == {} and bob.version == 3


@pytest_twisted.inlineCallbacks
def test_names_and_privacy(people):
    """
    REA of a contact renames it on every list but the RL (which keeps the
    name the owner had); REA of oneself, GTC and BLP each move the version.
    """
    store = people
    yield store.add_to_list(ALICE, "FL", BOB, "Bob")  # alice 2, bob 2
    yield store.add_to_list(ALICE, "AL", BOB, "Bob")  # 3
    yield store.add_to_list(BOB, "FL", ALICE, "Alice")  # bob 3, alice 4
    assert (yield store.rename_contact(ALICE, BOB, "Robert")) == 5
    assert (yield store.set_friendly_name(ALICE, "Alice A.")) == 6
    assert (yield store.set_privacy(ALICE, "gtc", "N")) == 7
    assert (yield store.set_privacy(ALICE, "blp", "BL")) == 8
    error = yield store_failure(store.set_privacy(ALICE, "friendly_name", "x"))
    assert isinstance(error, ValueError)
    alice = yield store.load_user(ALICE)
    assert alice.lists["FL"] == {BOB: "Robert"} and alice.lists["AL"] == {BOB: "Robert"}
    assert alice.lists["RL"] == {BOB: "Bob"}
    assert (alice.friendly_name, alice.gtc, alice.blp, alice.version) == ("Alice A.", "N", "BL", 8)
    assert (yield store.get_account(ALICE)).friendly_name == "Alice A."
    bob = yield store.load_user(BOB)
    assert bob.lists["RL"] == {ALICE: "Alice"}


@pytest_twisted.inlineCallbacks
def test_properties_and_who_may_see_them(people):
    """
    PRP sets and (empty) removes a phone property; BPR shows a contact's
    properties only to viewers its privacy lets see it: not blocked, and
    allowed or BLP AL.
    """
    store = people
    assert (yield store.set_property(BOB, "PHH", "1%20234")) == 2
    assert (yield store.set_property(BOB, "PHW", "5")) == 3
    assert (yield store.set_property(BOB, "PHW", "")) == 4
    assert (yield store.set_property(BOB, "MOB", "Y")) == 5
    assert (yield store.load_user(BOB)).properties == {"PHH": "1%20234", "MOB": "Y"}
    everyone = {BOB: {"PHH": "1%20234", "MOB": "Y"}}
    assert (yield store.contact_properties([ALICE, BOB, CAROL])) == everyone
    assert (yield store.contact_properties([])) == {}
    assert (yield store.contact_properties([BOB], ALICE)) == everyone
    yield store.add_to_list(BOB, "BL", ALICE, "Alice")
    assert (yield store.contact_properties([BOB], ALICE)) == {}
    assert (yield store.contact_properties([BOB], CAROL)) == everyone
    yield store.set_privacy(BOB, "blp", "BL")
    assert (yield store.contact_properties([BOB], CAROL)) == {}
    yield store.add_to_list(BOB, "AL", CAROL, "Carol")
    assert (yield store.contact_properties([BOB], CAROL)) == everyone


@pytest_twisted.inlineCallbacks
def test_delete_account_clears_it_from_other_lists(people):
    """
    Deleting an account removes it from every other list and group, moving
    those owners' versions on; the handle can then be taken afresh.
    """
    store = people
    yield store.add_to_list(ALICE, "FL", BOB, "Bob", 0)  # alice 2, bob 2
    yield store.add_to_list(BOB, "FL", CAROL, "Carol", 0)  # bob 3, carol 2
    yield store.set_property(BOB, "PHH", "1")  # bob 4
    versions = yield store.delete_account("BOB@example.com")
    assert versions == {ALICE: 3, CAROL: 3}
    assert (yield store.get_account(BOB)) is None
    alice = yield store.load_user(ALICE)
    carol = yield store.load_user(CAROL)
    assert alice.lists["FL"] == {} and alice.memberships == {} and alice.version == 3
    assert carol.lists["RL"] == {} and carol.version == 3
    assert (yield store.contact_properties([BOB])) == {}
    error = yield store_failure(store.delete_account(BOB))
    assert isinstance(error, NoSuchAccount)
    yield store.create_account(BOB, "pw")
    bob = yield store.load_user(BOB)
    assert bob.version == 1 and bob.lists == {"FL": {}, "AL": {}, "BL": {}, "RL": {}}


@pytest_twisted.inlineCallbacks
def test_locking_an_account(people):
    """
    A locked account says so with the account and to a login's admit
    check; unlocking clears it; an unknown account cannot be locked.
    """
    store = people
    assert (yield store.get_account(ALICE)).locked is False
    yield store.set_locked("Alice@Example.com", True)
    assert (yield store.get_account(ALICE)).locked is True
    assert [account.locked for account in (yield store.list_accounts()) if account.handle == ALICE] == [True]
    seen = []
    assert (yield store.load_user(ALICE, lambda account: seen.append(account.locked) or not account.locked)) is None
    assert seen == [True]
    yield store.set_locked(ALICE, False)
    assert (yield store.load_user(ALICE, lambda account: not account.locked)) is not None
    error = yield store_failure(store.set_locked("nobody@example.com", True))
    assert isinstance(error, NoSuchAccount)


@pytest_twisted.inlineCallbacks
def test_any_text_in_names_comes_back_as_it_went_in(people):
    """
    A friendly, contact or group name, or a property value, holding NUL
    (a client may send %00), backslashes or non-ASCII comes back unchanged.
    """
    store = people
    odd = "a\x00b\\0c\\\\d\\é\U0001f600"
    yield store.set_friendly_name(ALICE, odd)
    yield store.add_to_list(ALICE, "FL", BOB, odd, 0)
    yield store.add_group(ALICE, 1, odd)
    yield store.set_property(ALICE, "PHH", odd)
    alice = yield store.load_user(ALICE)
    assert alice.friendly_name == odd and alice.lists["FL"][BOB] == odd
    assert alice.groups[1] == odd and alice.properties["PHH"] == odd
    assert (yield store.get_account(ALICE)).friendly_name == odd
    assert (yield store.contact_properties([ALICE])) == {ALICE: {"PHH": odd}}
    # The owner's name as it goes onto the contact's RL.
    assert (yield store.load_user(BOB)).lists["RL"][ALICE] == odd


@pytest_twisted.inlineCallbacks
def test_concurrent_edits_of_two_lists_all_land(people):
    """
    alice and bob add and remove each other at the same time, many times
    over: every edit succeeds (conflicting transactions are run again) and
    each version moved on exactly once per edit that touched its lists.
    """
    store = people
    rounds = 20
    edits = []
    for _ in range(rounds):
        edits.append(store.add_to_list(ALICE, "FL", BOB, "Bob"))
        edits.append(store.add_to_list(BOB, "FL", ALICE, "Alice"))
        edits.append(store.rename_contact(ALICE, BOB, "Bob"))
        edits.append(store.rename_contact(BOB, ALICE, "Alice"))
    results = yield defer.gatherResults(edits)
    alice = yield store.load_user(ALICE)
    bob = yield store.load_user(BOB)
    # Each side: its own 2 edits per round, and one RL entry from the other.
    assert alice.version == 1 + 2 * rounds + 1 and bob.version == 1 + 2 * rounds + 1
    assert alice.lists["FL"] == {BOB: "Bob"} and alice.lists["RL"] == {BOB: "Bob"}
    owner_versions = [r.version if isinstance(r, ListChange) else r for r in results[0::2]]
    assert len(set(owner_versions)) == len(owner_versions)


@pytest_twisted.inlineCallbacks
def test_federated_contacts_and_watchers(people):
    """
    A handle of a federated domain (no account here) is listed when the
    caller says so, without any reverse list; a federated watcher goes on
    the owner's RL once; the entries of federated domains are found in
    the order they were added.
    """
    store = people
    kim, lee = "kim@partner.example", "lee@partner.example"
    error = yield store_failure(store.add_to_list(ALICE, "FL", kim, "Kim"))
    assert isinstance(error, UnknownAccount)
    assert (yield store.add_to_list(ALICE, "FL", kim, "Kim", 0, True)) == ListChange(2, None)
    assert (yield store.add_to_list(ALICE, "AL", kim, "Kim\\x00", None, True)) == ListChange(3, None)
    # A local contact named as federated is still a local contact.
    assert (yield store.add_to_list(BOB, "FL", CAROL, "Carol", None, True)) == ListChange(2, 2)
    assert (yield store.add_federated_watcher(ALICE, lee, "Lee")) == 4
    assert (yield store.add_federated_watcher(ALICE, lee, "Lee")) is None
    error = yield store_failure(store.add_federated_watcher("nobody@example.com", lee, "Lee"))
    assert isinstance(error, UnknownAccount)
    alice = yield store.load_user(ALICE)
    assert alice.lists["FL"] == {kim: "Kim"} and alice.lists["RL"] == {lee: "Lee"} and alice.memberships == {kim: {0}}
    entries = yield store.entries_in_domains(["partner.example", "none.example"])
    assert entries == [(ALICE, "FL", kim, "Kim"), (ALICE, "AL", kim, "Kim\\x00"), (ALICE, "RL", lee, "Lee")]
    assert (yield store.entries_in_domains(["partner_example"])) == []
    change = yield store.remove_from_list(ALICE, "FL", kim)
    assert change == ListChange(5, None)


@pytest_twisted.inlineCallbacks
def test_offline_messages_kept_limited_and_deleted(people):
    """
    Offline messages are kept oldest first per recipient, refused past
    the count and the size limits, unknown recipients refused, deleted by
    id (ids the recipient does not hold are left out), and gone with the
    account.
    """
    from msnp.store.records import MailboxFull, OfflineMessage

    store = people
    first = OfflineMessage("m1", BOB, "Bob", 10.0, "run", 1, "hello")
    second = OfflineMessage("m2", CAROL, "Carol", 11.0, "run2", 1, "h\u00e9")
    yield store.store_offline_message(ALICE, first, 2, 100)
    yield store.store_offline_message(ALICE, second, 2, 100)
    assert (yield store.offline_messages(ALICE)) == [first, second]
    assert isinstance((yield store_failure(store.store_offline_message(ALICE, OfflineMessage("m3", BOB, "Bob", 12.0, "r", 2, "x"), 2, 100))), MailboxFull)
    assert isinstance((yield store_failure(store.store_offline_message(BOB, OfflineMessage("m4", ALICE, "A", 12.0, "r", 2, "x" * 11), 5, 10))), MailboxFull)
    assert isinstance((yield store_failure(store.store_offline_message("nobody@example.com", first, 5, 100))), UnknownAccount)
    assert (yield store.delete_offline_messages(ALICE, ["m1", "m9"])) == ["m1"]
    assert (yield store.offline_messages(ALICE)) == [second]
    assert (yield store.offline_messages(BOB)) == []
    yield store.delete_account(ALICE)
    assert (yield store.offline_messages(ALICE)) == []
