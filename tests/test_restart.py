"""
Durability: stop the service, start a new one on the same database file,
and everything a client was told is still there.
"""

import pytest_twisted

from conftest import start_server
from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"

ALICE_STATE = [
    "SYN {t} 14",
    "GTC {t} 14 N",
    "BLP {t} 14 BL",
    "PRP {t} 14 PHH 555%201234",
    "PRP {t} 14 PHW",
    "PRP {t} 14 PHM",
    "PRP {t} 14 MOB Y",
    "PRP {t} 14 MBE",
    "LSG {t} 14 1 2 0 ~ 0",
    "LSG {t} 14 2 2 1 Best%20Friends 0",
    "LST {t} FL 14 1 2 bob@example.com Bobby 0,1",
    "LST {t} FL 14 2 2 carol@example.com Carol 1",
    "LST {t} AL 14 1 1 bob@example.com Bobby",
    "LST {t} BL 14 1 1 dave@example.com Dave",
    "LST {t} RL 14 1 1 bob@example.com Bob",
]


@pytest_twisted.inlineCallbacks
def test_restart_keeps_everything(server):
    """
    Accounts, friendly names, all four lists, groups and memberships,
    GTC/BLP, phone properties and list versions survive a restart: after
    it, the same SYN gets the same answer, a current cache gets only the
    version, and the new name is announced.
    """
    bob = yield sign_in(server, BOB, "MSNP7")
    alice = yield sign_in(server, ALICE, "MSNP7")
    for line, answer in (
        ("ADD 10 FL bob@example.com Bob", "ADD 10 FL 2 bob@example.com Bob 0"),
        ("ADD 11 AL bob@example.com Bob", "ADD 11 AL 3 bob@example.com Bob"),
        ("ADD 12 BL dave@example.com Dave", "ADD 12 BL 4 dave@example.com Dave"),
        ("GTC 13 N", "GTC 13 5 N"),
        ("BLP 14 BL", "BLP 14 6 BL"),
        ("PRP 15 PHH 555%201234", "PRP 15 7 PHH 555%201234"),
        ("PRP 16 MOB Y", "PRP 16 8 MOB Y"),
        ("ADG 17 Best%20Friends 0", "ADG 17 9 Best%20Friends 1 0"),
        ("ADD 18 FL carol@example.com Carol 1", "ADD 18 FL 10 carol@example.com Carol 1"),
        ("ADD 19 FL bob@example.com Bob 1", "ADD 19 FL 11 bob@example.com Bob 1"),
    ):
        alice.send(line)
        yield alice.expect_line(answer)
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    bob.send("ADD 20 FL alice@example.com Alice")
    yield bob.expect_line("ADD 20 FL 3 alice@example.com Alice 0")
    yield alice.expect_line("ADD 0 RL 12 bob@example.com Bob")
    alice.send("REA 21 bob@example.com Bobby")
    yield alice.expect_line("REA 21 13 bob@example.com Bobby")
    alice.send("REA 22 alice@example.com Alice%20L.")
    yield alice.expect_line("REA 22 14 alice@example.com Alice%20L.")
    alice.send("SYN 23 0")
    yield expect_lines(alice, [line.format(t=23) for line in ALICE_STATE])
    yield sign_out(alice, bob)

    yield server.stop()
    restarted = yield start_server(server.db_path, server.config, accounts={})
    try:
        alice = yield sign_in(restarted, ALICE, "MSNP2")
        alice.send("SYN 39 14")
        yield alice.expect_line("SYN 39 14")
        yield sign_out(alice)
        alice = yield sign_in(restarted, ALICE, "MSNP7")
        alice.send("SYN 40 0")
        yield expect_lines(alice, [line.format(t=40) for line in ALICE_STATE])
        bob = yield sign_in(restarted, BOB, "MSNP7", status="NLN")
        bob.send("SYN 41 0")
        yield expect_lines(
            bob,
            [
                "SYN 41 3",
                "GTC 41 3 A",
                "BLP 41 3 AL",
                "PRP 41 3 PHH",
                "PRP 41 3 PHW",
                "PRP 41 3 PHM",
                "PRP 41 3 MOB",
                "PRP 41 3 MBE",
                "LSG 41 3 1 1 0 ~ 0",
                "LST 41 FL 3 1 1 alice@example.com Alice 0",
                "BPR 3 alice@example.com PHH 555%201234",
                "BPR 3 alice@example.com MOB Y",
                "LST 41 AL 3 0 0",
                "LST 41 BL 3 0 0",
                "LST 41 RL 3 1 1 alice@example.com Alice",
            ],
        )
        alice.send("CHG 42 NLN")
        yield expect_lines(alice, ["CHG 42 NLN", "ILN 42 NLN bob@example.com Bob"])
        yield bob.expect_line("NLN NLN alice@example.com Alice%20L.")
        yield sign_out(alice, bob)
    finally:
        yield restarted.stop()


@pytest_twisted.inlineCallbacks
def test_change_is_committed_before_its_reply(server):
    """
    The moment a client has the reply to a list change, the change and
    its list version are in the database file (read here through a
    connection of its own).
    """
    from msnp.store.sqlite import Database

    alice = yield sign_in(server, ALICE, "MSNP7")
    for line, answer in (
        ("ADD 5 FL bob@example.com Bob", "ADD 5 FL 2 bob@example.com Bob 0"),
        ("ADG 6 Friends 0", "ADG 6 3 Friends 1 0"),
        ("BLP 7 BL", "BLP 7 4 BL"),
        ("REA 8 alice@example.com Al", "REA 8 5 alice@example.com Al"),
    ):
        alice.send(line)
        yield alice.expect_line(answer)
        reader = Database(server.db_path)
        try:
            stored = reader.load_user(ALICE)
        finally:
            reader.close()
        assert stored.version == int(answer.split(" ")[3 if answer.startswith("ADD") else 2])
    assert stored.lists["FL"] == {BOB: "Bob"}
    assert stored.groups == {0: "~", 1: "Friends"}
    assert (stored.blp, stored.friendly_name) == ("BL", "Al")
    bob_reader = Database(server.db_path)
    try:
        assert bob_reader.load_user(BOB).lists["RL"] == {ALICE: "Alice"}
    finally:
        bob_reader.close()
    yield sign_out(alice)
