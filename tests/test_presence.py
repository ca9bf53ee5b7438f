"""
Presence at the notification server: CHG echoed, the ILN burst after the
first CHG and after ADD FL, NLN/FLN to watchers, across dialects.
"""

import pytest
import pytest_twisted

from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DAVE = "dave@example.com"

STATES = ("NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN")


@pytest_twisted.inlineCallbacks
def add_contacts(client, trid, contacts, dialect="MSNP7"):
    """
    ADD each of C{contacts} to the client's FL, reading the answers.
    """
    for n, handle in enumerate(contacts):
        client.send(f"ADD {trid + n} FL {handle} {handle.split('@')[0].title()}")
        yield client.expect(rf"ADD {trid + n} FL \d+ {handle} \S+( 0)?")


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_chg_states_are_echoed(server, dialect):
    """
    Every settable state is echoed with the CHG's TrID; CHG FLN is 201 and
    leaves the connection open; a CHG without a state is 201; an unknown
    state closes the connection.
    """
    alice = yield sign_in(server, ALICE, dialect)
    for n, state in enumerate(STATES, 10):
        alice.send(f"CHG {n} {state}")
        yield alice.expect_line(f"CHG {n} {state}")
    alice.send("CHG 20 FLN")
    yield alice.expect_line("201 20")
    alice.send("CHG 21")
    yield alice.expect_line("201 21")
    alice.send("CHG 22 nln")
    rest = yield alice.expect_close()
    assert rest == []


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_iln_after_first_chg(server, dialect):
    """
    The first CHG is followed by one ILN per online, visible FL contact,
    carrying the CHG's TrID and the contact's state; hidden and offline
    contacts produce nothing, and a later CHG brings no second burst.
    """
    alice = yield sign_in(server, ALICE, dialect)
    yield add_contacts(alice, 5, [BOB, CAROL, DAVE])
    bob = yield sign_in(server, BOB, "MSNP2", status="NLN")
    carol = yield sign_in(server, CAROL, "MSNP7", status="BSY")
    dave = yield sign_in(server, DAVE, "MSNP5", status="HDN")
    alice.send("CHG 20 AWY")
    yield expect_lines(
        alice,
        ["CHG 20 AWY", "ILN 20 NLN bob@example.com Bob", "ILN 20 BSY carol@example.com Carol"],
    )
    yield alice.expect_silence()
    alice.send("CHG 21 NLN")
    yield alice.expect_line("CHG 21 NLN")
    yield alice.expect_silence()
    yield sign_out(alice, bob, carol, dave)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_iln_after_add_fl(server, dialect):
    """
    Adding an online, visible contact to the FL after the first CHG brings
    an ILN with the ADD's TrID; an offline or hidden one brings nothing,
    nor does adding to AL.
    """
    bob = yield sign_in(server, BOB, "MSNP5", status="IDL")
    dave = yield sign_in(server, DAVE, "MSNP5", status="HDN")
    alice = yield sign_in(server, ALICE, dialect, status="NLN")
    alice.send("ADD 30 FL bob@example.com Bob")
    yield alice.expect(r"ADD 30 FL 2 bob@example.com Bob( 0)?")
    yield alice.expect_line("ILN 30 IDL bob@example.com Bob")
    alice.send("ADD 31 FL carol@example.com Carol")
    yield alice.expect(r"ADD 31 FL 3 carol@example.com Carol( 0)?")
    alice.send("ADD 32 FL dave@example.com Dave")
    yield alice.expect(r"ADD 32 FL 4 dave@example.com Dave( 0)?")
    alice.send("ADD 33 AL bob@example.com Bob")
    yield alice.expect_line("ADD 33 AL 5 bob@example.com Bob")
    yield alice.expect_silence()
    yield bob.expect_line("ADD 0 RL 2 alice@example.com Alice")
    yield sign_out(alice, bob, dave)


@pytest_twisted.inlineCallbacks
def test_no_iln_for_add_before_first_chg(server):
    """
    Before its first CHG a client gets no ILN for an ADD FL: the burst of
    the first CHG covers that contact instead.
    """
    bob = yield sign_in(server, BOB, "MSNP5", status="NLN")
    alice = yield sign_in(server, ALICE, "MSNP5")
    alice.send("ADD 5 FL bob@example.com Bob")
    yield alice.expect_line("ADD 5 FL 2 bob@example.com Bob")
    yield alice.expect_silence()
    alice.send("CHG 6 NLN")
    yield expect_lines(alice, ["CHG 6 NLN", "ILN 6 NLN bob@example.com Bob"])
    yield sign_out(alice, bob)


@pytest.mark.parametrize("watcher_dialect,user_dialect", [("MSNP2", "MSNP7"), ("MSNP7", "MSNP5"), ("MSNP5", "MSNP2")])
@pytest_twisted.inlineCallbacks
def test_watchers_follow_every_change(server, watcher_dialect, user_dialect):
    """
    A watcher gets NLN for every change of state and of name, nothing for
    a CHG to the same state, FLN when the user hides, NLN when they come
    back, FLN when they sign out with OUT and when they just disconnect.
    """
    bob = yield sign_in(server, BOB, watcher_dialect)
    yield add_contacts(bob, 5, [ALICE])
    bob.send("CHG 6 NLN")
    yield bob.expect_line("CHG 6 NLN")
    alice = yield sign_in(server, ALICE, user_dialect)
    alice.send("CHG 10 NLN")
    yield alice.expect_line("CHG 10 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    alice.send("CHG 11 BSY")
    yield alice.expect_line("CHG 11 BSY")
    yield bob.expect_line("NLN BSY alice@example.com Alice")
    alice.send("CHG 12 BSY")
    yield alice.expect_line("CHG 12 BSY")
    alice.send("REA 13 alice@example.com Alice%20Away")
    yield alice.expect_line("REA 13 3 alice@example.com Alice%20Away")
    yield bob.expect_line("NLN BSY alice@example.com Alice%20Away")
    alice.send("CHG 14 HDN")
    yield alice.expect_line("CHG 14 HDN")
    yield bob.expect_line("FLN alice@example.com")
    alice.send("REA 15 alice@example.com Alice")
    yield alice.expect_line("REA 15 4 alice@example.com Alice")
    alice.send("CHG 16 PHN")
    yield alice.expect_line("CHG 16 PHN")
    yield bob.expect_line("NLN PHN alice@example.com Alice")
    alice.send("OUT")
    yield alice.expect_line("OUT")
    yield alice.expect_close()
    yield bob.expect_line("FLN alice@example.com")
    alice = yield sign_in(server, ALICE, user_dialect, status="LUN")
    yield bob.expect_line("NLN LUN alice@example.com Alice")
    yield alice.disconnect()
    yield bob.expect_line("FLN alice@example.com")
    yield bob.expect_silence()
    yield sign_out(bob)
