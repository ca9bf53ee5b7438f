"""
The client side of Windows Live Messenger logins and web services
(msnp/client/sso.py, addressbook.py, oim.py) and what msnp-script gained
for them: token answers read from the server's own RST.srf/RST2.srf
documents, the MBI answer the server accepts, faults, the address book
read over real TLS, offline message text, the "ADL t OK" server line, the
WLM product keys, and property tests for every parser.
"""

from __future__ import annotations

import types

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor

from msnp.client import addressbook, oim, passport, sso
from msnp.client.messenger import _list_notice, _plain_handle
from msnp.msn import challenge, dialects, membership, token_service, wire
from msnp.msn import oim as server_oim
from msnp.msn import sso as mbi
from msnp.script import engine, expressions, transcript
from test_msnp13_18_soap import call, contact_add
from test_transcripts import engine_for
from twn import pp_server  # noqa: F401 (fixture)

SECRET = bytes(range(24))


@pytest.mark.parametrize("flavour", [token_service.SOAP11, token_service.SOAP12])
def test_tokens_read_from_both_answers(flavour):
    """
    The tokens of an RST.srf (SOAP 1.1) or RST2.srf (SOAP 1.2) answer, by
    address, with the BinarySecret of the messenger ticket; the MBI answer
    made from it is the one the server verifies.
    """
    answer = token_service.rst_success(
        "alice@example.com",
        [("http://Passport.NET/tb", None), ("messengerclear.live.com", "t=a&p=b", SECRET, 300), ("contacts.msn.com", "t=c&p=d")],
        1_700_000_000,
        300,
        flavour,
    )
    tokens = sso.parse_tokens(answer)
    assert set(tokens) == {"messengerclear.live.com", "contacts.msn.com"}
    assert tokens["messengerclear.live.com"] == sso.Token("messengerclear.live.com", "t=a&p=b", SECRET)
    assert tokens["contacts.msn.com"].secret is None
    nonce = mbi.new_nonce()
    ticket, blob = sso.sso_answer(tokens["messengerclear.live.com"], nonce).split(" ")
    assert ticket == "t=a&p=b" and mbi.verify_mbi(SECRET, nonce, blob)
    with pytest.raises(sso.SSOError):
        sso.sso_answer(tokens["contacts.msn.com"], nonce)


def test_faults_and_the_token_service_address():
    """
    The authentication fault of either flavour is a refused password, any
    other fault an SSOError; RST2.srf serves MSNP18, RST.srf the others.
    """
    for fault in (token_service.RST_FAILED, token_service.RST2_FAILED):
        with pytest.raises(passport.PassportRefused):
            sso.parse_tokens(fault)
    for fault in (token_service.RST_INVALID, token_service.RST2_INVALID, b"<!DOCTYPE x><x/>", b"not xml"):
        with pytest.raises(sso.SSOError):
            sso.parse_tokens(fault)
    nexus = "https://login.example.com:1443/rdr/pprdr.asp"
    assert sso.token_service(nexus, 15) == "https://login.example.com:1443/RST.srf"
    assert sso.token_service(nexus, 18) == "https://login.example.com:1443/RST2.srf"
    assert b"<wsse:Password>0123456789abcdef</wsse:Password>" in sso.rst_envelope("a@b.c", "0123456789abcdefXYZ", False)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_token_parser_refuses_or_reads_any_bytes(data):
    """
    Whatever Passport answers, the reader gives tokens or its own errors.
    """
    try:
        sso.parse_tokens(data)
    except passport.PassportError:
        pass


_XML_PIECES = st.sampled_from(
    ["<Membership>", "</Membership>", "<MemberRole>Allow</MemberRole>", "<Members>", "</Members>", "<Member>", "</Member>",
     "<PassportName>bob@example.com</PassportName>", "<Contact>", "</Contact>", "<contactInfo>", "</contactInfo>",
     "<contactType>Me</contactType>", "<passportName>x@y.z</passportName>", "<annotations><Annotation><Name>MSN.IM.BLP</Name>",
     "<Value>2</Value></Annotation></annotations>", "<Group><groupId>g</groupId>", "</Group>", "text", "&amp;"]
)


@given(st.lists(_XML_PIECES, max_size=30))
@settings(max_examples=300, deadline=None)
def test_address_book_readers_take_any_document(pieces):
    """
    The membership and address book readers accept any well-formed
    document and refuse anything else with their own error.
    """
    data = ("<r>" + "".join(pieces) + "</r>").encode()
    try:
        root = addressbook.safexml.parse_xml(data, addressbook.AddressBookError)
    except addressbook.AddressBookError:
        return
    book = addressbook.AddressBook()
    addressbook.read_memberships(root, book)
    addressbook.read_address_book(root, book)
    assert book.blp in ("AL", "BL")
    membership.parse(addressbook.initial_adl(book))


def test_offline_message_text_round_trip():
    """
    The GetMessage text the server writes reads back as sender, name,
    sequence number and text.
    """
    kept = types.SimpleNamespace(text="see you à huit\r\nbye", sender="bob@example.com", sender_name="Bob Å", received_at=1_700_000_000, run_id="{X}", sequence=3)
    message = oim.parse_message("id-1", server_oim.message_text(kept, "alice@example.com"))
    assert message == oim.OfflineMessage("id-1", "bob@example.com", "Bob Å", "3", "see you à huit\r\nbye")


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_offline_message_parser_takes_any_text(text):
    try:
        oim.parse_message("id", text)
    except addressbook.AddressBookError:
        pass


def test_server_lines_of_msnp13():
    """
    From MSNP13 "ADL t OK" and "RML t OK" carry no payload, while the
    server's own ADL notice does.
    """
    rules = dialects.ALL_DIALECTS[18].server_lines
    assert wire.parse_server_line(b"ADL 9 OK", rules, 1000) == (wire.Command("ADL", 9, ("OK",)), None)
    assert wire.parse_server_line(b"RML 9 OK", rules, 1000) == (wire.Command("RML", 9, ("OK",)), None)
    assert wire.parse_server_line(b"ADL 0 64", rules, 1000) == (wire.Command("ADL", 0, ()), 64)
    assert wire.parse_server_line(b"ADL 0 OK", dialects.ALL_DIALECTS[12].server_lines, 1000)[1] is None


@pytest.mark.parametrize("version", [13, 14, 15, 16, 17, 18])
def test_challenge_answers_of_wlm_clients_are_accepted(version):
    """
    msnp-script answers CHL with the product key of the client of each
    dialect (8.0, 8.5, 2009), which the server accepts there.
    """
    text = challenge.new_challenge()
    product = expressions.product_for(version)
    answer = expressions.challenge_answer(version, text).encode()
    assert product in challenge.products_for(version)
    assert challenge.answer_is_right(True, text, product, answer, challenge.products_for(version))


def test_machine_guids_follow_client_names():
    """
    A client name is a machine: the same GUID each time, another name
    another GUID.
    """
    assert engine.machine_guid("alice") == engine.machine_guid("Alice")
    assert engine.machine_guid("alice") != engine.machine_guid("alice-laptop")
    assert engine.machine_guid("alice").startswith("{") and len(engine.machine_guid("alice")) == 38


def test_parse_offline_reading_with_its_text():
    parsed = transcript.parse("alice reads offline message {oim_id}\n    | see you\n    |\n    | bye\nalice ignores UBX\n")
    assert parsed.steps[0].kind == "read_offline" and parsed.steps[0].args == ("{oim_id}",)
    assert parsed.steps[0].payload == "see you\r\n\r\nbye"
    with pytest.raises(transcript.TranscriptSyntaxError):
        transcript.parse("alice ignores UBX\n    | text\n")


@pytest_twisted.inlineCallbacks
def test_address_book_read_over_tls(pp_server):  # noqa: F811
    """
    The lists as the web services give them: a contact added through the
    address book is on FL (with AL), one blocked through the Sharing
    service on BL; the initial ADL names both with their bits.
    """
    tokens = yield defer.ensureDeferred(
        sso.fetch_tokens(reactor, "alice@example.com", "pw-alice", pp_server.url("/RST2.srf").decode(), pp_server.cert_pem)
    )
    token = tokens[sso.CONTACTS].ticket
    code, _ = yield call(pp_server, "ab", "ABContactAdd", contact_add("bob@example.com"), token)
    assert code == 200
    block = (
        "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle><memberships><Membership>"
        '<MemberRole>Block</MemberRole><Members><Member xsi:type="PassportMember" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<Type>Passport</Type><State>Accepted</State><PassportName>carol@example.com</PassportName></Member></Members>"
        "</Membership></memberships>"
    )
    code, _ = yield call(pp_server, "sharing", "AddMember", block, token)
    assert code == 200
    nexus = pp_server.url("/rdr/pprdr.asp").decode()
    book = yield defer.ensureDeferred(addressbook.fetch(reactor, nexus, token, pp_server.cert_pem))
    assert book.entries["bob@example.com"].lists == {"FL", "AL"}
    assert book.entries["bob@example.com"].name == "bob@example.com"
    assert book.entries["carol@example.com"].lists == {"BL"}
    assert book.my_name == "Alice" and book.blp == "AL"
    assert membership.parse(addressbook.initial_adl(book)) == (
        True,
        [membership.ListEntry("bob@example.com", membership.FL | membership.AL), membership.ListEntry("carol@example.com", membership.BL)],
    )
    with pytest.raises(addressbook.AddressBookError):
        yield defer.ensureDeferred(addressbook.fetch(reactor, nexus, "t=forged&p=x", pp_server.cert_pem))
    with pytest.raises(passport.PassportRefused):
        yield defer.ensureDeferred(
            sso.fetch_tokens(reactor, "alice@example.com", "wrong", pp_server.url("/RST.srf").decode(), pp_server.cert_pem)
        )


@pytest_twisted.inlineCallbacks
def test_wlm_sign_in_failures_are_file_failures(live_server):
    """
    A refused password at single sign-on, and an offline message that is
    not there, each fail their transcript with the reason; ignoring a
    command before connecting applies to every later connection.
    """
    runner = engine_for(live_server)
    runner.accounts = dict(runner.accounts, **{"alice@example.com": "wrong"})
    result = yield defer.ensureDeferred(runner.run(transcript.parse("alice signs in with MSNP18 as NLN\n", "t.txt")))
    assert not result.passed and "PassportRefused" in result.failure.received
    runner = engine_for(live_server)
    result = yield defer.ensureDeferred(
        runner.run(transcript.parse("bob ignores UBX\nbob signs in with MSNP18 as NLN\nbob reads offline message nothing-here\n", "t.txt"))
    )
    assert not result.passed and result.failure.line == 3 and "MessageDoesNotExist" in result.failure.received
    assert not any(step.startswith("bob< UBX") for step in result.steps)


def test_list_notices_read_by_the_client():
    """
    The server's ADL/RML 0 notices give handle, bits and name; what is not
    one gives nothing.
    """
    payload = b'<ml><d n="example.com"><c n="bob" l="8" t="1" f="Bob%20B"/></d><d n="x.org"><c n="eve" l="3"/></d></ml>'
    assert _list_notice(payload) == [("bob@example.com", 8, "Bob%20B"), ("eve@x.org", 3, "")]
    assert _list_notice(b"<ml><d><c n='x' l='8'/></d></ml>") == [] and _list_notice(b"nope") == [] and _list_notice(None) == []
    assert _plain_handle("1:Bob@Example.com") == "bob@example.com"
    assert _plain_handle("bob@example.com;{A-B}") == "bob@example.com"


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_list_notice_reader_takes_any_bytes(data):
    """
    Whatever a server sends as an ADL/RML notice, the client reads entries
    or nothing, never a crash.
    """
    for handle, bits, _ in _list_notice(data):
        assert "@" in handle and bits >= 0
