"""
MSNP13-MSNP18 contact lists and presence over real sockets: ADL/RML/FQY
with their errors, the reverse-list notices, presence in each dialect's
shape, UUX/UBX and UUN/UBN; MSNP2, MSNP7, MSNP12 and MSNP18 users on one
server seeing each other, and contacts added in one dialect appearing in
every other.
"""

import pytest_twisted
from twisted.internet import defer

import sso
import twn
from msnclient import answer_ring, connect, login
from ns_steps import expect_lines
from twn import pp_server  # noqa: F401 (fixture)


def ml(*contacts, initial=False):
    """
    An ADL/RML payload for (handle, bits) pairs.
    """
    head = '<ml l="1">' if initial else "<ml>"
    body = "".join(f'<d n="{h.split("@")[1]}"><c n="{h.split("@")[0]}" l="{bits}" t="1"/></d>' for h, bits in contacts)
    return (head + body + "</ml>").encode()


@defer.inlineCallbacks
def online(server, handle, dialect="MSNP18", status="NLN", caps="2788999212:48"):
    """
    Sign in over SSO, send the initial ADL and the first CHG; returns the
    client with the presence lines after the CHG echo unread.
    """
    client, tokens = yield sso.sso_login(server, handle, sso_password(handle), dialect)
    client.send_payload("ADL 5", ml(initial=True))
    yield client.expect_line("ADL 5 OK")
    if int(dialect[4:]) < 16:
        caps = caps.split(":")[0]
    client.send(f"CHG 6 {status} {caps} 0")
    yield client.expect_line(f"CHG 6 {status} {caps} 0")
    yield expect_mail_data(client)
    if int(dialect[4:]) >= 16:
        yield expect_own_ubx(client, handle)
    client.tokens = tokens
    client.handle = handle
    return client


@defer.inlineCallbacks
def befriend(first, first_sees, second, second_sees):
    """
    Each adds the other (FL|AL) in turn; C{first_sees} and C{second_sees}
    are the presence lines each then gets of the other.
    """
    pairs = ((first, second, first_sees), (second, first, second_sees))
    for adder, added, seen in pairs:
        adder.send_payload("ADL 70", ml(((added.handle), 3)))
        yield adder.expect_line("ADL 70 OK")
        yield adder.expect_line(seen)
        notice = yield added.next()
        assert notice.text.startswith("ADL 0 ") and b'l="8"' in notice.payload, notice


@defer.inlineCallbacks
def expect_mail_data(client, count=0):
    """
    The Mail-Data notice after the first CHG, listing C{count} messages.
    """
    notice = yield client.next()
    assert notice.text.startswith("MSG Hotmail Hotmail "), notice
    assert b"Content-Type: text/x-msmsgsinitialmdatanotification" in notice.payload
    assert notice.payload.count(b"<M>") == count
    return notice


@defer.inlineCallbacks
def expect_own_ubx(client, handle):
    """
    MSNP16+: the user's own extended presence, echoed after a change.
    """
    line = yield client.next()
    assert line.name == "UBX" and line.args[1] in (handle, f"1:{handle}"), line
    assert b"<EndpointData id=" in line.payload and b"<PrivateEndpointData id=" in line.payload, line.payload
    return line


@defer.inlineCallbacks
def until(client, pattern):
    """
    Read past other lines (own UBX echoes, presence) to the one matching
    C{pattern}.
    """
    import re

    while True:
        line = yield client.next()
        match = re.fullmatch(pattern, line.text)
        if match:
            return match


def sso_password(handle):
    from conftest import ACCOUNTS

    return ACCOUNTS[handle][0]


@pytest_twisted.inlineCallbacks
def test_adl_adds_and_both_see_each_other_at_msnp18(pp_server):
    """
    Alice adds Bob (FL|AL): ADL OK, Bob gets ADL 0 with the reverse-list
    bit and Alice's name; once Bob adds Alice, each sees the other online
    as MSNP18 writes it (1:handle, caps:capsex), and FLN on sign-out.
    """
    alice = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com", caps="1:2")
    alice.send_payload("ADL 7", ml(("bob@example.com", 3)))
    yield alice.expect_line("ADL 7 OK")
    notice = yield bob.next()
    assert notice.text.startswith("ADL 0 ")
    assert notice.payload == b'<ml><d n="example.com"><c n="alice" l="8" t="1" f="Alice"/></d></ml>'
    # Bob is online but Alice is not on his lists yet: ILN-style NLN for him.
    yield alice.expect_line("NLN NLN 1:bob@example.com Bob 1:2")
    bob.send_payload("ADL 8", ml(("alice@example.com", 3)))
    yield bob.expect_line("ADL 8 OK")
    yield bob.expect_line("NLN NLN 1:alice@example.com Alice 2788999212:48")
    notice = yield alice.next()
    assert notice.payload == b'<ml><d n="example.com"><c n="bob" l="8" t="1" f="Bob"/></d></ml>'
    alice.send("CHG 9 BSY 2788999212:48 0")
    yield alice.expect_line("CHG 9 BSY 2788999212:48 0")
    yield bob.expect_line("NLN BSY 1:alice@example.com Alice 2788999212:48")
    yield alice.disconnect()
    yield bob.expect_line("FLN 1:alice@example.com 0:0")
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_rml_removes_and_tells_the_contact(pp_server):
    alice = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com")
    alice.send_payload("ADL 7", ml(("bob@example.com", 1)))
    yield alice.expect_line("ADL 7 OK")
    yield alice.expect_line("NLN NLN 1:bob@example.com Bob 2788999212:48")
    yield bob.next()  # ADL 0 (reverse list)
    alice.send_payload("RML 8", ml(("bob@example.com", 1)))
    yield alice.expect_line("RML 8 OK")
    notice = yield bob.next()
    assert notice.text.startswith("RML 0 ") and b'l="8"' in notice.payload
    # Not on the list any more: taking it off again is still OK.
    alice.send_payload("RML 9", ml(("bob@example.com", 1)))
    yield alice.expect_line("RML 9 OK")
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_adl_errors(pp_server):
    """
    An unknown account: 208.  An unknown network: 204.  A domain without a
    contact: 240 and a close.  Reverse-list bits from a client, or XML that
    is not XML: 241 and a close.
    """
    alice = yield online(pp_server, "alice@example.com")
    alice.send_payload("ADL 7", ml(("nobody@example.com", 1)))
    yield alice.expect_line("208 7")
    alice.send_payload("ADL 8", b'<ml><d n="yahoo.com"><c n="x" l="1" t="99"/></d></ml>')
    yield alice.expect_line("204 8")
    alice.send_payload("ADL 9", b'<ml><d n="example.com"></d></ml>')
    yield alice.expect_line("240 9")
    yield alice.expect_close()
    for payload in (ml(("bob@example.com", 8)), b"<ml><d", b'<!DOCTYPE ml [<!ENTITY x "y">]><ml/>'):
        bob = yield online(pp_server, "bob@example.com")
        bob.send_payload("ADL 7", payload)
        yield bob.expect_line("241 7")
        yield bob.expect_close()


@pytest_twisted.inlineCallbacks
def test_blp_is_echoed_at_every_login(pp_server):
    """
    MSNP13+ clients send BLP at each login: the current value is echoed
    (not 218), a new one stored.
    """
    alice = yield online(pp_server, "alice@example.com")
    alice.send("BLP 7 AL")
    yield alice.expect_line("BLP 7 AL")
    alice.send("BLP 8 BL")
    yield alice.expect_line("BLP 8 BL")
    alice.send("BLP 9 BL")
    yield alice.expect_line("BLP 9 BL")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_fqy_answers_windows_live(pp_server):
    alice = yield online(pp_server, "alice@example.com")
    alice.send_payload("FQY 7", b'<ml l="2"><d n="example.com"><c n="bob"/></d></ml>')
    answer = yield alice.next()
    assert answer.text == f"FQY 7 {len(answer.payload)}"
    assert answer.payload == b'<ml><d n="example.com"><c n="bob" t="1"/></d></ml>'
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_gone_commands(pp_server):
    """
    SYN is answered 502 from MSNP13, ADC is unknown (200), GTC closes.
    """
    alice = yield online(pp_server, "alice@example.com")
    alice.send("SYN 7 0 0")
    yield alice.expect_line("502 7")
    alice.send("ADC 8 FL N=bob@example.com F=Bob")
    yield alice.expect_line("200 8")
    alice.send("GTC 9 A")
    yield alice.expect_close()


@pytest_twisted.inlineCallbacks
def test_uux_and_ubx_across_dialects(pp_server):
    """
    An MSNP18 user's personal message reaches an MSNP12 watcher as
    UBX handle len and an MSNP18 one as UBX 1:handle len; an EndpointData
    document is kept with the endpoint and changes no personal message.
    """
    alice = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com")
    dave = yield twn.twn_login(pp_server, "dave@example.com", "pw-dave", "MSNP12")
    for watcher, trid in ((bob, 7), (dave, 7)):
        if watcher is bob:
            watcher.send_payload(f"ADL {trid}", ml(("alice@example.com", 3)))
            yield watcher.expect_line(f"ADL {trid} OK")
        else:
            watcher.send("ADC 7 FL N=alice@example.com F=Alice")
            yield watcher.expect("ADC 7 FL N=alice@example.com F=Alice C=\\S+")
            watcher.send("CHG 8 NLN 0")
            yield watcher.expect_line("CHG 8 NLN 0")
    yield bob.expect_line("NLN NLN 1:alice@example.com Alice 2788999212:48")
    yield dave.expect_line("ILN 8 NLN alice@example.com Alice 2788999212")
    yield alice.next()  # ADL 0 from bob
    yield alice.next()  # ADD/ADL 0 from dave
    data = b"<Data><PSM>hello</PSM><CurrentMedia></CurrentMedia><MachineGuid>{A80DD24A-1B2C-4D5E-8F90-112233445566}</MachineGuid></Data>"
    alice.send_payload("UUX 10", data)
    yield alice.expect_line("UUX 10 0")
    # MSNP18 watchers get the document with Alice's point of presence;
    # MSNP12 ones get it as sent; Alice hears her own, with private data.
    endpoint = b'<EndpointData id="{A80DD24A-1B2C-4D5E-8F90-112233445566}"><Capabilities>2788999212:48</Capabilities></EndpointData>'
    ubx = yield bob.next()
    assert ubx.text == f"UBX 1:alice@example.com {len(ubx.payload)}"
    assert ubx.payload == data[: -len(b"</Data>")] + endpoint + b"</Data>"
    ubx = yield dave.next()
    assert ubx.text == f"UBX alice@example.com {len(data)}" and ubx.payload == data
    own = yield expect_own_ubx(alice, "alice@example.com")
    assert own.payload.startswith(data[: -len(b"</Data>")] + endpoint + b'<PrivateEndpointData id="{A80DD24A')
    private = b"<PrivateEndpointData><EpName>laptop</EpName><Idle>false</Idle><ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>"
    alice.send_payload("UUX 11", private)
    yield alice.expect_line("UUX 11 0")
    own = yield expect_own_ubx(alice, "alice@example.com")
    assert b"<EpName>laptop</EpName>" in own.payload
    alice.send_payload("UUX 12", b"<Data><PSM>")
    yield alice.expect_line("201 12")
    yield bob.expect_silence()
    for client in (alice, bob, dave):
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_contacts_added_in_one_dialect_appear_in_every_other(pp_server):
    """
    MSNP18 Alice adds MSNP7 Carol: Carol gets ADD 0 RL; Carol adds Alice
    back with ADD: Alice gets ADL 0 RL.  MSNP2 Dave sees Alice's presence
    (NLN without capabilities) once he lists her; Alice sees both of them
    in her own shape.
    """
    alice = yield online(pp_server, "alice@example.com")
    carol = yield login(pp_server.notification_port, "carol@example.com", "pw-carol", "MSNP7")
    carol.send("SYN 1 0")
    while True:
        line = yield carol.next()
        if line.text.startswith("LST 1 RL"):
            break
    carol.send("CHG 2 NLN")
    yield carol.expect_line("CHG 2 NLN")
    alice.send_payload("ADL 7", ml(("carol@example.com", 3)))
    yield alice.expect_line("ADL 7 OK")
    yield alice.expect_line("NLN NLN 1:carol@example.com Carol 0:0")
    yield carol.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    carol.send("ADD 3 FL alice@example.com Alice 0")
    yield carol.expect(r"ADD 3 FL \d+ alice@example.com Alice 0")
    yield carol.expect_line("ILN 3 NLN alice@example.com Alice")
    notice = yield alice.next()
    assert notice.text.startswith("ADL 0 ") and b'<c n="carol" l="8" t="1" f="Carol"/>' in notice.payload
    dave = yield login(pp_server.notification_port, "dave@example.com", "pw-dave", "MSNP2")
    dave.send("CHG 1 NLN")
    yield dave.expect_line("CHG 1 NLN")
    dave.send("ADD 2 FL alice@example.com Alice")
    yield dave.expect(r"ADD 2 FL \d+ alice@example.com Alice")
    yield dave.expect_line("ILN 2 NLN alice@example.com Alice")
    notice = yield alice.next()
    assert b'<c n="dave" l="8" t="1" f="Dave"/>' in notice.payload
    alice.send_payload("ADL 8", ml(("dave@example.com", 3)))
    yield alice.expect_line("ADL 8 OK")
    yield alice.expect_line("NLN NLN 1:dave@example.com Dave 0:0")
    yield dave.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    alice.send("CHG 9 AWY 2788999212:48 0")
    yield alice.expect_line("CHG 9 AWY 2788999212:48 0")
    yield expect_own_ubx(alice, "alice@example.com")
    yield carol.expect_line("NLN AWY alice@example.com Alice")
    yield dave.expect_line("NLN AWY alice@example.com Alice")
    yield carol.disconnect()
    yield alice.expect_line("FLN 1:carol@example.com 0:0")
    for client in (alice, dave):
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_msnp15_presence_shape(pp_server):
    """
    MSNP15 (WLM 8.5) writes the network id after the handle and plain
    capabilities.
    """
    alice = yield online(pp_server, "alice@example.com", "MSNP15")
    bob = yield online(pp_server, "bob@example.com", "MSNP18", caps="5:6")
    yield befriend(alice, "ILN 70 NLN bob@example.com 1 Bob 5", bob, "NLN NLN 1:alice@example.com Alice 2788999212:0")
    # papyon writes caps:capsex at MSNP15 as well: taken, shown as MSNP18
    # shows it, echoed in MSNP15's form.
    alice.send("CHG 8 BSY 2754609152:48 0")
    yield alice.expect_line("CHG 8 BSY 2754609152 0")
    yield bob.expect_line("NLN BSY 1:alice@example.com Alice 2754609152:48")
    yield bob.disconnect()
    yield alice.expect_line("FLN bob@example.com 1 0")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_uun_relays_ubn(pp_server):
    """
    UUN to a contact who may see the sender: UUN OK, and UBN with the
    sender named with its machine GUID at MSNP18; to someone offline, 217.
    """
    alice = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com")
    yield befriend(
        alice, "NLN NLN 1:bob@example.com Bob 2788999212:48", bob, "NLN NLN 1:alice@example.com Alice 2788999212:48"
    )
    payload = b"<State>1</State>"
    alice.send_payload("UUN 8 bob@example.com 5", payload)
    yield alice.expect_line("UUN 8 OK")
    line = yield bob.next()
    assert line.text == f"UBN alice@example.com;{{A80DD24A-1B2C-4D5E-8F90-112233445566}} 5 {len(payload)}"
    assert line.payload == payload
    alice.send_payload("UUN 9 carol@example.com 5", payload)
    yield alice.expect_line("217 9")
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_switchboard_at_msnp18(pp_server):
    """
    XFR SB and RNG carry MSNP14's extra fields; USR and ANS name the
    endpoint (handle;{guid}); JOI and IRO carry caps:capsex; messages
    relay; a self CAL rings.
    """
    alice = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com", caps="5:6")
    yield befriend(alice, "NLN NLN 1:bob@example.com Bob 5:6", bob, "NLN NLN 1:alice@example.com Alice 2788999212:48")
    alice.send("XFR 10 SB")
    match = yield alice.expect(r"XFR 10 SB 127\.0\.0\.1:(\d+) CKI (\S+) U messenger\.msn\.com 1")
    sb = yield connect(int(match.group(1)), "sb-alice")
    sb.send(f"USR 1 alice@example.com;{sso.GUIDS['alice@example.com']} {match.group(2)}")
    yield sb.expect_line("USR 1 OK alice@example.com Alice")
    sb.send("CAL 2 alice@example.com")
    yield sb.expect(r"CAL 2 RINGING \d+")
    yield sb.expect_line("JOI alice@example.com Alice 2788999212:48")
    sb.send("CAL 3 bob@example.com")
    yield sb.expect(r"CAL 3 RINGING \d+")
    ring = yield bob.expect(r"RNG (\d+) 127\.0\.0\.1:(\d+) CKI (\S+) alice@example\.com Alice U messenger\.hotmail\.com 1")
    bob_sb = yield connect(int(ring.group(2)), "sb-bob")
    bob_sb.send(f"ANS 1 bob@example.com;{sso.GUIDS['bob@example.com']} {ring.group(3)} {ring.group(1)}")
    yield expect_lines(
        bob_sb,
        [
            "IRO 1 1 2 alice@example.com;{A80DD24A-1B2C-4D5E-8F90-112233445566} Alice 2788999212:48",
            "IRO 1 2 2 alice@example.com Alice 2788999212:48",
            "ANS 1 OK",
        ],
    )
    yield sb.expect_line("JOI bob@example.com;{B80DD24A-1B2C-4D5E-8F90-112233445566} Bob 5:6")
    yield sb.expect_line("JOI bob@example.com Bob 5:6")
    message = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi"
    sb.send_payload("MSG 4 A", message)
    yield sb.expect_line("ACK 4")
    relayed = yield bob_sb.next()
    assert relayed.text == f"MSG alice@example.com Alice {len(message)}" and relayed.payload == message
    yield bob_sb.disconnect()
    yield sb.expect_line("BYE bob@example.com;{B80DD24A-1B2C-4D5E-8F90-112233445566}")
    yield sb.expect_line("BYE bob@example.com")
    for client in (sb, alice, bob):
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_ans_with_another_endpoints_guid_is_refused(pp_server):
    alice = yield online(pp_server, "alice@example.com")
    alice.send("XFR 10 SB")
    match = yield alice.expect(r"XFR 10 SB 127\.0\.0\.1:(\d+) CKI (\S+) U messenger\.msn\.com 1")
    sb = yield connect(int(match.group(1)), "sb-alice")
    sb.send(f"USR 1 alice@example.com;{{00000000-1B2C-4D5E-8F90-112233445566}} {match.group(2)}")
    yield sb.expect_line("911 1")
    yield sb.expect_close()
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_points_of_presence_share_lists_and_presence(pp_server):
    """
    Alice signed in twice (two machine GUIDs): each endpoint's own UBX
    names both; her watcher Bob sees her once, with both endpoints in UBX;
    a contact added on one endpoint is on the other's lists; when one
    endpoint leaves, Bob sees no FLN (the other still shows her online),
    and FLN only when the last one goes.
    """
    bob = yield online(pp_server, "bob@example.com")
    first = yield online(pp_server, "alice@example.com")
    yield befriend(first, "NLN NLN 1:bob@example.com Bob 2788999212:48", bob, "NLN NLN 1:alice@example.com Alice 2788999212:48")
    other_guid = "{0000AAAA-1B2C-4D5E-8F90-112233445566}"
    second, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", guid=other_guid)
    second.send_payload("ADL 5", ml(initial=True))
    yield second.expect_line("ADL 5 OK")
    second.send("CHG 6 BSY 1:2 0")
    yield second.expect_line("CHG 6 BSY 1:2 0")
    yield second.expect_line("NLN NLN 1:bob@example.com Bob 2788999212:48")
    yield expect_mail_data(second)
    for client in (first, second):
        own = yield expect_own_ubx(client, "alice@example.com")
        assert own.payload.count(b"<EndpointData id=") == 2 and b"0000AAAA" in own.payload
    yield bob.expect_line("NLN BSY 1:alice@example.com Alice 1:2")
    # Carol added through the second endpoint is on the first one's lists.
    second.send_payload("ADL 7", ml(("carol@example.com", 3)))
    yield second.expect_line("ADL 7 OK")
    stored = yield pp_server.store.load_user("alice@example.com")
    assert "carol@example.com" in stored.lists["FL"]
    first.send_payload("RML 8", ml(("carol@example.com", 1)))
    yield first.expect_line("RML 8 OK")
    # Taken off through the first endpoint: it knew of the second's edit.
    stored = yield pp_server.store.load_user("alice@example.com")
    assert "carol@example.com" not in stored.lists["FL"]
    yield second.disconnect()
    yield bob.expect_line("NLN NLN 1:alice@example.com Alice 2788999212:48")
    yield first.disconnect()
    yield bob.expect_line("FLN 1:alice@example.com 0:0")
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_switchboard_per_point_of_presence(pp_server):
    """
    Alice at two endpoints: her self CAL rings her other endpoint (not the
    calling one), which joins as its own participant: MSNP18 Bob sees it
    as alice;{guid}, MSNP7 Carol is not told twice; messages reach every
    endpoint; when one of Alice's endpoints leaves, Bob gets BYE for it
    alone, and the bare BYE (and Carol's BYE) only when the last leaves.
    """
    first = yield online(pp_server, "alice@example.com")
    bob = yield online(pp_server, "bob@example.com", caps="5:6")
    yield befriend(first, "NLN NLN 1:bob@example.com Bob 5:6", bob, "NLN NLN 1:alice@example.com Alice 2788999212:48")
    other_guid = "0000AAAA-1B2C-4D5E-8F90-112233445566"
    second, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", guid="{" + other_guid + "}")
    second.send_payload("ADL 5", ml(initial=True))
    yield second.expect_line("ADL 5 OK")
    second.send("CHG 6 NLN 7:8 0")
    yield second.expect_line("CHG 6 NLN 7:8 0")
    first.send("XFR 10 SB")
    match = yield until(first, r"XFR 10 SB 127\.0\.0\.1:(\d+) CKI (\S+) U messenger\.msn\.com 1")
    sb = yield connect(int(match.group(1)), "sb-alice")
    sb.send(f"USR 1 alice@example.com;{sso.GUIDS['alice@example.com']} {match.group(2)}")
    yield sb.expect_line("USR 1 OK alice@example.com Alice")
    sb.send("CAL 2 alice@example.com")
    yield sb.expect(r"CAL 2 RINGING \d+")
    yield sb.expect_line("JOI alice@example.com Alice 2788999212:48")
    ring = None
    while ring is None:
        line = yield second.next()
        if line.name == "RNG":
            ring = line
    session_id, address, cookie = ring.args[1], ring.args[2], ring.args[4]
    sb2 = yield connect(int(address.split(":")[1]), "sb-alice2")
    sb2.send(f"ANS 1 alice@example.com;{{{other_guid}}} {cookie} {session_id}")
    yield expect_lines(
        sb2,
        [
            "IRO 1 1 2 alice@example.com;{A80DD24A-1B2C-4D5E-8F90-112233445566} Alice 2788999212:48",
            "IRO 1 2 2 alice@example.com Alice 2788999212:48",
            "ANS 1 OK",
        ],
    )
    yield sb.expect_line(f"JOI alice@example.com;{{{other_guid}}} Alice 7:8")
    sb.send("CAL 3 bob@example.com")
    yield sb.expect(r"CAL 3 RINGING \d+")
    bob_ring = yield until(bob, r"RNG (\d+) 127\.0\.0\.1:(\d+) CKI (\S+) alice@example\.com Alice U messenger\.hotmail\.com 1")
    bob_sb = yield connect(int(bob_ring.group(2)), "sb-bob")
    bob_sb.send(f"ANS 1 bob@example.com;{sso.GUIDS['bob@example.com']} {bob_ring.group(3)} {bob_ring.group(1)}")
    roster = []
    while True:
        line = yield bob_sb.next()
        if line.text == "ANS 1 OK":
            break
        roster.append(line.text.split(" ")[4])
    assert roster == [f"alice@example.com;{{{sso.GUIDS['alice@example.com'][1:-1]}}}", "alice@example.com", f"alice@example.com;{{{other_guid}}}"]
    message = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi all"
    bob_sb.send_payload("MSG 2 A", message)
    yield bob_sb.expect_line("ACK 2")
    for client in (sb, sb2):
        while True:
            line = yield client.next()
            if line.name == "MSG":
                assert line.payload == message
                break
    yield sb2.disconnect()
    yield bob_sb.expect_line(f"BYE alice@example.com;{{{other_guid}}}")
    yield bob_sb.expect_silence()
    yield sb.disconnect()
    yield bob_sb.expect_line(f"BYE alice@example.com;{sso.GUIDS['alice@example.com']}")
    yield bob_sb.expect_line("BYE alice@example.com")
    for client in (bob_sb, first, second, bob):
        yield client.disconnect()
