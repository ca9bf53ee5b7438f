"""
MSNP8-MSNP12 transcripts: dispatch referral with TWN, SYN in the merged
formats, ADC/REM by contact id, groups by GUID, SBP, PRP MFN, lists shared
with an MSNP2 login of the same account.
"""

import pytest
import pytest_twisted

from msnclient import connect, login
from twn import pp_server, twn_login  # noqa: F401 (fixture)


@pytest.mark.parametrize("dialect", ["MSNP8", "MSNP9", "MSNP10", "MSNP11", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_dispatch_refers_twn_login(pp_server, dialect):
    """
    At the dispatch server, CVR in the MSNP8+ form is answered and USR TWN I
    gets XFR NS with the current server (MSNP7+ shape); MD5 is refused.
    """
    ns = f"127.0.0.1:{pp_server.notification_port}"
    ds = f"127.0.0.1:{pp_server.dispatch_port}"
    client = yield connect(pp_server.dispatch_port)
    client.send(f"VER 1 {dialect} CVR0")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com")
    yield client.expect(r"CVR 2 6\.0\.0602 6\.0\.0602 6\.0\.0602 \S+ \S+")
    client.send("USR 3 TWN I alice@example.com")
    yield client.expect_line(f"XFR 3 NS {ns} 0 {ds}")
    yield client.expect_close()
    client = yield connect(pp_server.dispatch_port)
    client.send(f"VER 1 {dialect}")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send("USR 2 MD5 I alice@example.com")
    yield client.expect_line("911 2")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_best_common_dialect_wins(pp_server):
    """
    MSN 7.5 offers MSNP12 MSNP11 MSNP10; the highest wins whatever the
    order.
    """
    client = yield connect(pp_server.notification_port)
    client.send("VER 1 MSNP10 MSNP12 MSNP11 CVR0")
    yield client.expect_line("VER 1 MSNP12")
    yield client.disconnect()


@pytest.mark.parametrize("dialect", ["MSNP8", "MSNP9"])
@pytest_twisted.inlineCallbacks
def test_msnp8_9_sync_and_add(pp_server, dialect):
    """
    MSNP8-9: USR OK with name, verified and restricted flags; SYN with
    counts; GTC/BLP/LSG/LST without TrIDs; one LST per contact with the
    merged list bitmask and its groups, each FL contact's phone numbers in
    BPR lines without handle or version; an up-to-date SYN is one line.
    """
    bob = yield login(pp_server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example.com Alice")
    bob.send("PRP 6 PHW 555%200100")
    yield bob.expect(r"PRP 6 \d+ PHW 555%200100")
    yield bob.disconnect()
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    alice.send("PRP 5 PHH 555%201234")
    yield alice.expect(r"PRP 5 \d+ PHH 555%201234")
    alice.send("ADD 6 FL bob@example.com Bobby")
    yield alice.expect(r"ADD 6 FL \d+ bob@example.com Bobby 0")
    alice.send("ADD 7 BL dave@example.com dave@example.com")
    match = yield alice.expect(r"ADD 7 BL (\d+) dave@example.com dave@example.com")
    version = match.group(1)
    alice.send("SYN 8 0")
    yield alice.expect_line(f"SYN 8 {version} 2 1")
    yield alice.expect_line("GTC A")
    yield alice.expect_line("BLP AL")
    yield alice.expect_line("PRP PHH 555%201234")
    yield alice.expect_line("LSG 0 ~ 0")
    yield alice.expect_line("LST bob@example.com Bobby 9 0")
    yield alice.expect_line("BPR PHW 555%200100")
    yield alice.expect_line("LST dave@example.com dave@example.com 4")
    alice.send(f"SYN 9 {version}")
    yield alice.expect_line(f"SYN 9 {version}")
    yield alice.expect_silence()
    yield alice.disconnect()


# MSNP12 is transcripts/lists-msnp12-contact-ids.txt.
@pytest.mark.parametrize("dialect", ["MSNP10", "MSNP11"])
@pytest_twisted.inlineCallbacks
def test_msnp10_12_lists_by_contact_id(pp_server, dialect):
    """
    MSNP10+: USR OK without a name; ADC with N=/F= answered with the
    contact id (C=); SYN with list and settings versions, PRP MFN, LST with
    N=/F=/C= (and the network id in MSNP12); groups by GUID; ADC/REM of a
    group membership; SBP; REM FL by contact id, which the other user (on
    MSNP2) sees as REM 0 RL; replies carry no list version.
    """
    netid = " 1" if dialect == "MSNP12" else ""
    bob = yield login(pp_server.notification_port, "bob@example.com", "pw-bob", "MSNP2")
    bob.send("SYN 1 0")
    while True:
        line = yield bob.next()
        if line.text.startswith("LST 1 RL"):
            break
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    alice.send("ADC 5 FL N=bob@example.com F=Bobby")
    match = yield alice.expect(r"ADC 5 FL N=bob@example.com F=Bobby C=([0-9a-f-]{36})")
    cid = match.group(1)
    yield bob.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    alice.send("ADC 6 BL N=dave@example.com")
    yield alice.expect_line("ADC 6 BL N=dave@example.com")
    alice.send("ADC 7 FL N=bob@example.com F=Bobby")
    yield alice.expect_line("215 7")
    alice.send("ADC 8 FL N=nobody@example.com F=Nobody")
    yield alice.expect_line("208 8")
    alice.send("ADD 9 FL carol@example.com Carol")
    yield alice.expect_close()

    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    alice.send("ADG 5 Friends")
    match = yield alice.expect(r"ADG 5 Friends ([0-9a-f-]{36})")
    gid = match.group(1)
    alice.send(f"ADC 6 FL C={cid} {gid}")
    yield alice.expect_line(f"ADC 6 FL C={cid} {gid}")
    alice.send(f"SBP 7 {cid} MFN Robert")
    yield alice.expect_line(f"SBP 7 {cid} MFN Robert")
    alice.send("PRP 8 MFN Alice%20A.")
    yield alice.expect_line("PRP 8 MFN Alice%20A.")
    alice.send("GTC 9 N")
    yield alice.expect_line("GTC 9 N")
    alice.send("SYN 10 0 0")
    match = yield alice.expect(r"SYN 10 (\d+) (\d+) 2 1")
    version = match.group(1)
    assert match.group(2) == version
    yield alice.expect_line("GTC N")
    yield alice.expect_line("BLP AL")
    yield alice.expect_line("PRP MFN Alice%20A.")
    yield alice.expect_line(f"LSG Friends {gid}")
    yield alice.expect_line(f"LST N=bob@example.com F=Robert C={cid} 1{netid} {gid}")
    yield alice.expect_line(f"LST N=dave@example.com F=dave@example.com 4{netid}")
    alice.send(f"SYN 11 {version} {version}")
    yield alice.expect_line(f"SYN 11 {version} {version}")
    alice.send(f"REG 12 {gid} Pals")
    yield alice.expect_line(f"REG 12 {gid} Pals")
    alice.send(f"REM 13 FL {cid} {gid}")
    yield alice.expect_line(f"REM 13 FL {cid} {gid}")
    alice.send(f"REM 14 FL {cid} {gid}")
    yield alice.expect_line("225 14")
    alice.send("REM 15 FL 00000000-0000-0000-0000-000000000000")
    yield alice.expect_line("216 15")
    alice.send(f"REM 16 FL {cid}")
    yield alice.expect_line(f"REM 16 FL {cid}")
    yield bob.expect(r"REM 0 RL \d+ alice@example.com")
    alice.send("REM 17 BL dave@example.com")
    yield alice.expect_line("REM 17 BL dave@example.com")
    alice.send(f"RMG 18 {gid}")
    yield alice.expect_line(f"RMG 18 {gid}")
    alice.send(f"RMG 19 {gid}")
    yield alice.expect_line("224 19")
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_reverse_list_notice_in_msnp10_shape(pp_server):
    """
    An MSNP12 user added by an MSNP2 user receives ADC 0 RL N= F=, and
    REM 0 RL handle without a version when removed.
    """
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    bob = yield login(pp_server.notification_port, "bob@example.com", "pw-bob", "MSNP2")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example.com Alice")
    yield alice.expect_line("ADC 0 RL N=bob@example.com F=Bob")
    bob.send("REM 6 FL alice@example.com")
    yield bob.expect(r"REM 6 FL \d+ alice@example.com")
    yield alice.expect_line("REM 0 RL bob@example.com")
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_lists_shared_between_msnp2_and_msnp12(pp_server):
    """
    Contacts added by an MSNP2 login appear to the same account on MSNP12
    (FL bit, no group), and contacts added on MSNP12 appear to MSNP2 (LST
    FL), with the names each gave.
    """
    carol = yield login(pp_server.notification_port, "carol@example.com", "pw-carol", "MSNP2")
    carol.send("ADD 5 FL dave@example.com Dave%20D")
    yield carol.expect(r"ADD 5 FL \d+ dave@example.com Dave%20D")
    yield carol.disconnect()

    carol = yield twn_login(pp_server, "carol@example.com", "pw-carol", "MSNP12")
    carol.send("SYN 5 0 0")
    yield carol.expect(r"SYN 5 (\d+) \1 1 0")
    yield carol.expect_line("GTC A")
    yield carol.expect_line("BLP AL")
    yield carol.expect_line("PRP MFN Carol")
    yield carol.expect(r"LST N=dave@example.com F=Dave%20D C=(\S+) 1 1")
    carol.send("ADC 6 FL N=bob@example.com F=Bob%20B")
    yield carol.expect(r"ADC 6 FL N=bob@example.com F=Bob%20B C=\S+")
    yield carol.disconnect()

    carol = yield login(pp_server.notification_port, "carol@example.com", "pw-carol", "MSNP2")
    carol.send("LST 5 FL")
    yield carol.expect(r"LST 5 FL \d+ 1 2 dave@example.com Dave%20D")
    yield carol.expect(r"LST 5 FL \d+ 2 2 bob@example.com Bob%20B")
    yield carol.disconnect()


@pytest_twisted.inlineCallbacks
def test_msnp7_sees_msnp12_contacts_in_group_zero(pp_server):
    """
    A contact added on MSNP12 without a group is in group 0 for MSNP7;
    group 0 is not listed to MSNP10+.
    """
    alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP11")
    alice.send("ADC 5 FL N=bob@example.com F=Bob")
    yield alice.expect(r"ADC 5 FL N=bob@example.com F=Bob C=\S+")
    yield alice.disconnect()
    alice = yield login(pp_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    alice.send("LST 5 FL")
    yield alice.expect(r"LST 5 FL \d+ 1 1 bob@example.com Bob 0")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_client_lst_gone_in_msnp9(pp_server):
    """
    Client-initiated LST left with MSNP9: the server hangs up; REA left
    with MSNP10 likewise.
    """
    for dialect, line in (("MSNP9", "LST 5 FL"), ("MSNP10", "REA 5 alice@example.com New")):
        alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
        alice.send(line)
        rest = yield alice.expect_close()
        assert rest == []
