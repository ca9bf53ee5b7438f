"""
Contact lists at the notification server: SYN, LST, ADD/REM with every
error, the reverse list kept by the server, GTC/BLP, REA, PRP and groups,
for MSNP2, MSNP5 and MSNP7, each on the SQLite and on the PostgreSQL store.
"""

import pytest
import pytest_twisted

from msnp.config import ServerConfig
from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


@pytest.fixture(params=["sqlite", "postgres"])
def store_engine(request):
    return request.param


def empty_sync(dialect, trid, version=1):
    """
    The full SYN answer for an account with nothing stored, per dialect.
    """
    lines = [f"SYN {trid} {version}", f"GTC {trid} {version} A", f"BLP {trid} {version} AL"]
    if dialect in ("MSNP5", "MSNP7"):
        lines += [f"PRP {trid} {version} {key}" for key in ("PHH", "PHW", "PHM", "MOB", "MBE")]
    if dialect == "MSNP7":
        lines.append(f"LSG {trid} {version} 1 1 0 ~ 0")
    lines += [f"LST {trid} {lst} {version} 0 0" for lst in ("FL", "AL", "BL", "RL")]
    return lines


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_syn_new_account(server, dialect):
    """
    A new account is at list version 1: a client with an empty cache
    (SYN t 0) gets the whole (empty) state in the dialect's order, a client
    that already holds version 1 gets only SYN t 1.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("SYN 5 0")
    yield expect_lines(alice, empty_sync(dialect, 5))
    alice.send("SYN 6 1")
    yield alice.expect_line("SYN 6 1")
    yield alice.expect_silence()
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def build_alice_state(server):
    """
    Give alice something in every part of her state; returns her final
    list version (10).  bob is online for the RL notifications.
    """
    bob = yield sign_in(server, BOB, "MSNP7")
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("ADD 10 FL bob@example.com Bob")
    yield alice.expect_line("ADD 10 FL 2 bob@example.com Bob 0")
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    alice.send("ADD 11 AL bob@example.com Bob")
    yield alice.expect_line("ADD 11 AL 3 bob@example.com Bob")
    alice.send("ADD 12 BL carol@example.com Carol")
    yield alice.expect_line("ADD 12 BL 4 carol@example.com Carol")
    alice.send("GTC 13 N")
    yield alice.expect_line("GTC 13 5 N")
    alice.send("BLP 14 BL")
    yield alice.expect_line("BLP 14 6 BL")
    alice.send("PRP 15 PHH 555%201234")
    yield alice.expect_line("PRP 15 7 PHH 555%201234")
    alice.send("ADG 16 Best%20Friends 0")
    yield alice.expect_line("ADG 16 8 Best%20Friends 1 0")
    alice.send("ADD 17 FL carol@example.com Carol 1")
    yield alice.expect_line("ADD 17 FL 9 carol@example.com Carol 1")
    bob.send("ADD 20 FL alice@example.com Alice")
    yield bob.expect_line("ADD 20 FL 3 alice@example.com Alice 0")
    yield alice.expect_line("ADD 0 RL 10 bob@example.com Bob")
    bob.send("PRP 21 PHW 123")
    yield bob.expect_line("PRP 21 4 PHW 123")
    yield sign_out(alice, bob)


FULL_STATE = {
    "MSNP7": [
        "SYN 30 10",
        "GTC 30 10 N",
        "BLP 30 10 BL",
        "PRP 30 10 PHH 555%201234",
        "PRP 30 10 PHW",
        "PRP 30 10 PHM",
        "PRP 30 10 MOB",
        "PRP 30 10 MBE",
        "LSG 30 10 1 2 0 ~ 0",
        "LSG 30 10 2 2 1 Best%20Friends 0",
        "LST 30 FL 10 1 2 bob@example.com Bob 0",
        "BPR 10 bob@example.com PHW 123",
        "LST 30 FL 10 2 2 carol@example.com Carol 1",
        "LST 30 AL 10 1 1 bob@example.com Bob",
        "LST 30 BL 10 1 1 carol@example.com Carol",
        "LST 30 RL 10 1 1 bob@example.com Bob",
    ],
    "MSNP5": [
        "SYN 30 10",
        "GTC 30 10 N",
        "BLP 30 10 BL",
        "PRP 30 10 PHH 555%201234",
        "PRP 30 10 PHW",
        "PRP 30 10 PHM",
        "PRP 30 10 MOB",
        "PRP 30 10 MBE",
        "LST 30 FL 10 1 2 bob@example.com Bob",
        "BPR 10 bob@example.com PHW 123",
        "LST 30 FL 10 2 2 carol@example.com Carol",
        "LST 30 AL 10 1 1 bob@example.com Bob",
        "LST 30 BL 10 1 1 carol@example.com Carol",
        "LST 30 RL 10 1 1 bob@example.com Bob",
    ],
    "MSNP2": [
        "SYN 30 10",
        "GTC 30 10 N",
        "BLP 30 10 BL",
        "LST 30 FL 10 1 2 bob@example.com Bob",
        "LST 30 FL 10 2 2 carol@example.com Carol",
        "LST 30 AL 10 1 1 bob@example.com Bob",
        "LST 30 BL 10 1 1 carol@example.com Carol",
        "LST 30 RL 10 1 1 bob@example.com Bob",
    ],
}


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_syn_stale_sends_full_state_in_order(server, dialect):
    """
    A stale cache gets GTC, BLP, PRP (MSNP5+), LSG (MSNP7), then LST FL
    (each entry followed by its BPR lines from MSNP5, group ids from
    MSNP7), AL, BL, RL, all with the SYN's TrID; a current one only SYN.
    """
    yield build_alice_state(server)
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("SYN 30 4")
    yield expect_lines(alice, FULL_STATE[dialect])
    alice.send("SYN 31 10")
    yield alice.expect_line("SYN 31 10")
    yield alice.expect_silence()
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_lst_and_lsg_on_request(server, dialect):
    """
    LST t XX answers with that list's lines (the empty form for an empty
    list); an unknown list is 201.  LSG t lists the groups in MSNP7 and is
    unknown (200) before it.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("ADD 5 FL bob@example.com Bob")
    yield alice.expect("ADD 5 FL 2 bob@example.com Bob( 0)?")
    alice.send("LST 6 FL")
    if dialect == "MSNP7":
        yield alice.expect_line("LST 6 FL 2 1 1 bob@example.com Bob 0")
    else:
        yield alice.expect_line("LST 6 FL 2 1 1 bob@example.com Bob")
    alice.send("LST 7 BL")
    yield alice.expect_line("LST 7 BL 2 0 0")
    alice.send("LST 8 XX")
    yield alice.expect_line("201 8")
    alice.send("LSG 9")
    if dialect == "MSNP7":
        yield alice.expect_line("LSG 9 2 1 1 0 ~ 0")
    else:
        yield alice.expect_line("200 9")
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_add_errors(server, dialect):
    """
    ADD refuses a malformed handle (201), an unknown account (205), a
    handle without a domain (206), a contact already on the list (215), one
    on the opposite list (219), missing parameters (201), and a group before
    MSNP7 or on AL/BL (201, REM too).
    """
    alice = yield sign_in(server, ALICE, dialect)
    for trid, line, code in (
        (5, "ADD 5 FL bob.example.com Bob", 201),
        (6, "ADD 6 FL a@@b.example.com Bob", 201),
        (7, "ADD 7 FL nobody@example.com Nobody", 205),
        (8, "ADD 8 FL bob@ Bob", 206),
        (9, "ADD 9 FL bob@example Bob", 206),
        (10, "ADD 10 FL", 201),
        (11, "ADD 11 XX bob@example.com Bob", 201),
        (12, "ADD 12 FL bob@example.com " + "x" * 400, 201),
    ):
        alice.send(line)
        yield alice.expect_line(f"{code} {trid}")
    alice.send("ADD 20 AL bob@example.com Bob")
    yield alice.expect_line("ADD 20 AL 2 bob@example.com Bob")
    alice.send("ADD 21 AL bob@example.com Bob")
    yield alice.expect_line("215 21")
    alice.send("ADD 22 BL BOB@example.com Bob")
    yield alice.expect_line("219 22")
    if dialect != "MSNP7":
        alice.send("ADD 23 FL bob@example.com Bob 0")
        yield alice.expect_line("201 23")
        alice.send("ADD 24 FL carol@example.com Carol")
        yield alice.expect_line("ADD 24 FL 3 carol@example.com Carol")
        alice.send("REM 25 FL carol@example.com 0")
        yield alice.expect_line("201 25")
    else:
        alice.send("ADD 23 BL carol@example.com Carol 0")
        yield alice.expect_line("201 23")
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_rem_errors(server, dialect):
    """
    REM of someone not on the list is 216, of an unknown list 201; REM AL/BL
    with a group is 201.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("REM 5 FL bob@example.com")
    yield alice.expect_line("216 5")
    alice.send("REM 6 XX bob@example.com")
    yield alice.expect_line("201 6")
    alice.send("REM 7")
    yield alice.expect_line("201 7")
    alice.send("ADD 8 AL bob@example.com Bob")
    yield alice.expect_line("ADD 8 AL 2 bob@example.com Bob")
    alice.send("REM 9 AL bob@example.com 0")
    yield alice.expect_line("201 9")
    alice.send("REM 10 AL Bob@Example.com")
    yield alice.expect_line("REM 10 AL 3 bob@example.com")
    yield sign_out(alice)


@pytest.mark.parametrize("command", ["ADD 5 RL bob@example.com Bob", "REM 5 RL bob@example.com"])
@pytest_twisted.inlineCallbacks
def test_editing_reverse_list_disconnects(server, command):
    """
    Only the server edits the RL: a client that tries is disconnected
    without an answer.
    """
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send(command)
    rest = yield alice.expect_close()
    assert rest == []


class TestListLimits:
    """
    210 when a list is full; the limits are ServerConfig.list_limits.
    """

    @pytest.fixture
    def server_config(self):
        return ServerConfig(list_limits={"FL": 1, "AL": 2, "BL": 1})

    @pytest_twisted.inlineCallbacks
    def test_list_full(self, server):
        """
        With FL limited to one entry the second ADD FL is 210; after a REM
        there is room again.  Each list has its own limit.
        """
        alice = yield sign_in(server, ALICE, "MSNP5")
        alice.send("ADD 5 FL bob@example.com Bob")
        yield alice.expect_line("ADD 5 FL 2 bob@example.com Bob")
        alice.send("ADD 6 FL carol@example.com Carol")
        yield alice.expect_line("210 6")
        alice.send("ADD 7 AL carol@example.com Carol")
        yield alice.expect_line("ADD 7 AL 3 carol@example.com Carol")
        alice.send("ADD 8 AL dave@example.com Dave")
        yield alice.expect_line("ADD 8 AL 4 dave@example.com Dave")
        alice.send("ADD 9 BL bob@example.com Bob")
        yield alice.expect_line("ADD 9 BL 5 bob@example.com Bob")
        alice.send("ADD 10 BL bob@example.com Bob")
        yield alice.expect_line("215 10")
        alice.send("REM 11 FL bob@example.com")
        yield alice.expect_line("REM 11 FL 6 bob@example.com")
        alice.send("ADD 12 FL carol@example.com Carol")
        yield alice.expect_line("ADD 12 FL 7 carol@example.com Carol")
        yield sign_out(alice)


@pytest.mark.parametrize("watcher_dialect,owner_dialect", [("MSNP7", "MSNP2"), ("MSNP2", "MSNP5")])
@pytest_twisted.inlineCallbacks
def test_reverse_list_notifications(server, watcher_dialect, owner_dialect):
    """
    When alice adds bob to her FL, bob (online) receives ADD 0 RL with his
    new list version, alice's handle and name; when she removes him, REM 0
    RL.  AL/BL edits do not touch bob's RL.
    """
    bob = yield sign_in(server, BOB, owner_dialect)
    alice = yield sign_in(server, ALICE, watcher_dialect)
    alice.send("ADD 5 FL bob@example.com Bobby")
    yield alice.expect("ADD 5 FL 2 bob@example.com Bobby( 0)?")
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    alice.send("ADD 6 AL bob@example.com Bob")
    yield alice.expect_line("ADD 6 AL 3 bob@example.com Bob")
    alice.send("REM 7 FL bob@example.com")
    yield alice.expect_line("REM 7 FL 4 bob@example.com")
    yield bob.expect_line("REM 0 RL 3 alice@example.com")
    yield bob.expect_silence()
    yield sign_out(alice, bob)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_gtc_and_blp(server, dialect):
    """
    GTC and BLP answer with the new list version; setting the current value
    is 218; a bad or missing argument closes the connection.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("GTC 5 A")
    yield alice.expect_line("218 5")
    alice.send("GTC 6 N")
    yield alice.expect_line("GTC 6 2 N")
    alice.send("BLP 7 AL")
    yield alice.expect_line("218 7")
    alice.send("BLP 8 BL")
    yield alice.expect_line("BLP 8 3 BL")
    alice.send("BLP 9 AL")
    yield alice.expect_line("BLP 9 4 AL")
    alice.send("GTC 10 X")
    rest = yield alice.expect_close()
    assert rest == []
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("BLP 11")
    rest = yield alice.expect_close()
    assert rest == []


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_rea_contact_name(server, dialect):
    """
    REA of a contact renames the stored name on every list it is on
    (216 when on none, 201 when the name is too long); REA of oneself
    changes the friendly name the next login reports.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("REA 5 bob@example.com Bobby")
    yield alice.expect_line("216 5")
    alice.send("ADD 6 AL bob@example.com Bob")
    yield alice.expect_line("ADD 6 AL 2 bob@example.com Bob")
    alice.send("REA 7 bob@example.com Robert%20B.")
    yield alice.expect_line("REA 7 3 bob@example.com Robert%20B.")
    alice.send("LST 8 AL")
    yield alice.expect_line("LST 8 AL 3 1 1 bob@example.com Robert%20B.")
    alice.send("REA 9 bob@example.com " + "%41" * 130)
    yield alice.expect_line("201 9")
    alice.send("REA 10 alice@example.com Alice%20L%C3%BCdell")
    yield alice.expect_line("REA 10 4 alice@example.com Alice%20L%C3%BCdell")
    alice.send("REA 11 alice@example.com")
    yield alice.expect_line("201 11")
    yield sign_out(alice)
    alice = yield sign_in(server, ALICE, "MSNP2")
    alice.send("SYN 12 4")
    yield alice.expect_line("SYN 12 4")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_rea_name_is_encoded_on_output(server):
    """
    A name sent with raw (unencoded) UTF-8 or with lower-case escapes is
    stored decoded and sent back in the server's own encoding; the 387-byte
    limit applies to that encoding.
    """
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("REA 5 alice@example.com Al%c3%adce\u00e9")
    yield alice.expect_line("REA 5 2 alice@example.com Al%C3%ADce%C3%A9")
    # 100 raw two-byte characters are 200 bytes, but 600 once encoded
    alice.send("REA 6 alice@example.com " + "\u00e9" * 100)
    yield alice.expect_line("201 6")
    alice.send("REA 7 alice@example.com " + "\u00e9" * 64)
    yield alice.expect_line("REA 7 3 alice@example.com " + "%C3%A9" * 64)
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_prp_phone_properties(server):
    """
    PRP (MSNP5+) sets and clears phone properties; an unknown key is 715,
    a key longer than three letters closes, MOB takes only Y or N, a value
    over 95 bytes is 201.  MSNP2 does not know PRP (200).
    """
    old = yield sign_in(server, ALICE, "MSNP2")
    old.send("PRP 5 PHH 1")
    yield old.expect_line("200 5")
    yield sign_out(old)
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("PRP 6 PHH 555%201234")
    yield alice.expect_line("PRP 6 2 PHH 555%201234")
    alice.send("PRP 7 MOB Y")
    yield alice.expect_line("PRP 7 3 MOB Y")
    alice.send("PRP 8 MOB Q")
    yield alice.expect_line("201 8")
    alice.send("PRP 9 XYZ 1")
    yield alice.expect_line("715 9")
    alice.send("PRP 10 PHW " + "1" * 96)
    yield alice.expect_line("201 10")
    alice.send("PRP 11 PHH")
    yield alice.expect_line("PRP 11 4 PHH")
    alice.send("SYN 12 0")
    yield expect_lines(
        alice,
        [
            "SYN 12 4",
            "GTC 12 4 A",
            "BLP 12 4 AL",
            "PRP 12 4 PHH",
            "PRP 12 4 PHW",
            "PRP 12 4 PHM",
            "PRP 12 4 MOB Y",
            "PRP 12 4 MBE",
        ],
    )
    alice.send("PRP 13 PHHH 1")
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_groups(server):
    """
    MSNP7 groups: ADG answers with the new id, REG renames, RMG removes;
    a name over 61 bytes is 229, RMG 0 is 230, an unknown group 224, an id
    out of range closes.  Before MSNP7 the group commands do not exist.
    """
    old = yield sign_in(server, ALICE, "MSNP5")
    old.send("ADG 5 Friends 0")
    yield old.expect_line("200 5")
    yield sign_out(old)
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("ADG 6 Friends 0")
    yield alice.expect_line("ADG 6 2 Friends 1 0")
    alice.send("ADG 7 " + "x" * 61 + " 0")
    yield alice.expect_line("ADG 7 3 " + "x" * 61 + " 2 0")
    alice.send("ADG 8 " + "x" * 62 + " 0")
    yield alice.expect_line("229 8")
    alice.send("REG 9 1 Co-workers 0")
    yield alice.expect_line("REG 9 4 1 Co-workers 0")
    alice.send("REG 10 7 Nobody 0")
    yield alice.expect_line("224 10")
    alice.send("REG 11 1 " + "y" * 62 + " 0")
    yield alice.expect_line("229 11")
    alice.send("RMG 12 0")
    yield alice.expect_line("230 12")
    alice.send("RMG 13 7")
    yield alice.expect_line("224 13")
    alice.send("RMG 14 2")
    yield alice.expect_line("RMG 14 5 2")
    alice.send("LSG 15")
    yield expect_lines(alice, ["LSG 15 5 1 2 0 ~ 0", "LSG 15 5 2 2 1 Co-workers 0"])
    alice.send("RMG 16 30")
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_thirty_groups_at_most(server):
    """
    Group 0 and 29 more fill the 30 ids; the next ADG is 223, and a freed
    id is reused.
    """
    alice = yield sign_in(server, ALICE, "MSNP7")
    for n in range(1, 30):
        alice.send(f"ADG {n} G{n} 0")
    for n in range(1, 30):
        yield alice.expect_line(f"ADG {n} {n + 1} G{n} {n} 0")
    alice.send("ADG 30 Extra 0")
    yield alice.expect_line("223 30")
    alice.send("RMG 31 5")
    yield alice.expect_line("RMG 31 31 5")
    alice.send("ADG 32 Again 0")
    yield alice.expect_line("ADG 32 32 Again 5 0")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_group_membership_in_add_and_rem(server):
    """
    ADD FL with a group puts an existing contact into another group as
    well (215 when already there, 224 for a group that does not exist);
    REM FL with a group takes it out of that group only (225 when it is not
    in it); REM FL without a group removes the contact.
    """
    bob = yield sign_in(server, BOB, "MSNP7")
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("ADG 5 Friends 0")
    yield alice.expect_line("ADG 5 2 Friends 1 0")
    alice.send("ADD 6 FL bob@example.com Bob 0")
    yield alice.expect_line("ADD 6 FL 3 bob@example.com Bob 0")
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    alice.send("ADD 7 FL bob@example.com Bob 1")
    yield alice.expect_line("ADD 7 FL 4 bob@example.com Bob 1")
    alice.send("ADD 8 FL bob@example.com Bob 1")
    yield alice.expect_line("215 8")
    alice.send("ADD 9 FL bob@example.com Bob 4")
    yield alice.expect_line("224 9")
    alice.send("ADD 10 FL carol@example.com Carol 4")
    yield alice.expect_line("224 10")
    alice.send("LST 11 FL")
    yield alice.expect_line("LST 11 FL 4 1 1 bob@example.com Bob 0,1")
    alice.send("REM 12 FL bob@example.com 0")
    yield alice.expect_line("REM 12 FL 5 bob@example.com 0")
    alice.send("REM 13 FL bob@example.com 0")
    yield alice.expect_line("225 13")
    alice.send("REM 14 FL bob@example.com 6")
    yield alice.expect_line("224 14")
    alice.send("LST 15 FL")
    yield alice.expect_line("LST 15 FL 5 1 1 bob@example.com Bob 1")
    yield bob.expect_silence()
    alice.send("REM 16 FL bob@example.com")
    yield alice.expect_line("REM 16 FL 6 bob@example.com")
    yield bob.expect_line("REM 0 RL 3 alice@example.com")
    yield sign_out(alice, bob)


@pytest_twisted.inlineCallbacks
def test_rmg_drops_contacts_only_in_that_group(server):
    """
    Removing a group removes the contacts that were only in it from the
    FL (their owners see REM 0 RL); contacts also in another group stay.
    """
    bob = yield sign_in(server, BOB, "MSNP7")
    carol = yield sign_in(server, CAROL, "MSNP2")
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("ADG 5 Friends 0")
    yield alice.expect_line("ADG 5 2 Friends 1 0")
    alice.send("ADD 6 FL bob@example.com Bob 1")
    yield alice.expect_line("ADD 6 FL 3 bob@example.com Bob 1")
    alice.send("ADD 7 FL carol@example.com Carol 1")
    yield alice.expect_line("ADD 7 FL 4 carol@example.com Carol 1")
    alice.send("ADD 8 FL carol@example.com Carol 0")
    yield alice.expect_line("ADD 8 FL 5 carol@example.com Carol 0")
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    yield carol.expect_line("ADD 0 RL 2 alice@example.com Alice")
    alice.send("RMG 9 1")
    yield alice.expect_line("RMG 9 6 1")
    yield bob.expect_line("REM 0 RL 3 alice@example.com")
    yield carol.expect_silence()
    alice.send("LST 10 FL")
    yield alice.expect_line("LST 10 FL 6 1 1 carol@example.com Carol 0")
    yield sign_out(alice, bob, carol)


@pytest_twisted.inlineCallbacks
def test_bpr_follows_contact_privacy(server):
    """
    BPR lines carry a contact's phone properties after their LST FL line,
    in the order PHH, PHW, PHM, MOB, only the ones set, and only when the
    contact's privacy lets the user see them (BL or BLP BL hides them).
    MBE is the service's own key: a client setting it gets 715.
    """
    bob = yield sign_in(server, BOB, "MSNP5")
    for trid, line in enumerate(("MOB Y", "PHW 22", "PHH 11"), 5):
        bob.send(f"PRP {trid} {line}")
        yield bob.expect_line(f"PRP {trid} {trid - 3} {line}")
    bob.send("PRP 8 MBE Y")
    yield bob.expect_line("715 8")
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("ADD 10 FL bob@example.com Bob")
    yield alice.expect_line("ADD 10 FL 2 bob@example.com Bob")
    yield bob.expect_line("ADD 0 RL 5 alice@example.com Alice")
    alice.send("LST 11 FL")
    yield expect_lines(
        alice,
        [
            "LST 11 FL 2 1 1 bob@example.com Bob",
            "BPR 2 bob@example.com PHH 11",
            "BPR 2 bob@example.com PHW 22",
            "BPR 2 bob@example.com MOB Y",
        ],
    )
    bob.send("ADD 12 BL alice@example.com Alice")
    yield bob.expect_line("ADD 12 BL 6 alice@example.com Alice")
    alice.send("LST 13 FL")
    yield alice.expect_line("LST 13 FL 2 1 1 bob@example.com Bob")
    yield alice.expect_silence()
    bob.send("REM 14 BL alice@example.com")
    yield bob.expect_line("REM 14 BL 7 alice@example.com")
    bob.send("BLP 15 BL")
    yield bob.expect_line("BLP 15 8 BL")
    alice.send("LST 16 FL")
    yield alice.expect_line("LST 16 FL 2 1 1 bob@example.com Bob")
    yield alice.expect_silence()
    bob.send("ADD 17 AL alice@example.com Alice")
    yield bob.expect_line("ADD 17 AL 9 alice@example.com Alice")
    alice.send("LST 18 FL")
    yield expect_lines(
        alice,
        [
            "LST 18 FL 2 1 1 bob@example.com Bob",
            "BPR 2 bob@example.com PHH 11",
            "BPR 2 bob@example.com PHW 22",
            "BPR 2 bob@example.com MOB Y",
        ],
    )
    yield sign_out(alice, bob)


@pytest_twisted.inlineCallbacks
def test_phone_changes_reach_allowed_watchers(server):
    """
    A changed phone property reaches the user's online watchers at once as
    BPR with the watcher's own list version (MSNP5+; nothing for MSNP2
    watchers or for a watcher the user blocks); a cleared one has no value.
    """
    bob = yield sign_in(server, BOB, "MSNP5")
    carol = yield sign_in(server, CAROL, "MSNP2")
    for client, trid in ((bob, 5), (carol, 6)):
        client.send(f"ADD {trid} FL alice@example.com Alice")
        yield client.expect_line(f"ADD {trid} FL 2 alice@example.com Alice")
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("PRP 7 PHM 555%200100")
    yield alice.expect_line("PRP 7 4 PHM 555%200100")
    yield bob.expect_line("BPR 2 alice@example.com PHM 555%200100")
    alice.send("PRP 8 PHM")
    yield alice.expect_line("PRP 8 5 PHM")
    yield bob.expect_line("BPR 2 alice@example.com PHM")
    alice.send("ADD 9 BL bob@example.com Bob")
    yield alice.expect_line("ADD 9 BL 6 bob@example.com Bob")
    alice.send("PRP 10 PHH 1")
    yield alice.expect_line("PRP 10 7 PHH 1")
    yield bob.expect_silence()
    yield carol.expect_silence()
    yield sign_out(alice, bob, carol)
