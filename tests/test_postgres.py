"""
What only the PostgreSQL store has to get right: edits that conflict are
run again, and a database out of reach refuses changes with 603 (never
acknowledging one it did not commit) and serves again by itself once it is
back, tested by stopping and starting the test run's own cluster.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from psycopg import errors as pg_errors
from twisted.internet import defer, reactor

from msnp.store.postgres import PostgresDatabase, PostgresStore
from msnp.store.records import ListChange, StoreUnavailable
from msnclient import attempt_login
from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


def test_conflicting_transaction_is_run_again(postgres_database):
    """
    A transaction PostgreSQL aborts as a deadlock victim is run again from
    the start, and only its last run is committed.
    """
    database = PostgresDatabase.open(postgres_database)
    try:
        database.create_account(ALICE, "pw", "Alice")
        runs = []

        def work(db):
            runs.append(db.execute("SELECT list_version FROM accounts WHERE handle = %s", (ALICE,)).fetchone()[0])
            db.execute("UPDATE accounts SET list_version = list_version + 1 WHERE handle = %s", (ALICE,))
            if len(runs) < 3:
                raise pg_errors.DeadlockDetected("deadlock detected")
            return "done"

        assert database._transaction(work) == "done"
        assert runs == [1, 1, 1]
        assert database.load_user(ALICE).version == 2
    finally:
        database.close()


def store_failure(d: defer.Deferred) -> defer.Deferred:
    def succeeded(result):
        raise AssertionError(f"expected a failure, got {result!r}")

    return d.addCallbacks(succeeded, lambda failure: failure.value)


@pytest_twisted.inlineCallbacks
def test_store_refuses_while_the_database_is_down_and_resumes(postgres_cluster, postgres_accounts):
    """
    With the cluster stopped, reads and edits fail with StoreUnavailable
    and change nothing; once it runs again the first edit on each
    pooled connection (all broken by the restart) succeeds.
    """
    store = PostgresStore(postgres_accounts, reactor, connections=2)
    yield store.start()
    try:
        assert (yield store.add_to_list(ALICE, "FL", BOB, "Bob", 0)) == ListChange(2, 2)
        # Both pooled connections are open and idle when the server goes.
        yield defer.gatherResults([store.get_account(ALICE) for _ in range(4)])
        postgres_cluster.stop()
        try:
            for call in (
                lambda: store.add_to_list(ALICE, "FL", CAROL, "Carol", 0),
                lambda: store.set_friendly_name(ALICE, "Lost"),
                lambda: store.load_user(ALICE),
                lambda: store.create_account("dave2@example.com", "pw"),
            ):
                error = yield store_failure(call())
                assert isinstance(error, StoreUnavailable)
        finally:
            postgres_cluster.start()
        assert (yield store.add_to_list(ALICE, "AL", CAROL, "Carol")) == ListChange(3, None)
        alice = yield store.load_user(ALICE)
        assert alice.friendly_name == "Alice" and alice.version == 3
        assert alice.lists["FL"] == {BOB: "Bob"} and alice.lists["AL"] == {CAROL: "Carol"}
        assert (yield store.get_account("dave2@example.com")) is None
        # A restart while the pooled connections sit idle breaks them all
        # unseen: the next edits still succeed, each on a new connection.
        yield defer.gatherResults([store.get_account(ALICE) for _ in range(4)])
        postgres_cluster.stop()
        postgres_cluster.start()
        changes = yield defer.gatherResults(
            [store.add_to_list(ALICE, "BL", "dave@example.com", "Dave"), store.add_to_list(BOB, "AL", CAROL, "Carol")]
        )
        assert changes == [ListChange(4, None), ListChange(3, None)]
    finally:
        yield store.stop()


@pytest.mark.parametrize("store_engine", ["postgres"])
@pytest_twisted.inlineCallbacks
def test_list_changes_refused_with_603_while_the_database_is_down(server, postgres_cluster):
    """
    A logged-in client's list changes get 603 while PostgreSQL is down,
    and a login gets 603 too; nothing refused is stored, and once the
    database is back the same ADD is acknowledged with the next version.
    """
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("ADD 10 FL bob@example.com Bob")
    yield alice.expect_line("ADD 10 FL 2 bob@example.com Bob 0")
    postgres_cluster.stop()
    try:
        alice.send("ADD 11 FL carol@example.com Carol")
        yield alice.expect_line("603 11")
        alice.send("REA 12 alice@example.com Lost")
        yield alice.expect_line("603 12")
        alice.send("ADG 13 Lost 0")
        yield alice.expect_line("603 13")
        bob = yield attempt_login(server.notification_port, BOB, "pw-bob")
        yield bob.expect_line("603 3")
        yield sign_out(bob)
    finally:
        postgres_cluster.start()
    alice.send("ADD 14 FL carol@example.com Carol")
    yield alice.expect_line("ADD 14 FL 3 carol@example.com Carol 0")
    alice.send("SYN 15 0")
    yield expect_lines(
        alice,
        [
            "SYN 15 3",
            "GTC 15 3 A",
            "BLP 15 3 AL",
            *[f"PRP 15 3 {key}" for key in ("PHH", "PHW", "PHM", "MOB", "MBE")],
            "LSG 15 3 1 1 0 ~ 0",
            "LST 15 FL 3 1 2 bob@example.com Bob 0",
            "LST 15 FL 3 2 2 carol@example.com Carol 0",
            "LST 15 AL 3 0 0",
            "LST 15 BL 3 0 0",
            "LST 15 RL 3 0 0",
        ],
    )
    bob = yield sign_in(server, BOB, "MSNP7")
    yield sign_out(alice, bob)
