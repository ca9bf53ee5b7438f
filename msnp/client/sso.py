"""
The client side of single sign-on (MSNP13-MSNP18 logins): one WS-Trust
request to Passport's C{RST.srf} (SOAP 1.1, Windows Live Messenger 8.x) or
C{RST2.srf} (SOAP 1.2, Messenger 2009) for every token the client needs,
and the answer to the notification server's nonce (the "MBI" proof)
computed from the BinarySecret given with the messenger ticket.

The tokens asked for are those of the official clients: the messenger
ticket (C{messengerclear.live.com}, with its secret, for C{USR SSO S}), the
Passport 1.4 ticket (C{messenger.msn.com}, for C{USR TWN S} at 13-14) and
the address book's (C{contacts.msn.com}), which also opens the other web
services.
"""

from __future__ import annotations

import base64
import io
from typing import Optional, Union
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import attrs
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, FileBodyProducer
from twisted.web.http_headers import Headers

from msnp.client import passport
from msnp.msn import safexml
from msnp.msn import sso as mbi

MESSENGER_CLEAR = "messengerclear.live.com"
MESSENGER = "messenger.msn.com"
CONTACTS = "contacts.msn.com"

# What a client asks for in its one request, and the policy of each.
REQUESTED_TOKENS = (
    ("http://Passport.NET/tb", None),
    (MESSENGER_CLEAR, "MBI_KEY_OLD"),
    (MESSENGER, "?id=507"),
    (CONTACTS, "MBI"),
)

# The answer of a login is a few kilobytes; more is not Passport's.
MAX_ANSWER = 256 * 1024

_SOAP11 = ("http://schemas.xmlsoap.org/soap/envelope/", "http://schemas.xmlsoap.org/ws/2004/04/trust")
_SOAP12 = ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/ws/2005/02/trust")


class SSOError(passport.PassportError):
    """
    Passport answered without the tokens asked for, or not in XML.
    """


@attrs.frozen
class Token:
    """
    One token of the answer: C{ticket} (C{t=...&p=...}) and, for the
    messenger ticket, the BinarySecret that proves holding it.
    """

    address: str
    ticket: str
    secret: Optional[bytes] = None


def token_service(nexus: str, dialect: int) -> str:
    """
    Where the tokens come from, next to the Passport C{nexus}: C{RST2.srf}
    for MSNP18 (Messenger 2009), C{RST.srf} before.
    """
    parts = urlsplit(nexus)
    path = "/RST2.srf" if dialect >= 18 else "/RST.srf"
    return urlunsplit((parts.scheme or "https", parts.netloc, path, "", ""))


def rst_envelope(handle: str, password: str, soap12: bool, tokens=REQUESTED_TOKENS) -> bytes:
    """
    The RequestSecurityToken envelope for C{tokens} ((address, policy)
    pairs).  Clients send only the first 16 characters of a password.
    """
    soap, trust = _SOAP12 if soap12 else _SOAP11
    requests = "".join(
        f'<wst:RequestSecurityToken Id="RST{i}">'
        f"<wst:RequestType>{trust}/Issue</wst:RequestType>"
        f"<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{escape(address)}</wsa:Address>"
        "</wsa:EndpointReference></wsp:AppliesTo>"
        + (f'<wsse:PolicyReference URI="{escape(policy)}"></wsse:PolicyReference>' if policy else "")
        + "</wst:RequestSecurityToken>"
        for i, (address, policy) in enumerate(tokens)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<Envelope xmlns="{soap}" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
        ' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
        ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
        f' xmlns:wst="{trust}">'
        '<Header><wsse:Security><wsse:UsernameToken Id="user">'
        f"<wsse:Username>{escape(handle)}</wsse:Username><wsse:Password>{escape(password[:16])}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security></Header>"
        '<Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">'
        f"{requests}</ps:RequestMultipleSecurityTokens></Body></Envelope>"
    ).encode("utf-8")


def parse_tokens(data: bytes) -> dict[str, Token]:
    """
    Address → L{Token} of each compact token in a Passport answer; raises
    L{passport.PassportRefused} for the authentication fault and
    L{SSOError} for anything else that is no answer.
    """
    try:
        root = safexml.parse_xml(data, SSOError, MAX_ANSWER)
    except SSOError:
        raise
    found: dict[str, Token] = {}
    fault = safexml.find(root, "Fault")
    if fault is not None:
        words = " ".join(element.text or "" for element in fault.iter())
        if "FailedAuthentication" in words:
            raise passport.PassportRefused(words.strip())
        raise SSOError(f"Passport refused the request: {words.strip()}")
    for response in root.iter():
        if safexml.local(response.tag) != "RequestSecurityTokenResponse":
            continue
        address = safexml.text(safexml.find(response, "Address")).strip()
        ticket = safexml.text(safexml.find(response, "BinarySecurityToken")).strip()
        secret_text = safexml.text(safexml.find(response, "BinarySecret")).strip()
        if not address or not ticket:
            continue
        try:
            secret = base64.b64decode(secret_text, validate=True) if secret_text else None
        except ValueError:
            raise SSOError(f"the secret of {address} is not base64")
        found[address] = Token(address, ticket, secret)
    return found


async def post(reactor, url: str, body: bytes, trust: Union[None, str, bytes], action: Optional[str] = None) -> tuple[int, bytes]:
    """
    POST C{body} (XML) to C{url} over verified TLS; the status and body of
    the answer.
    """
    agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=passport.trust_root(trust)))
    headers = {b"Content-Type": [b"text/xml; charset=utf-8"]}
    if action:
        headers[b"SOAPAction"] = [action.encode("ascii")]
    response = await agent.request(b"POST", url.encode("ascii"), Headers(headers), FileBodyProducer(io.BytesIO(body)))
    data = await passport._drain(response)
    return response.code, data


async def fetch_tokens(
    reactor, handle: str, password: str, url: str, trust: Union[None, str, bytes] = None
) -> dict[str, Token]:
    """
    The tokens of L{REQUESTED_TOKENS} for C{handle} from the token service
    at C{url} (SOAP 1.2 when it is C{RST2.srf}); raises
    L{passport.PassportRefused} for a wrong password.
    """
    soap12 = urlsplit(url).path.endswith("RST2.srf")
    code, data = await post(reactor, url, rst_envelope(handle, password, soap12), trust)
    tokens = parse_tokens(data)
    if code != 200 or MESSENGER_CLEAR not in tokens:
        raise SSOError(f"Passport answered {code} without the messenger ticket")
    return tokens


def sso_answer(token: Token, nonce: str) -> str:
    """
    The two fields of C{USR t SSO S} after the package: the messenger
    ticket and the MBI proof for C{nonce}.
    """
    if token.secret is None:
        raise SSOError(f"the {token.address} token came without its secret")
    return f"{token.ticket} {mbi.mbi_blob(token.secret, nonce)}"
