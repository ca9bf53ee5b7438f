"""
Helpers for MSNP13-MSNP18 tests: the Passport SOAP token request of WLM
8.x/2009 clients (RST.srf or RST2.srf), the tokens and BinarySecret read
from its answer, and the whole single sign-on of a scripted client.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from twisted.internet import defer
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers

import twn
from msnclient import connect
from msnp.msn import sso

# What libpurple 2.10.9 asks for in its one request (RST0 is the tb token).
WLM_TOKENS = (
    ("http://Passport.NET/tb", None),
    ("messengerclear.live.com", "MBI_KEY_OLD"),
    ("messenger.msn.com", "?id=507"),
    ("contacts.msn.com", "MBI"),
    ("messengersecure.live.com", "MBI_SSL"),
    ("storage.live.com", "MBI"),
    ("sup.live.com", "MBI"),
)
GUIDS = {
    "alice@example.com": "{A80DD24A-1B2C-4D5E-8F90-112233445566}",
    "bob@example.com": "{B80DD24A-1B2C-4D5E-8F90-112233445566}",
    "carol@example.com": "{C80DD24A-1B2C-4D5E-8F90-112233445566}",
    "dave@example.com": "{D80DD24A-1B2C-4D5E-8F90-112233445566}",
}


def token_requests(tokens) -> str:
    """
    One RequestSecurityToken per (address, policy), as every Passport
    client of the era writes them in the envelope's body.
    """
    return "".join(
        f'<wst:RequestSecurityToken Id="RST{i}">'
        "<wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>"
        f"<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{escape(address)}</wsa:Address>"
        "</wsa:EndpointReference></wsp:AppliesTo>"
        + (f"<wsse:PolicyReference URI={quoteattr(policy)}></wsse:PolicyReference>" if policy else "")
        + "</wst:RequestSecurityToken>"
        for i, (address, policy) in enumerate(tokens)
    )


def rst_envelope(handle: str, password: str, tokens=WLM_TOKENS) -> bytes:
    requests = token_requests(tokens)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
        ' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
        ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
        ' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust">'
        "<Header><wsse:Security><wsse:UsernameToken Id=\"user\">"
        f"<wsse:Username>{escape(handle)}</wsse:Username><wsse:Password>{escape(password)}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security></Header>"
        '<Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">'
        f"{requests}</ps:RequestMultipleSecurityTokens></Body></Envelope>"
    ).encode("utf-8")


@defer.inlineCallbacks
def post(server, path: str, body: bytes, headers: dict = None):
    """
    POST C{body} to C{path} on the Passport site over TLS; returns
    (response, body).
    """
    all_headers = {b"Content-Type": [b"text/xml; charset=utf-8"]}
    for name, value in (headers or {}).items():
        all_headers[name.encode()] = [value.encode()]
    response = yield server.agent().request(b"POST", server.url(path), Headers(all_headers), FileBodyProducer(io.BytesIO(body)))
    data = yield twn.read_body(response)
    return response, data


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_tokens(data: bytes) -> dict:
    """
    Address → dict(id, token, secret, expires) of each token response,
    whatever the SOAP flavour.
    """
    root = ET.fromstring(data)
    found = {}
    for response in root.iter():
        if _local(response.tag) != "RequestSecurityTokenResponse":
            continue
        entry = {"id": None, "token": None, "secret": None, "expires": None}
        address = None
        for element in response.iter():
            name = _local(element.tag)
            if name == "Address":
                address = element.text
            elif name in ("BinarySecurityToken", "EncryptedData"):
                entry["id"] = element.get("Id")
                entry["token"] = element.text
            elif name == "BinarySecret":
                entry["secret"] = base64.b64decode(element.text)
            elif name == "Expires":
                entry["expires"] = element.text
        found[address] = entry
    return found


@defer.inlineCallbacks
def request_tokens(server, handle: str, password: str, path: str = "/RST2.srf", tokens=WLM_TOKENS):
    response, data = yield post(server, path, rst_envelope(handle, password, tokens))
    assert response.code == 200, data
    return parse_tokens(data)


@defer.inlineCallbacks
def sso_start(server, handle: str, dialect: str = "MSNP18", name=None):
    """
    VER, CVR and USR SSO I; returns the client and the nonce.
    """
    client = yield connect(server.notification_port, name or handle.split("@")[0])
    client.send(f"VER 1 {dialect} CVR0")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send(f"CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 14.0.8117.0416 msmsgs {handle}")
    yield client.expect(r"CVR 2 \S+ \S+ \S+ \S+ \S+")
    client.send(f"USR 3 SSO I {handle}")
    policies = yield client.next()
    assert policies.name == "GCF" and policies.args[1] == "0" and policies.payload.startswith(b"<Policies>"), policies
    match = yield client.expect(r"USR 3 SSO S MBI_KEY_OLD (\S+)")
    return client, match.group(1)


@defer.inlineCallbacks
def sso_login(server, handle: str, password: str, dialect: str = "MSNP18", guid=None, name=None, path=None):
    """
    The whole MSNP15+ login: tokens from RST (MSNP15) or RST2, USR SSO I,
    USR SSO S with the MBI proof (and machine GUID from MSNP16); reads the
    answer through the profile message (and the self UBX from MSNP16).
    Returns the client and the tokens.
    """
    version = int(dialect[4:])
    path = path or ("/RST.srf" if version < 18 else "/RST2.srf")
    tokens = yield request_tokens(server, handle, password, path)
    client, nonce = yield sso_start(server, handle, dialect, name)
    clear = tokens["messengerclear.live.com"]
    blob = sso.mbi_blob(clear["secret"], nonce)
    extra = f" {guid or GUIDS[handle]}" if version >= 16 else ""
    client.send(f"USR 4 SSO S {clear['token']} {blob}{extra}")
    yield client.expect_line(f"USR 4 OK {handle} 1 0")
    yield client.expect_line("SBS 0 null")
    profile = yield client.next()
    assert profile.name == "MSG" and b"text/x-msmsgsprofile" in profile.payload, profile
    if version >= 16:
        own = f"1:{handle}" if version >= 18 else f"{handle} 1"
        yield client.expect_line(f"UBX {own} 0")
    return client, tokens
