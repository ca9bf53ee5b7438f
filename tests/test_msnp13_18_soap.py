"""
The address book and Sharing web services over real TLS, with the token
from Passport: every operation's request and answer, the faults clients
expect, and list edits made here reaching users of other dialects (and
theirs reaching the address book).
"""

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest_twisted
from twisted.internet import defer

import sso
import twn
from msnclient import login
from ns_steps import sign_in
from test_msnp13_18_lists import expect_mail_data
from twn import pp_server  # noqa: F401 (fixture)

AB = "{http://www.msn.com/webservices/AddressBook}"


def envelope(action: str, inner: str, token: str, scenario: str = "Initial") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        '<soap:Header><ABApplicationHeader xmlns="http://www.msn.com/webservices/AddressBook">'
        "<ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId><IsMigration>false</IsMigration>"
        f"<PartnerScenario>{scenario}</PartnerScenario></ABApplicationHeader>"
        '<ABAuthHeader xmlns="http://www.msn.com/webservices/AddressBook"><ManagedGroupRequest>false</ManagedGroupRequest>'
        f"<TicketToken>{escape(token)}</TicketToken></ABAuthHeader></soap:Header>"
        f'<soap:Body><{action} xmlns="http://www.msn.com/webservices/AddressBook">{inner}</{action}></soap:Body>'
        "</soap:Envelope>"
    ).encode("utf-8")


@defer.inlineCallbacks
def call(server, service: str, action: str, inner: str, token: str):
    path = "/abservice/SharingService.asmx" if service == "sharing" else "/abservice/abservice.asmx"
    headers = {"SOAPAction": f"http://www.msn.com/webservices/AddressBook/{action}"}
    response, data = yield sso.post(server, path, envelope(action, inner, token), headers)
    return response.code, ET.fromstring(data)


def errorcode(root) -> str:
    return root.find(f".//{AB}errorcode").text


@defer.inlineCallbacks
def contacts_token(server, handle="alice@example.com", password="pw-alice"):
    tokens = yield sso.request_tokens(server, handle, password)
    return tokens["contacts.msn.com"]["token"]


def contact_add(handle: str) -> str:
    return (
        f"<abId>00000000-0000-0000-0000-000000000000</abId><contacts><Contact><contactInfo>"
        f"<passportName>{handle}</passportName><isMessengerUser>true</isMessengerUser></contactInfo></Contact></contacts>"
        "<options><EnableAllowListManagement>true</EnableAllowListManagement></options>"
    )


def members(root, role: str) -> list:
    for membership in root.iter(f"{AB}Membership"):
        if membership.find(f"{AB}MemberRole").text == role:
            return [m.find(f"{AB}PassportName").text for m in membership.iter(f"{AB}Member")]
    raise AssertionError(role)


def book(root) -> dict:
    """
    passportName → (contactType, displayName, [group ids]) of the book.
    """
    found = {}
    for contact in root.iter(f"{AB}Contact"):
        info = contact.find(f"{AB}contactInfo")
        groups = [g.text for g in info.iter(f"{AB}guid")]
        found[info.find(f"{AB}passportName").text] = (info.find(f"{AB}contactType").text, info.find(f"{AB}displayName").text, groups)
    return found


@pytest_twisted.inlineCallbacks
def test_fresh_account_book_and_memberships(pp_server):
    """
    A new account: the Me contact with its name, CID and privacy
    annotations, no group, and four empty memberships.
    """
    token = yield contacts_token(pp_server)
    code, root = yield call(pp_server, "sharing", "FindMembership", "<serviceFilter><Types><ServiceType>Messenger</ServiceType></Types></serviceFilter>", token)
    assert code == 200
    assert root.find(f".//{AB}CacheKey").text.startswith("12r1:")
    for role in ("Allow", "Block", "Reverse", "Pending"):
        assert members(root, role) == []
    code, root = yield call(pp_server, "ab", "ABFindAll", "<abId>00000000-0000-0000-0000-000000000000</abId><abView>Full</abView><deltasOnly>true</deltasOnly>", token)
    assert code == 200
    assert book(root) == {"alice@example.com": ("Me", "Alice", [])}
    annotations = {a.find(f"{AB}Name").text: a.find(f"{AB}Value").text for a in root.iter(f"{AB}Annotation")}
    assert annotations["MSN.IM.BLP"] == "1" and annotations["MSN.IM.GTC"] == "1"
    code, root = yield call(pp_server, "ab", "ABFindContactsPaged", "<abView>Full</abView><extendedContent>AB AllGroups CircleResult</extendedContent>", token)
    assert code == 200 and root.find(f".//{AB}ABFindContactsPagedResult/{AB}Contacts") is not None
    assert root.find(f".//{AB}CircleResult") is not None


@pytest_twisted.inlineCallbacks
def test_contact_add_reaches_an_msnp7_user_and_back(pp_server):
    """
    ABContactAdd puts Bob on Alice's forward (and allow) list: MSNP7 Bob,
    online, gets ADD 0 RL; Bob adding Alice with ADD shows in Alice's
    Reverse membership; ABContactDelete takes Bob off again (REM 0 RL).
    """
    bob = yield sign_in(pp_server, "bob@example.com", "MSNP7", "NLN")
    token = yield contacts_token(pp_server)
    code, root = yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), token)
    assert code == 200
    guid = root.find(f".//{AB}guid").text
    assert re.fullmatch(r"[0-9a-f-]{36}", guid)
    yield bob.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    code, root = yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), token)
    assert code == 500 and errorcode(root) == "ContactAlreadyExists"
    assert root.find(f".//{AB}conflictObjectId") is None or root.find(".//conflictObjectId").text == guid
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Allow") == ["bob@example.com"]
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example.com Alice 0")
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Reverse") == ["bob@example.com"]
    code, root = yield call(pp_server, "ab", "ABFindAll", "", token)
    assert book(root)["bob@example.com"] == ("Regular", "bob@example.com", [])
    code, root = yield call(pp_server, "ab", "ABContactDelete", f"<contacts><Contact><contactId>{guid}</contactId></Contact></contacts>", token)
    assert code == 200
    yield bob.expect(r"REM 0 RL \d+ alice@example.com")
    code, root = yield call(pp_server, "ab", "ABContactDelete", f"<contacts><Contact><contactId>{guid}</contactId></Contact></contacts>", token)
    assert code == 500 and errorcode(root) == "ContactDoesNotExist"
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_contact_add_faults(pp_server):
    token = yield contacts_token(pp_server)
    for handle, code in (("nobody@example.com", "InvalidPassportUser"), ("nobody", "BadEmailArgument"), ("x@example", "BadEmailArgument")):
        status, root = yield call(pp_server, "ab", "ABContactAdd", contact_add(handle), token)
        assert status == 500 and errorcode(root) == code, handle


@pytest_twisted.inlineCallbacks
def test_groups_and_their_contacts_reach_msnp12(pp_server):
    """
    ABGroupAdd, ABGroupContactAdd, ABGroupUpdate: the book shows the group
    and membership, and Alice at MSNP12 sees them in SYN; ABGroupDelete
    keeps the contact; ABGroupContactDelete takes it out of a group.
    """
    token = yield contacts_token(pp_server)
    yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), token)
    code, root = yield call(pp_server, "ab", "ABGroupAdd", "<groupAddOptions><fRenameOnMsgrConflict>false</fRenameOnMsgrConflict></groupAddOptions><groupInfo><GroupInfo><name>Friends</name><groupType>C8529CE2-6EAD-434d-881F-341E17DB3FF8</groupType><fMessenger>false</fMessenger></GroupInfo></groupInfo>", token)
    assert code == 200
    group = root.find(f".//{AB}guid").text
    code, root = yield call(pp_server, "ab", "ABGroupAdd", "<groupInfo><GroupInfo><name>Friends</name></GroupInfo></groupInfo>", token)
    assert code == 500 and errorcode(root) == "GroupAlreadyExists"
    code, root = yield call(pp_server, "ab", "ABGroupAdd", f"<groupInfo><GroupInfo><name>{'x' * 62}</name></GroupInfo></groupInfo>", token)
    assert code == 500 and errorcode(root) == "BadArgumentLength"
    code, root = yield call(pp_server, "ab", "ABFindAll", "", token)
    bob_guid = [c.find(f"{AB}contactId").text for c in root.iter(f"{AB}Contact") if c.find(f".//{AB}passportName").text == "bob@example.com"][0]
    contact = f"<contacts><Contact><contactId>{bob_guid}</contactId></Contact></contacts>"
    code, root = yield call(pp_server, "ab", "ABGroupContactAdd", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>{contact}", token)
    assert code == 200 and root.find(f".//{AB}guid").text == bob_guid
    code, root = yield call(pp_server, "ab", "ABGroupUpdate", f"<groups><Group><groupId>{group}</groupId><groupInfo><name>Mates</name></groupInfo><propertiesChanged>GroupName</propertiesChanged></Group></groups>", token)
    assert code == 200
    code, root = yield call(pp_server, "ab", "ABFindAll", "", token)
    assert book(root)["bob@example.com"][2] == [group]
    assert [g.text for g in root.iter(f"{AB}name")] == ["Mates"]
    alice = yield twn.twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    alice.send("SYN 5 0 0")
    lines = []
    while True:
        line = yield alice.next()
        lines.append(line.text)
        if line.name == "LST":
            break
    assert f"LSG Mates {group}" in lines
    assert re.fullmatch(rf"LST N=bob@example.com F=bob@example.com C=\S+ 3 1 {group}", lines[-1])
    yield alice.disconnect()
    code, root = yield call(pp_server, "ab", "ABGroupContactDelete", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>{contact}", token)
    assert code == 200
    code, root = yield call(pp_server, "ab", "ABGroupContactDelete", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>{contact}", token)
    assert code == 500 and errorcode(root) == "ContactDoesNotExist"
    yield call(pp_server, "ab", "ABGroupContactAdd", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>{contact}", token)
    code, root = yield call(pp_server, "ab", "ABGroupDelete", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>", token)
    assert code == 200
    code, root = yield call(pp_server, "ab", "ABFindAll", "", token)
    assert book(root)["bob@example.com"] == ("Regular", "bob@example.com", [])
    code, root = yield call(pp_server, "ab", "ABGroupDelete", f"<groupFilter><groupIds><guid>{group}</guid></groupIds></groupFilter>", token)
    assert code == 500 and errorcode(root) == "GroupDoesNotExist"


def member_request(role: str, handle: str) -> str:
    """
    The body of a Sharing service AddMember or DeleteMember of one
    Passport member in C{role}.
    """
    return (
        "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle>"
        f"<memberships><Membership><MemberRole>{role}</MemberRole><Members>"
        f'<Member xsi:type="PassportMember" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Type>Passport</Type>'
        f"<State>Accepted</State><PassportName>{handle}</PassportName></Member></Members></Membership></memberships>"
    )


@pytest_twisted.inlineCallbacks
def test_block_and_unblock_with_members(pp_server):
    """
    AddMember Block moves a contact from Allow to Block; DeleteMember Block
    and AddMember Allow move it back; Reverse and Pending are
    acknowledged; deleting a member who is not there is a fault.
    """
    token = yield contacts_token(pp_server)
    yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), token)

    code, _ = yield call(pp_server, "sharing", "AddMember", member_request("Block", "bob@example.com"), token)
    assert code == 200
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Allow") == [] and members(root, "Block") == ["bob@example.com"]
    code, _ = yield call(pp_server, "sharing", "AddMember", member_request("Allow", "bob@example.com"), token)
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Allow") == ["bob@example.com"] and members(root, "Block") == []
    code, _ = yield call(pp_server, "sharing", "AddMember", member_request("Reverse", "carol@example.com"), token)
    assert code == 200
    code, root = yield call(pp_server, "sharing", "DeleteMember", member_request("Block", "bob@example.com"), token)
    assert code == 500 and errorcode(root) == "MemberDoesNotExist"
    code, _ = yield call(pp_server, "sharing", "DeleteMember", member_request("Allow", "bob@example.com"), token)
    assert code == 200
    code, root = yield call(pp_server, "sharing", "AddMember", member_request("Block", "nobody@example.com"), token)
    assert code == 500 and errorcode(root) == "UserDoesNotExist"


@pytest_twisted.inlineCallbacks
def test_me_contact_update_sets_name_and_privacy(pp_server):
    """
    ABContactUpdate of the Me contact renames the user and sets BLP; an
    MSNP12 session of the same user learns both through SYN.
    """
    token = yield contacts_token(pp_server)
    inner = (
        "<contacts><Contact><contactInfo><contactType>Me</contactType><displayName>Alice W</displayName>"
        "<annotations><Annotation><Name>MSN.IM.BLP</Name><Value>2</Value></Annotation></annotations>"
        "</contactInfo><propertiesChanged>DisplayName Annotation</propertiesChanged></Contact></contacts>"
    )
    code, _ = yield call(pp_server, "ab", "ABContactUpdate", inner, token)
    assert code == 200
    code, root = yield call(pp_server, "ab", "ABFindAll", "", token)
    assert book(root)["alice@example.com"][1] == "Alice W"
    alice = yield twn.twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
    alice.send("SYN 5 0 0")
    yield alice.expect(r"SYN 5 \d+ \d+ 0 0")
    yield alice.expect_line("GTC A")
    yield alice.expect_line("BLP BL")
    yield alice.expect_line("PRP MFN Alice%20W")
    yield alice.disconnect()


@pytest_twisted.inlineCallbacks
def test_bad_requests_get_faults(pp_server):
    """
    No token, an unknown token, an operation the service lacks, and a
    body that is no SOAP envelope: each a fault with HTTP 500.
    """
    token = yield contacts_token(pp_server)
    code, root = yield call(pp_server, "ab", "ABFindAll", "", "t=nothing&p=nothing")
    assert code == 500 and errorcode(root) == "BadContextToken"
    code, root = yield call(pp_server, "ab", "ABFindEverything", "", token)
    assert code == 500 and errorcode(root) == "NotSupported"
    for body in (b"<soap:Envelope", b"<x/>", b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'):
        response, data = yield sso.post(pp_server, "/abservice/abservice.asmx", body)
        assert response.code == 500 and b"<errorcode" in data


@pytest_twisted.inlineCallbacks
def test_msnp18_user_with_soap_and_adl_seen_by_msnp7(pp_server):
    """
    The WLM 2009 flow: ABContactAdd, then ADL FL|AL; MSNP7 Carol (online)
    gets ADD 0 RL, adds Alice back, and each sees the other online.
    """
    carol = yield sign_in(pp_server, "carol@example.com", "MSNP7", "NLN")
    alice, tokens = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice")
    token = tokens["contacts.msn.com"]["token"]
    code, _ = yield call(pp_server, "ab", "ABContactAdd", contact_add("carol@example.com"), token)
    assert code == 200
    yield carol.expect(r"ADD 0 RL \d+ alice@example.com Alice")
    alice.send_payload("ADL 5", b'<ml l="1"><d n="example.com"><c n="carol" l="3" t="1"/></d></ml>')
    yield alice.expect_line("ADL 5 OK")
    alice.send("CHG 6 NLN 2788999212:48 0")
    yield alice.expect_line("CHG 6 NLN 2788999212:48 0")
    yield alice.expect_line("NLN NLN 1:carol@example.com Carol 0:0")
    yield expect_mail_data(alice)
    carol.send("ADD 7 FL alice@example.com Alice")
    yield carol.expect(r"ADD 7 FL \d+ alice@example.com Alice 0")
    yield carol.expect_line("ILN 7 NLN alice@example.com Alice")
    yield alice.disconnect()
    yield carol.disconnect()


def storage_envelope(action: str, inner: str, token: str, ns: str = "http://www.msn.com/webservices/storage/2008") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soap:Header><StorageApplicationHeader xmlns="{ns}"><ApplicationID>Messenger Client 9.0</ApplicationID>'
        f'<Scenario>Initial</Scenario></StorageApplicationHeader><StorageUserHeader xmlns="{ns}"><Puid>0</Puid>'
        f"<TicketToken>{escape(token)}</TicketToken></StorageUserHeader></soap:Header>"
        f'<soap:Body><{action} xmlns="{ns}">{inner}</{action}></soap:Body></soap:Envelope>'
    ).encode("utf-8")


@pytest_twisted.inlineCallbacks
def test_storage_profile(pp_server):
    """
    GetProfile gives the friendly name and the personal message shown now,
    in the namespace asked; UpdateProfile's display name renames the user
    (an MSNP7 watcher sees the new name).
    """
    alice, tokens = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice")
    token = tokens["storage.live.com"]["token"]
    alice.send_payload("UUX 5", b"<Data><PSM>out &amp; about</PSM><CurrentMedia></CurrentMedia></Data>")
    yield alice.expect_line("UUX 5 0")
    inner = "<profileHandle><Alias><Name>0</Name><NameSpace>MyCidStuff</NameSpace></Alias><RelationshipName>MyProfile</RelationshipName></profileHandle>"
    response, data = yield sso.post(pp_server, "/storageservice/SchematizedStore.asmx", storage_envelope("GetProfile", inner, token, "http://www.msn.com/webservices/storage/w10"))
    assert response.code == 200
    root = ET.fromstring(data)
    W10 = "{http://www.msn.com/webservices/storage/w10}"
    assert root.find(f".//{W10}ExpressionProfile/{W10}DisplayName").text == "Alice"
    assert root.find(f".//{W10}ExpressionProfile/{W10}PersonalStatus").text == "out & about"
    carol = yield sign_in(pp_server, "carol@example.com", "MSNP7", "NLN")
    carol.send("ADD 5 FL alice@example.com Alice")
    yield carol.expect(r"ADD 5 FL \d+ alice@example.com Alice 0")
    yield alice.next()  # ADL 0 (carol added alice)
    update = "<profile><ResourceID>0!118</ResourceID><ExpressionProfile><FreeText>Update</FreeText><DisplayName>Alice in Storage</DisplayName><Flags>0</Flags></ExpressionProfile></profile>"
    response, data = yield sso.post(pp_server, "/storageservice/SchematizedStore.asmx", storage_envelope("UpdateProfile", update, token))
    assert response.code == 200 and b"UpdateProfileResponse" in data
    alice.send("CHG 6 NLN 0:0 0")
    yield alice.expect_line("CHG 6 NLN 0:0 0")
    yield expect_mail_data(alice)
    yield carol.expect_line("NLN NLN alice@example.com Alice%20in%20Storage")
    response, data = yield sso.post(pp_server, "/storageservice/SchematizedStore.asmx", storage_envelope("FindDocuments", "", token))
    assert response.code == 500 and b"NotSupported" in data
    yield alice.disconnect()
    yield carol.disconnect()



@pytest_twisted.inlineCallbacks
def test_adl_after_contact_add_shows_presence(pp_server):
    """
    WLM's order: ABContactAdd (the contact is on the forward list at
    once), then ADL FL: the contact's presence follows the ADL OK although
    the ADL added nothing (papyon saw no presence without this).
    """
    bob = yield sign_in(pp_server, "bob@example.com", "MSNP7", "NLN")
    alice, tokens = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice")
    alice.send_payload("ADL 5", b'<ml l="1"></ml>')
    yield alice.expect_line("ADL 5 OK")
    alice.send("CHG 6 NLN 2788999212:48 0")
    yield alice.expect_line("CHG 6 NLN 2788999212:48 0")
    yield expect_mail_data(alice)
    yield alice.next()  # her own UBX
    code, _ = yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), tokens["contacts.msn.com"]["token"])
    assert code == 200
    alice.send_payload("ADL 7", b'<ml><d n="example.com"><c n="bob" l="3" t="1"/></d></ml>')
    yield alice.expect_line("ADL 7 OK")
    yield alice.expect_line("NLN NLN 1:bob@example.com Bob 0:0")
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_pending_is_who_added_me_and_awaits_an_answer(pp_server):
    """
    Bob (MSNP7) adds Alice, who has not answered: he is in her Reverse
    and Pending memberships.  Allowing him (AddMember Allow, then the
    client's DeleteMember Pending) or blocking him ends the wait.
    """
    bob = yield sign_in(pp_server, "bob@example.com", "MSNP7", "NLN")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example.com Alice 0")
    token = yield contacts_token(pp_server)
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Reverse") == ["bob@example.com"] and members(root, "Pending") == ["bob@example.com"]

    code, _ = yield call(pp_server, "sharing", "AddMember", member_request("Allow", "bob@example.com"), token)
    assert code == 200
    code, _ = yield call(pp_server, "sharing", "DeleteMember", member_request("Pending", "bob@example.com"), token)
    assert code == 200
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Pending") == [] and members(root, "Allow") == ["bob@example.com"]
    yield call(pp_server, "sharing", "DeleteMember", member_request("Allow", "bob@example.com"), token)
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Pending") == ["bob@example.com"]
    yield call(pp_server, "sharing", "AddMember", member_request("Block", "bob@example.com"), token)
    code, root = yield call(pp_server, "sharing", "FindMembership", "", token)
    assert members(root, "Pending") == [] and members(root, "Block") == ["bob@example.com"]
    yield bob.disconnect()
