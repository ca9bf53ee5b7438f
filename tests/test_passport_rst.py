"""
Passport SOAP (RST.srf), the MSN Messenger 7.5 login, over real TLS: the
ticket in the messenger token and USR TWN S with it at MSNP12, one fault
for a wrong password and an unknown account, 400 for envelopes that are
not one, the other requested tokens, and tickets used up once.
"""

import io
import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers

from msnclient import connect
from msnp.msn import token_service
from msnp.config import ServerConfig
import sso
import twn
from twn import pp_server  # noqa: F401 (fixture)

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
WST = "{http://schemas.xmlsoap.org/ws/2004/04/trust}"
WSSE = "{http://schemas.xmlsoap.org/ws/2003/06/secext}"
WSA = "{http://schemas.xmlsoap.org/ws/2004/03/addressing}"
TWN_TOKENS = (("http://Passport.NET/tb", None), ("messenger.msn.com", "?lc=1033,id=507"))


def rst_envelope(handle: str, password: str, tokens=TWN_TOKENS) -> bytes:
    """
    The envelope MSN Messenger 7.5 posts: the UsernameToken in the header
    and one RequestSecurityToken per (address, policy) in the body.
    """
    requests = sso.token_requests(tokens)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
        ' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
        ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
        ' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust">'
        '<Header><ps:AuthInfo xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="PPAuthInfo">'
        "<ps:HostingApp>{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}</ps:HostingApp><ps:BinaryVersion>3</ps:BinaryVersion>"
        "<ps:UIVersion>1</ps:UIVersion><ps:Cookies></ps:Cookies><ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams>"
        "</ps:AuthInfo><wsse:Security><wsse:UsernameToken Id=\"user\">"
        f"<wsse:Username>{escape(handle)}</wsse:Username><wsse:Password>{escape(password)}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security></Header>"
        '<Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">'
        f"{requests}</ps:RequestMultipleSecurityTokens></Body></Envelope>"
    ).encode("utf-8")


@defer.inlineCallbacks
def rst_post(server, body: bytes, method: bytes = b"POST"):
    """
    The request to /RST.srf over TLS; returns (response, body).
    """
    headers = Headers({b"Content-Type": [b"text/xml; charset=utf-8"]})
    producer = FileBodyProducer(io.BytesIO(body)) if method == b"POST" else None
    response = yield server.agent().request(method, server.url("/RST.srf"), headers, producer)
    data = yield twn.read_body(response)
    return response, data


def tokens_by_address(data: bytes) -> dict:
    """
    Address → (TokenType, Id of the token, text of the token) of each
    response in the collection.
    """
    root = ET.fromstring(data)
    collection = root.find(f"{SOAP}Body/{WST}RequestSecurityTokenResponseCollection")
    found = {}
    for response in collection.findall(f"{WST}RequestSecurityTokenResponse"):
        address = response.find(f".//{WSA}Address").text
        token = response.find(f"{WST}RequestedSecurityToken")[0]
        found[address] = (response.find(f"{WST}TokenType").text, token.get("Id"), token.text)
    return found


@defer.inlineCallbacks
def rst_ticket(server, handle: str, password: str, policy: str = "?lc=1033,id=507"):
    response, data = yield rst_post(server, rst_envelope(handle, password, (TWN_TOKENS[0], ("messenger.msn.com", policy))))
    assert response.code == 200, data
    return tokens_by_address(data)["messenger.msn.com"][2]


@pytest_twisted.inlineCallbacks
def test_rst_ticket_logs_in_at_msnp12(pp_server):
    """
    The 7.5 login: the policy from USR TWN S goes into the RST request;
    the messenger.msn.com token is the ticket, written with an escaped
    ampersand in a BinarySecurityToken numbered like its request, and USR
    TWN S with it gets USR OK, SBS and the profile.
    """
    client = yield connect(pp_server.notification_port, "alice")
    client.send("VER 1 MSNP12 MSNP11 CVR0")
    yield client.expect_line("VER 1 MSNP12")
    client.send("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.5.0324 MSMSGS alice@example.com")
    yield client.expect(r"CVR 2 \S+ \S+ \S+ \S+ \S+")
    client.send("USR 3 TWN I alice@example.com")
    match = yield client.expect(r"USR 3 TWN S (\S+)")
    body = rst_envelope("alice@example.com", "pw-alice", (TWN_TOKENS[0], ("messenger.msn.com", "?" + match.group(1))))
    response, data = yield rst_post(pp_server, body)
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/xml; charset=utf-8"]
    assert response.length == len(data)  # Content-Length, not chunked
    raw = re.search(rb'<wsse:BinarySecurityToken Id="Compact1">([^<]*)</wsse:BinarySecurityToken>', data)
    assert raw and re.fullmatch(rb"t=[\w-]+&amp;p=[\w-]+", raw.group(1)), data
    token_type, token_id, ticket = tokens_by_address(data)["messenger.msn.com"]
    assert (token_type, token_id) == ("urn:passport:compact", "Compact1")
    assert ticket == raw.group(1).decode().replace("&amp;", "&")
    client.send(f"USR 4 TWN S {ticket}")
    yield client.expect_line("USR 4 OK alice@example.com 1 0")
    yield client.expect_line("SBS 0 null")
    profile = yield client.next()
    assert profile.name == "MSG" and b"text/x-msmsgsprofile" in profile.payload
    yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_wrong_password_and_unknown_account_get_the_same_fault(pp_server):
    """
    A wrong password, an unknown account and a name that is no handle get
    the same bytes: 200 and a wsse:FailedAuthentication fault, the Fault
    a child of the Envelope as Passport sent it.  No ticket is issued.
    """
    answers = []
    for handle, password in (("alice@example.com", "wrong"), ("nobody@example.com", "pw-alice"), ("alice", "pw-alice")):
        response, data = yield rst_post(pp_server, rst_envelope(handle, password))
        answers.append((response.code, data))
    assert answers[0] == answers[1] == answers[2]
    code, data = answers[0]
    assert code == 200
    assert response.length == len(data)  # Content-Length, not chunked
    root = ET.fromstring(data)
    assert root.tag == f"{SOAP}Envelope"
    assert root.find(f"{SOAP}Fault/faultcode").text == "wsse:FailedAuthentication"
    assert b"BinarySecurityToken" not in data
    assert len(pp_server.service.tickets) == 0


@pytest.mark.parametrize("server_config", [ServerConfig(login_failures_per_account=2)])
@pytest_twisted.inlineCallbacks
def test_rst_failures_count_toward_the_account_delay(pp_server):
    """
    Wrong passwords at RST.srf are the account's failed logins, as at
    login2.srf: after the free ones, the next failure is answered late.
    """
    for _ in range(2):
        response, data = yield rst_post(pp_server, rst_envelope("bob@example.com", "wrong"))
        assert response.code == 200 and b"wsse:FailedAuthentication" in data
    assert pp_server.service.notification.login_throttle.record_failure("bob@example.com", None) > 0


@pytest.mark.parametrize("server_config", [ServerConfig(login_failures_per_address=3)])
@pytest_twisted.inlineCallbacks
def test_https_failures_count_toward_the_address_delay(pp_server):
    """
    Wrong passwords over HTTPS for different accounts from one address are
    that address's failed logins, at RST.srf and login2.srf alike.
    """
    for handle in ("bob@example.com", "carol@example.com"):
        response, data = yield rst_post(pp_server, rst_envelope(handle, "wrong"))
        assert response.code == 200 and b"wsse:FailedAuthentication" in data
    response, ticket = yield twn.passport_login(pp_server, "nobody@example.com", "wrong")
    assert response.code == 401 and ticket is None
    assert pp_server.service.notification.login_throttle.record_failure("someone@example.com", "127.0.0.1") > 0


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE Envelope [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<Envelope><Header><Security><UsernameToken><Username>&c;</Username><Password>x</Password>"
    b"</UsernameToken></Security></Header></Envelope>"
)
EXTERNAL = b'<?xml version="1.0"?><!DOCTYPE Envelope SYSTEM "http://127.0.0.1:9/x.dtd"><Envelope/>'


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<Envelope><Header>",
        "<Envelope>\u00e9</Envelope>".encode("latin-1"),
        BOMB,
        EXTERNAL,
        b"<Envelope>&undefined;</Envelope>",
        b"<Other/>",
        rst_envelope("alice@example.com", "pw-alice").replace(b"<wsse:Password>pw-alice</wsse:Password>", b""),
        rst_envelope("alice@example.com", "pw-alice", ()),
        rst_envelope("alice@example.com", "pw-alice", [("messenger.msn.com", "?id=507")] * 17),
    ],
    ids=["empty", "text", "unclosed", "bad-encoding", "entity-bomb", "external-dtd", "undefined-entity",
         "not-envelope", "no-password", "no-token", "too-many-tokens"],
)
@pytest_twisted.inlineCallbacks
def test_malformed_envelope_gets_400_and_a_client_fault(pp_server, body):
    """
    Whatever is not a RequestSecurityToken envelope (hostile ones with a
    DOCTYPE included) gets 400 with an S:Client fault, not a traceback,
    and issues no ticket.
    """
    response, data = yield rst_post(pp_server, body)
    assert response.code == 400
    assert ET.fromstring(data).find(f"{SOAP}Fault/faultcode").text == "S:Client"
    assert len(pp_server.service.tickets) == 0


@pytest.mark.parametrize("framing", ["declared", "chunked"])
@pytest_twisted.inlineCallbacks
def test_body_over_the_limit_gets_413_and_a_close(pp_server, framing):
    """
    A body longer than the Passport site takes, whether its Content-Length
    says so at once or chunks keep coming, is answered 413 and the
    connection is closed; nothing of it is parsed or stored.
    """
    envelope = rst_envelope("alice@example.com", "pw-alice")
    head = b"POST /RST.srf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if framing == "declared":
        request = head + b"Content-Length: %d\r\n\r\n" % (100 * 1024 * 1024) + envelope
    else:
        chunk = b"x" * 8192
        request = head + b"Transfer-Encoding: chunked\r\n\r\n" + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 10
    options = optionsForClientTLS("127.0.0.1", trustRoot=Certificate.loadPEM(pp_server.cert_pem))
    endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", pp_server.passport_port))
    client = yield connectProtocol(endpoint, twn.RawTLSClient())
    client.transport.write(request)
    data = yield client.done
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert len(pp_server.service.tickets) == 0


@pytest_twisted.inlineCallbacks
def test_get_is_not_allowed(pp_server):
    """
    RST.srf takes only POST: GET gets 405 and the S:Client fault.
    """
    response, data = yield rst_post(pp_server, b"", method=b"GET")
    assert response.code == 405 and response.headers.getRawHeaders(b"allow") == [b"POST"]
    assert ET.fromstring(data).find(f"{SOAP}Fault/faultcode").text == "S:Client"


@pytest_twisted.inlineCallbacks
def test_rst_ticket_logs_in_once(pp_server):
    """
    A ticket from RST.srf is used up by being presented: the second USR
    TWN S with it gets 911 and a close.
    """
    ticket = yield rst_ticket(pp_server, "bob@example.com", "pw-bob")
    client, answer = yield twn.twn_with_ticket(pp_server, "bob@example.com", ticket)
    assert answer.text == "USR 4 OK bob@example.com 1 0"
    yield client.disconnect()
    client, answer = yield twn.twn_with_ticket(pp_server, "bob@example.com", ticket)
    assert answer.text == "911 4"
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_rst_ticket_is_bound_to_its_account(pp_server):
    """
    Alice's RST ticket presented for Bob is refused.
    """
    ticket = yield rst_ticket(pp_server, "alice@example.com", "pw-alice")
    client, answer = yield twn.twn_with_ticket(pp_server, "bob@example.com", ticket)
    assert answer.text == "911 4"
    yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_every_requested_token_is_answered_in_order(pp_server):
    """
    Each requested token gets a response in request order, numbered by its
    request: the legacy Passport token an opaque encrypted blob with a
    proof key, the messenger addresses tickets (messengerclear.live.com
    with a proof key too), other services a random token that logs nobody
    in.
    """
    addresses = ("http://Passport.NET/tb", "messenger.msn.com", "contacts.msn.com", "messengerclear.live.com", "a<b&c")
    body = rst_envelope("carol@example.com", "pw-carol", [(a, "MBI") for a in addresses])
    response, data = yield rst_post(pp_server, body)
    assert response.code == 200
    root = ET.fromstring(data)
    responses = root.findall(f"{SOAP}Body/{WST}RequestSecurityTokenResponseCollection/{WST}RequestSecurityTokenResponse")
    assert [r.find(f".//{WSA}Address").text for r in responses] == list(addresses)
    tokens = tokens_by_address(data)
    assert tokens["http://Passport.NET/tb"][:2] == ("urn:passport:legacy", "BinaryDAToken0")
    assert [tokens[a][1] for a in addresses[1:]] == ["Compact1", "Compact2", "Compact3", "Compact4"]
    proofs = [r.find(f"{WST}RequestedProofToken/{WST}BinarySecret") is not None for r in responses]
    assert proofs == [True, False, False, True, False]
    assert len(pp_server.service.tickets) == 2
    for address, expected in (("contacts.msn.com", "911 4"), ("messengerclear.live.com", "USR 4 OK carol@example.com 1 0")):
        client, answer = yield twn.twn_with_ticket(pp_server, "carol@example.com", tokens[address][2])
        assert answer.text == expected
        if expected.startswith("911"):
            yield client.expect_close()
        else:
            yield client.disconnect()


@pytest_twisted.inlineCallbacks
def test_single_token_without_wrapper_and_other_spellings(pp_server):
    """
    One RequestSecurityToken straight in the Body, prefixed SOAP elements
    and the OASIS secext namespace are read the same way; an XML-escaped
    password is checked as typed.
    """
    yield pp_server.store.set_password("dave@example.com", "a<b&c'd")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:o="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"'
        ' xmlns:t="http://schemas.xmlsoap.org/ws/2004/04/trust" xmlns:p="http://schemas.xmlsoap.org/ws/2002/12/policy"'
        ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/03/addressing">'
        "<soap:Header><o:Security><o:UsernameToken><o:Username> dave@example.com </o:Username>"
        "<o:Password>a&lt;b&amp;c&apos;d</o:Password></o:UsernameToken></o:Security></soap:Header>"
        "<soap:Body><t:RequestSecurityToken><p:AppliesTo><a:EndpointReference><a:Address>messenger.msn.com</a:Address>"
        "</a:EndpointReference></p:AppliesTo></t:RequestSecurityToken></soap:Body></soap:Envelope>"
    ).encode("utf-8")
    response, data = yield rst_post(pp_server, body)
    assert response.code == 200
    token_type, token_id, ticket = tokens_by_address(data)["messenger.msn.com"]
    assert token_id == "Compact0" and ticket.startswith("t=")
    client, answer = yield twn.twn_with_ticket(pp_server, "dave@example.com", ticket, "MSNP11")
    assert answer.text == "USR 4 OK dave@example.com 1 0"
    yield client.disconnect()


def test_parse_xml_refuses_doctype_without_expanding():
    """
    The parser stops at the DOCTYPE, before any entity is declared.
    """
    with pytest.raises(token_service.MalformedEnvelope):
        token_service.parse_xml(BOMB)
    with pytest.raises(token_service.MalformedEnvelope):
        token_service.parse_xml(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "file:///nonexistent">%p;]><x/>')
    assert token_service.parse_xml(b"<a xmlns='urn:x'><b>t</b></a>").find("{urn:x}b").text == "t"


@pytest_twisted.inlineCallbacks
def test_rst_logs_hold_no_password_or_ticket(pp_server):
    """
    RST logins, refused, accepted and malformed, and the USR TWN that
    redeems the ticket log lines without the password or the ticket.
    """
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        response, data = yield rst_post(pp_server, rst_envelope("alice@example.com", "pw-wrong"))
        assert b"wsse:FailedAuthentication" in data
        response, data = yield rst_post(pp_server, rst_envelope("alice@example.com", "pw-alice")[:-20])
        assert response.code == 400
        ticket = yield rst_ticket(pp_server, "alice@example.com", "pw-alice")
        client, answer = yield twn.twn_with_ticket(pp_server, "alice@example.com", ticket)
        assert answer.text == "USR 4 OK alice@example.com 1 0"
        yield client.disconnect()
    finally:
        globalLogPublisher.removeObserver(observer)
    text = "\n".join(formatEvent(e) + " " + repr(sorted((k, v) for k, v in e.items() if not k.startswith("log_"))) for e in events)
    assert "passport ticket issued to alice@example.com" in text
    for secret in ("pw-wrong", "pw-alice", ticket, ticket.split("&")[0], ticket.split("&")[1]):
        assert secret not in text, secret
