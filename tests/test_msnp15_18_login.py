"""
MSNP13-MSNP18 logins over real sockets and TLS: TWN with the policies
first at 13-14; single sign-on at 15+ with RST.srf (SOAP 1.1) and RST2.srf
(SOAP 1.2) tokens numbered by request, the BinarySecret kept with the
ticket and the MBI proof checked against it, the machine GUID from 16,
tickets bound and single-use, and points of presence replaced or kept by
machine GUID.
"""

import re

import pytest_twisted

import sso
import twn
from msnp.msn import sso as msn_sso
from twn import pp_server  # noqa: F401 (fixture)


@pytest_twisted.inlineCallbacks
def test_rst2_answers_soap12_with_tokens_numbered_by_request(pp_server):
    """
    RST2.srf answers in SOAP 1.2; every token's Id is Compact<request
    index>; messengerclear (and the legacy tb token) carry a 24-byte
    BinarySecret, the other tokens none.
    """
    response, data = yield sso.post(pp_server, "/RST2.srf", sso.rst_envelope("alice@example.com", "pw-alice"))
    assert response.code == 200
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?><S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"')
    assert b"<wst:Lifetime>" in data and b"http://schemas.xmlsoap.org/ws/2005/02/trust" in data
    tokens = sso.parse_tokens(data)
    assert tokens["http://Passport.NET/tb"]["id"] == "BinaryDAToken0"
    for index, (address, _) in enumerate(sso.WLM_TOKENS[1:], 1):
        assert tokens[address]["id"] == f"Compact{index}", address
        assert re.fullmatch(r"t=[\w-]+&p=[\w-]+", tokens[address]["token"]), address
    assert len(tokens["messengerclear.live.com"]["secret"]) == 24
    assert all(tokens[a]["secret"] is None for a, _ in sso.WLM_TOKENS[2:])


@pytest_twisted.inlineCallbacks
def test_rst2_wrong_password_is_a_soap12_fault(pp_server):
    response, data = yield sso.post(pp_server, "/RST2.srf", sso.rst_envelope("alice@example.com", "wrong"))
    assert response.code == 200
    assert b"<S:Value>wst:FailedAuthentication</S:Value>" in data and b"2003/05/soap-envelope" in data
    assert b"BinarySecurityToken" not in data
    response, data = yield sso.post(pp_server, "/RST2.srf", b"<not-soap/>")
    assert response.code == 400 and b"wst:InvalidRequest" in data


@pytest_twisted.inlineCallbacks
def test_msnp18_sso_login(pp_server):
    """
    USR SSO I → GCF 0 policies and USR SSO S MBI_KEY_OLD with a 64-char
    nonce; the ticket with the MBI proof and the GUID (without braces, as
    libpurple sends it) → USR OK, SBS, the profile with MPOPEnabled: 1,
    and the self UBX.
    """
    tokens = yield sso.request_tokens(pp_server, "alice@example.com", "pw-alice")
    client, nonce = yield sso.sso_start(pp_server, "alice@example.com")
    assert len(nonce) == 64
    clear = tokens["messengerclear.live.com"]
    client.send(f"USR 4 SSO S {clear['token']} {msn_sso.mbi_blob(clear['secret'], nonce)} A80DD24A-1B2C-4D5E-8F90-112233445566")
    yield client.expect_line("USR 4 OK alice@example.com 1 0")
    yield client.expect_line("SBS 0 null")
    profile = yield client.next()
    assert b"MPOPEnabled: 1" in profile.payload and b"ABCHMigrated: 1" in profile.payload
    yield client.expect_line("UBX 1:alice@example.com 0")
    yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_msnp15_sso_login_with_rst(pp_server):
    client, tokens = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", "MSNP15")
    assert tokens["messengerclear.live.com"]["id"] == "Compact1"
    client.send("PNG")
    yield client.expect_line("QNG 60")
    yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_wrong_proof_is_refused_and_uses_the_ticket_up(pp_server):
    """
    A blob made with another secret gets 911 and a close; the ticket is
    used up, so the right proof cannot follow.
    """
    tokens = yield sso.request_tokens(pp_server, "alice@example.com", "pw-alice")
    clear = tokens["messengerclear.live.com"]
    client, nonce = yield sso.sso_start(pp_server, "alice@example.com")
    client.send(f"USR 4 SSO S {clear['token']} {msn_sso.mbi_blob(bytes(24), nonce)} {sso.GUIDS['alice@example.com']}")
    yield client.expect_line("911 4")
    yield client.expect_close()
    client, nonce = yield sso.sso_start(pp_server, "alice@example.com")
    client.send(f"USR 4 SSO S {clear['token']} {msn_sso.mbi_blob(clear['secret'], nonce)} {sso.GUIDS['alice@example.com']}")
    yield client.expect_line("911 4")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_ticket_is_bound_to_its_account(pp_server):
    tokens = yield sso.request_tokens(pp_server, "alice@example.com", "pw-alice")
    clear = tokens["messengerclear.live.com"]
    client, nonce = yield sso.sso_start(pp_server, "bob@example.com")
    client.send(f"USR 4 SSO S {clear['token']} {msn_sso.mbi_blob(clear['secret'], nonce)} {sso.GUIDS['bob@example.com']}")
    yield client.expect_line("911 4")
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_guid_required_from_msnp16_and_proof_always(pp_server):
    """
    At MSNP18 a USR SSO S without the GUID, or with one that is no GUID,
    and at MSNP15 one without the proof, get 911 and a close.
    """
    tokens = yield sso.request_tokens(pp_server, "alice@example.com", "pw-alice")
    clear = tokens["messengerclear.live.com"]
    for dialect, tail in (("MSNP18", ""), ("MSNP18", " {nonsense}"), ("MSNP15", None)):
        client, nonce = yield sso.sso_start(pp_server, "alice@example.com", dialect)
        proof = "" if tail is None else " " + msn_sso.mbi_blob(clear["secret"], nonce) + tail
        client.send(f"USR 4 SSO S {clear['token']}{proof}")
        yield client.expect_line("911 4")
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_twn_login_at_msnp13_sends_policies_first(pp_server):
    """
    MSNP13-14 log in with TWN as MSNP12 did, with GCF 0 before USR TWN S.
    """
    for dialect in ("MSNP13", "MSNP14"):
        client = yield twn.connect(pp_server.notification_port, "alice")
        client.send(f"VER 1 {dialect} CVR0")
        yield client.expect_line(f"VER 1 {dialect}")
        client.send("USR 2 TWN I alice@example.com")
        policies = yield client.next()
        assert policies.text.startswith("GCF 0 ") and policies.payload.startswith(b"<Policies>")
        match = yield client.expect(r"USR 2 TWN S (\S+)")
        response, ticket = yield twn.passport_login(pp_server, "alice@example.com", "pw-alice", match.group(1))
        client.send(f"USR 3 TWN S {ticket}")
        yield client.expect_line("USR 3 OK alice@example.com 1 0")
        yield client.expect_line("SBS 0 null")
        profile = yield client.next()
        assert b"MPOPEnabled: 0" in profile.payload
        yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_points_of_presence_by_machine_guid(pp_server):
    """
    MSNP18: a second machine GUID signs in beside the first; the same GUID
    again replaces its old endpoint (OUT OTH); at MSNP15 any second login
    replaces the first.
    """
    first, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice")
    second, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", guid="{0000AAAA-1B2C-4D5E-8F90-112233445566}")
    yield first.expect_silence()
    third, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", guid="{0000aaaa-1b2c-4d5e-8f90-112233445566}")
    yield second.expect_line("OUT OTH")
    yield second.expect_close()
    yield first.expect_silence()
    single, _ = yield sso.sso_login(pp_server, "alice@example.com", "pw-alice", "MSNP15")
    for old in (first, third):
        yield old.expect_line("OUT OTH")
        yield old.expect_close()
    yield single.disconnect()
