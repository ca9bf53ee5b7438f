"""
Who sees whom: BL hides, AL shows, otherwise BLP decides; every change of
AL, BL or BLP is applied to online watchers at once.
"""

import pytest_twisted

from ns_steps import expect_lines, sign_in, sign_out

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


@pytest_twisted.inlineCallbacks
def watchers_of_alice(server, alice_dialect="MSNP7"):
    """
    bob (MSNP2) and carol (MSNP5) have alice on their FL and are online;
    alice is online (NLN) and both have seen her come online.
    """
    bob = yield sign_in(server, BOB, "MSNP2", status="NLN")
    carol = yield sign_in(server, CAROL, "MSNP5", status="NLN")
    for client, trid in ((bob, 5), (carol, 6)):
        client.send(f"ADD {trid} FL alice@example.com Alice")
        yield client.expect_line(f"ADD {trid} FL 2 alice@example.com Alice")
    alice = yield sign_in(server, ALICE, alice_dialect, status="NLN")
    for client in (bob, carol):
        yield client.expect_line("NLN NLN alice@example.com Alice")
    return alice, bob, carol


@pytest_twisted.inlineCallbacks
def test_block_list_hides_at_once(server):
    """
    Putting a watcher on BL shows them FLN at once and nothing of later
    changes; their ILN burst leaves the blocker out; taking them off BL
    shows the real state again at once.  Other watchers are unaffected.
    """
    alice, bob, carol = yield watchers_of_alice(server)
    alice.send("ADD 10 BL bob@example.com Bob")
    yield alice.expect_line("ADD 10 BL 4 bob@example.com Bob")
    yield bob.expect_line("FLN alice@example.com")
    yield carol.expect_silence()
    alice.send("CHG 11 BSY")
    yield alice.expect_line("CHG 11 BSY")
    yield carol.expect_line("NLN BSY alice@example.com Alice")
    yield bob.expect_silence()
    yield bob.disconnect()
    bob = yield sign_in(server, BOB, "MSNP2")
    bob.send("CHG 12 NLN")
    yield bob.expect_line("CHG 12 NLN")
    yield bob.expect_silence()
    alice.send("REM 13 BL bob@example.com")
    yield alice.expect_line("REM 13 BL 5 bob@example.com")
    yield bob.expect_line("NLN BSY alice@example.com Alice")
    yield carol.expect_silence()
    yield sign_out(alice, bob, carol)


@pytest_twisted.inlineCallbacks
def test_blp_bl_shows_only_the_allow_list(server):
    """
    With BLP BL only AL members see the user: the switch hides everyone
    else at once (AL members get nothing, their view does not change);
    adding to AL shows, removing from AL hides; BLP AL shows everyone
    again.
    """
    alice, bob, carol = yield watchers_of_alice(server, "MSNP5")
    alice.send("ADD 10 AL carol@example.com Carol")
    yield alice.expect_line("ADD 10 AL 4 carol@example.com Carol")
    yield carol.expect_silence()
    alice.send("BLP 11 BL")
    yield alice.expect_line("BLP 11 5 BL")
    yield bob.expect_line("FLN alice@example.com")
    yield carol.expect_silence()
    alice.send("ADD 12 AL bob@example.com Bob")
    yield alice.expect_line("ADD 12 AL 6 bob@example.com Bob")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    alice.send("REM 13 AL carol@example.com")
    yield alice.expect_line("REM 13 AL 7 carol@example.com")
    yield carol.expect_line("FLN alice@example.com")
    yield bob.expect_silence()
    alice.send("BLP 14 AL")
    yield alice.expect_line("BLP 14 8 AL")
    yield carol.expect_line("NLN NLN alice@example.com Alice")
    yield bob.expect_silence()
    yield sign_out(alice, bob, carol)


@pytest_twisted.inlineCallbacks
def test_block_list_beats_allow_list(server):
    """
    BL hides even with BLP AL; and the ILN burst of a watcher who logs in
    follows the same rule.
    """
    alice, bob, carol = yield watchers_of_alice(server, "MSNP2")
    alice.send("BLP 10 BL")
    yield alice.expect_line("BLP 10 4 BL")
    yield bob.expect_line("FLN alice@example.com")
    yield carol.expect_line("FLN alice@example.com")
    yield carol.disconnect()
    carol = yield sign_in(server, CAROL, "MSNP5")
    carol.send("CHG 11 NLN")
    yield carol.expect_line("CHG 11 NLN")
    yield carol.expect_silence()
    alice.send("ADD 12 AL carol@example.com Carol")
    yield alice.expect_line("ADD 12 AL 5 carol@example.com Carol")
    yield carol.expect_line("NLN NLN alice@example.com Alice")
    yield carol.disconnect()
    carol = yield sign_in(server, CAROL, "MSNP5")
    carol.send("CHG 13 NLN")
    yield expect_lines(carol, ["CHG 13 NLN", "ILN 13 NLN alice@example.com Alice"])
    yield sign_out(alice, bob, carol)


@pytest_twisted.inlineCallbacks
def test_privacy_changes_while_hidden_show_nothing(server):
    """
    While the user is hidden, AL/BL/BLP changes send nothing to anyone;
    when the user comes back, each watcher sees what the rules now allow.
    """
    alice, bob, carol = yield watchers_of_alice(server)
    alice.send("CHG 10 HDN")
    yield alice.expect_line("CHG 10 HDN")
    yield bob.expect_line("FLN alice@example.com")
    yield carol.expect_line("FLN alice@example.com")
    alice.send("ADD 11 BL bob@example.com Bob")
    yield alice.expect_line("ADD 11 BL 4 bob@example.com Bob")
    alice.send("BLP 12 BL")
    yield alice.expect_line("BLP 12 5 BL")
    alice.send("ADD 13 AL carol@example.com Carol")
    yield alice.expect_line("ADD 13 AL 6 carol@example.com Carol")
    yield bob.expect_silence()
    yield carol.expect_silence()
    alice.send("CHG 14 NLN")
    yield alice.expect_line("CHG 14 NLN")
    yield carol.expect_line("NLN NLN alice@example.com Alice")
    yield bob.expect_silence()
    yield sign_out(alice, bob, carol)
