"""
The store's login path: the password check and the user's load in one
call, and the record of which accounts have phone properties that lets
SYN skip the property query.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from msnp.store.sqlite import Database, ThreadedStore


def _database(tmp_path) -> Database:
    db = Database(str(tmp_path / "msnp.sqlite"))
    db.create_account("alice@example.com", "secret", "Alice")
    db.create_account("bob@example.com", "secret", "Bob")
    return db


def test_load_user_with_admit_loads_only_when_admitted(tmp_path):
    db = _database(tmp_path)
    db.add_to_list("alice@example.com", "FL", "bob@example.com", "Bob", 0)
    seen = []
    assert db.load_user("alice@example.com", lambda account: seen.append(account) or False) is None
    assert seen[0].md5_password == "secret"
    user = db.load_user("Alice@Example.com", lambda account: True)
    assert user.handle == "alice@example.com"
    assert user.lists["FL"] == {"bob@example.com": "Bob"}
    assert user.memberships == {"bob@example.com": {0}}
    assert db.load_user("nobody@example.com", lambda account: True) is None
    db.close()


def test_lists_keep_the_order_entries_were_added_in(tmp_path):
    db = _database(tmp_path)
    for index in range(5, 0, -1):
        db.create_account(f"c{index}@example.com", "secret")
        db.add_to_list("alice@example.com", "AL", f"c{index}@example.com", f"C {index}")
    assert list(db.load_user("alice@example.com").lists["AL"]) == [f"c{i}@example.com" for i in range(5, 0, -1)]
    db.close()


def test_accounts_with_properties_are_tracked(tmp_path):
    db = _database(tmp_path)
    assert db.handles_with_properties == set()
    db.set_property("bob@example.com", "PHH", "1 2")
    db.set_property("bob@example.com", "PHW", "3")
    db.set_property("bob@example.com", "PHH", "")
    assert db.handles_with_properties == {"bob@example.com"}
    db.close()
    # Read back from the database when it is opened again.
    db = Database(str(tmp_path / "msnp.sqlite"))
    assert db.handles_with_properties == {"bob@example.com"}
    db.set_property("bob@example.com", "PHW", "")
    assert db.handles_with_properties == set()
    db.set_property("bob@example.com", "MOB", "Y")
    db.delete_account("bob@example.com")
    assert db.handles_with_properties == set()
    db.close()


@pytest_twisted.inlineCallbacks
def test_contact_properties_answers_at_once_when_no_contact_has_any(tmp_path):
    _database(tmp_path).close()
    store = ThreadedStore(str(tmp_path / "msnp.sqlite"), reactor)
    yield store.start()
    try:
        d = store.contact_properties(["alice@example.com", "bob@example.com"])
        assert d.called
        assert (yield d) == {}
        yield store.set_property("bob@example.com", "PHH", "1 2")
        properties = yield store.contact_properties(["alice@example.com", "bob@example.com"])
        assert properties == {"bob@example.com": {"PHH": "1 2"}}
    finally:
        yield store.stop()
