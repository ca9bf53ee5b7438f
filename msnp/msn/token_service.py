"""
The Passport security token service: Passport SOAP, C{POST /RST.srf}
(SOAP 1.1, MSN Messenger 7.5 / MSNP12 on) and C{POST /RST2.srf} (SOAP 1.2,
WLM 2009), a resource of the Passport site (L{msnp.msn.passport.make_site}).

The client sends a WS-Trust RequestSecurityToken envelope whose
C{wsse:UsernameToken} holds its name and password and which asks for one
token per service; the answer is a RequestSecurityTokenResponseCollection
or a C{FailedAuthentication} fault.  The C{messenger.msn.com} token is the
ticket for C{USR TWN S}; the C{messengerclear.live.com} one (MSNP15+) comes
with a BinarySecret, kept with the ticket, for C{USR SSO S}; the others are
service tokens for the web services.

This module issues the tokens and their secrets over HTTPS.  What the
notification server does with them afterwards (the nonce of C{USR SSO S}
and the check of the client's MBI answer) is L{msnp.msn.sso}; the Passport
1.4 logins of MSNP8-12 (nexus, C{login2.srf}, the header login) are
L{msnp.msn.passport}.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp.msn import safexml, sso
from msnp.msn.passport_http import MAX_BODY, Hangup, client_address, finish, refuse, refuse_login, sign_in

log = Logger()

# Token requests answered in one envelope; clients ask for two to five.
RST_MAX_TOKENS = 16
# The addresses whose token is the ticket for USR TWN S (and, for
# messengerclear, USR SSO S with the BinarySecret kept with it).
MESSENGER_ADDRESSES = frozenset({"messenger.msn.com", "messengerclear.live.com"})
SSO_ADDRESS = "messengerclear.live.com"
# The Passport token every client asks for first; answered with an opaque
# legacy token.
LEGACY_ADDRESS = "http://Passport.NET/tb"

_NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_NS_WST = "http://schemas.xmlsoap.org/ws/2004/04/trust"
_NS_WSSE = "http://schemas.xmlsoap.org/ws/2003/06/secext"
_NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_NS_WSP = "http://schemas.xmlsoap.org/ws/2002/12/policy"
_NS_WSA = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
_NS_PSF = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"


class SOAPFlavour:
    """
    The namespaces of one flavour of the Passport SOAP answer: C{RST.srf}
    answers in SOAP 1.1 with the 2004 WS-Trust names, C{RST2.srf} (WLM
    2009) in SOAP 1.2 with the 2005 ones.
    """

    def __init__(self, soap, trust, secext, policy, addressing, lifetime, name):
        self.soap = soap
        self.trust = trust
        self.secext = secext
        self.policy = policy
        self.addressing = addressing
        self.lifetime = lifetime
        self.name = name


SOAP11 = SOAPFlavour(_NS_SOAP, _NS_WST, _NS_WSSE, _NS_WSP, _NS_WSA, "LifeTime", "RST.srf")
SOAP12 = SOAPFlavour(
    "http://www.w3.org/2003/05/soap-envelope",
    "http://schemas.xmlsoap.org/ws/2005/02/trust",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "http://schemas.xmlsoap.org/ws/2004/09/policy",
    "http://www.w3.org/2005/08/addressing",
    "Lifetime",
    "RST2.srf",
)


class MalformedEnvelope(ValueError):
    """
    The body is not a RequestSecurityToken envelope this server can answer.
    """


def parse_xml(data: bytes):
    """
    The element tree of C{data}.  Any DOCTYPE is refused, so no entity can
    be declared and none expanded; raises L{MalformedEnvelope}.
    """
    return safexml.parse_xml(data, MalformedEnvelope)


_local = safexml.local
_child = safexml.child


def _path(element, *names):
    for name in names:
        element = _child(element, name)
    return element


def parse_rst(data: bytes) -> tuple[str, Optional[str], list[str]]:
    """
    The user name, password and the address of each requested token, in
    request order.  The password is None when the element is missing; an
    empty element is the empty password.  Raises L{MalformedEnvelope}.
    """
    root = parse_xml(data)
    if _local(root.tag) != "Envelope":
        raise MalformedEnvelope("not a SOAP envelope")
    token = _path(root, "Header", "Security", "UsernameToken")
    username = _child(token, "Username")
    password = _child(token, "Password")
    if username is None or password is None:
        raise MalformedEnvelope("no UsernameToken")
    body = _child(root, "Body")
    requests = _child(body, "RequestMultipleSecurityTokens")
    if requests is None:
        # One token may be asked for without the wrapper.
        requests = body
    addresses = []
    for request in requests if requests is not None else ():
        if _local(request.tag) != "RequestSecurityToken":
            continue
        reference = _path(request, "AppliesTo", "EndpointReference")
        address = _child(reference, "Address")
        if address is None:
            # The other form names a service instead of an address.
            address = _child(reference, "ServiceName")
        addresses.append((address.text or "").strip() if address is not None else "")
    if not addresses or len(addresses) > RST_MAX_TOKENS:
        raise MalformedEnvelope("no token or too many tokens requested")
    return (username.text or "").strip(), password.text or "", addresses


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _opaque(size: int) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def _token_response(
    index: int,
    address: str,
    value: Optional[str],
    created: str,
    expires: str,
    secret: Optional[bytes] = None,
    flavour: SOAPFlavour = SOAP11,
) -> str:
    """
    One RequestSecurityTokenResponse.  C{value}: the compact token
    C{t=...&p=...}; None for the opaque legacy Passport token.  The C{Id}
    carries the index of the request, as clients look tokens up by it.
    C{secret}: the BinarySecret (proof token) given with it.
    """
    lifetime = flavour.lifetime
    head = (
        "<wst:RequestSecurityTokenResponse>"
        f"<wst:TokenType>urn:passport:{'legacy' if value is None else 'compact'}</wst:TokenType>"
        f'<wsp:AppliesTo xmlns:wsa="{flavour.addressing}"><wsa:EndpointReference>'
        f"<wsa:Address>{escape(address)}</wsa:Address>"
        "</wsa:EndpointReference></wsp:AppliesTo>"
        f"<wst:{lifetime}><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:{lifetime}>"
    )
    if value is None:
        token = (
            f'<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" Id="BinaryDAToken{index}" '
            'Type="http://www.w3.org/2001/04/xmlenc#Element">'
            '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"></EncryptionMethod>'
            '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>'
            f"<CipherData><CipherValue>{_opaque(96)}</CipherValue></CipherData></EncryptedData>"
        )
        reference = f'<wsse:KeyIdentifier ValueType="urn:passport"></wsse:KeyIdentifier><wsse:Reference URI="#BinaryDAToken{index}"></wsse:Reference>'
    else:
        # The ampersand is escaped (t=...&amp;p=...): clients split on
        # "&amp;" or unescape the element text.
        token = f'<wsse:BinarySecurityToken Id="Compact{index}">{escape(value)}</wsse:BinarySecurityToken>'
        reference = f'<wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact{index}"></wsse:Reference>'
    proof = ""
    if value is None and secret is None:
        secret = secrets.token_bytes(24)
    if secret is not None:
        text = base64.b64encode(secret).decode("ascii")
        proof = f"<wst:RequestedProofToken><wst:BinarySecret>{text}</wst:BinarySecret></wst:RequestedProofToken>"
    return (
        f"{head}<wst:RequestedSecurityToken>{token}</wst:RequestedSecurityToken>"
        f"<wst:RequestedTokenReference>{reference}</wst:RequestedTokenReference>{proof}"
        "</wst:RequestSecurityTokenResponse>"
    )


def rst_success(
    handle: str, tokens: list[tuple], now: float, lifetime: float, flavour: SOAPFlavour = SOAP11
) -> bytes:
    """
    The RequestSecurityTokenResponseCollection: one response per token of
    C{tokens}, in request order: (address, value), or (address, value,
    secret, lifetime) for a token with its own BinarySecret and lifetime.
    """
    created = _timestamp(now)
    # A stable 64-bit id per account, in the PUID's 16 hex digits.
    puid = hashlib.sha256(handle.encode("utf-8")).hexdigest()[:16].upper()
    parts = []
    for i, token in enumerate(tokens):
        address, value, secret, seconds = (tuple(token) + (None, lifetime))[:4]
        expires = _timestamp(now + max(seconds, 0))
        parts.append(_token_response(i, address, value, created, expires, secret, flavour))
    responses = "".join(parts)
    if flavour is SOAP12:
        return _rst2_envelope(puid, created, responses)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope xmlns:S="{_NS_SOAP}"><S:Header><psf:pp xmlns:psf="{_NS_PSF}">'
        f"<psf:serverVersion>1</psf:serverVersion><psf:PUID>{puid}</psf:PUID>"
        "<psf:configVersion>3.0.869.0</psf:configVersion><psf:uiVersion>3.0.869.0</psf:uiVersion>"
        "<psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>"
        f'<psf:serverInfo Path="Live1" RollingUpgradeState="ExclusiveNew" LocVersion="0" ServerTime={quoteattr(created)}>msnp</psf:serverInfo>'
        "<psf:cookies/><psf:response/></psf:pp></S:Header>"
        f'<S:Body><wst:RequestSecurityTokenResponseCollection xmlns:wst="{_NS_WST}" xmlns:wsse="{_NS_WSSE}" '
        f'xmlns:wsu="{_NS_WSU}" xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" xmlns:wsp="{_NS_WSP}" xmlns:psf="{_NS_PSF}">'
        f"{responses}</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>"
    ).encode("utf-8")


def rst_fault(code: str, text: str, reqstatus: str) -> bytes:
    """
    A Passport SOAP fault.  The Fault is a child of the Envelope, not of
    the Body, as Passport sent it and as libpurple looks for it; it carries
    no time or name, so every refusal of one kind is the same bytes.
    """
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope xmlns:S="{_NS_SOAP}" xmlns:wsse="{_NS_WSSE}" xmlns:psf="{_NS_PSF}">'
        "<S:Header><psf:pp><psf:serverVersion>1</psf:serverVersion>"
        f"<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>{reqstatus}</psf:reqstatus>"
        "<psf:cookies/><psf:response/></psf:pp></S:Header>"
        f"<S:Fault><faultcode>{code}</faultcode><faultstring>{escape(text)}</faultstring></S:Fault>"
        "</S:Envelope>"
    ).encode("utf-8")


# Wrong password or unknown account (PPCRL_REQUEST_E_BAD_MEMBER_NAME_OR_PASSWORD).
RST_FAILED = rst_fault("wsse:FailedAuthentication", "Authentication Failure", "0x80048823")
# Not an envelope this server can answer.
RST_INVALID = rst_fault("S:Client", "Invalid Request", "0x80048820")


def _rst2_envelope(puid: str, created: str, responses: str) -> bytes:
    """
    The SOAP 1.2 answer of C{RST2.srf} around the token responses.
    """
    f = SOAP12
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope xmlns:S="{f.soap}" xmlns:wsse="{f.secext}" xmlns:wsu="{_NS_WSU}" xmlns:wsa="{f.addressing}">'
        f'<S:Header><wsa:Action S:mustUnderstand="1">{f.trust}/RSTR/Issue</wsa:Action>'
        '<wsa:To S:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>'
        f'<wsse:Security S:mustUnderstand="1"><wsu:Timestamp wsu:Id="TS"><wsu:Created>{created}</wsu:Created>'
        f"<wsu:Expires>{created}</wsu:Expires></wsu:Timestamp></wsse:Security>"
        f'<psf:pp xmlns:psf="{_NS_PSF}"><psf:serverVersion>1</psf:serverVersion><psf:PUID>{puid}</psf:PUID>'
        "<psf:configVersion>16.000.26889.00</psf:configVersion><psf:uiVersion>3.100.2179.0</psf:uiVersion>"
        "<psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>"
        f'<psf:serverInfo Path="Live1" RollingUpgradeState="ExclusiveNew" LocVersion="0" ServerTime={quoteattr(created)}>msnp</psf:serverInfo>'
        "<psf:cookies/><psf:response/></psf:pp></S:Header>"
        f'<S:Body><wst:RequestSecurityTokenResponseCollection xmlns:wst="{f.trust}" xmlns:wsse="{f.secext}" '
        f'xmlns:wsu="{_NS_WSU}" xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" xmlns:wsp="{f.policy}" xmlns:psf="{_NS_PSF}">'
        f"{responses}</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>"
    ).encode("utf-8")


def rst2_fault(subcode: str, text: str, reqstatus: str) -> bytes:
    """
    The SOAP 1.2 fault of C{RST2.srf}: C{S:Sender} with the Passport
    subcode, and the Passport error number in C{psf:error}.
    """
    f = SOAP12
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope xmlns:S="{f.soap}" xmlns:wsse="{f.secext}" xmlns:wst="{f.trust}" xmlns:psf="{_NS_PSF}">'
        "<S:Header><psf:pp><psf:serverVersion>1</psf:serverVersion>"
        f"<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>{reqstatus}</psf:reqstatus>"
        "<psf:cookies/><psf:response/></psf:pp></S:Header>"
        f"<S:Body><S:Fault><S:Code><S:Value>S:Sender</S:Value><S:Subcode><S:Value>{subcode}</S:Value></S:Subcode></S:Code>"
        f'<S:Reason><S:Text xml:lang="en-US">{escape(text)}</S:Text></S:Reason>'
        f"<S:Detail><psf:error><psf:value>{reqstatus}</psf:value></psf:error></S:Detail></S:Fault></S:Body>"
        "</S:Envelope>"
    ).encode("utf-8")


RST2_FAILED = rst2_fault("wst:FailedAuthentication", "Authentication Failure", "0x80048821")
RST2_INVALID = rst2_fault("wst:InvalidRequest", "Invalid Request", "0x80048820")


class RSTResource(resource.Resource):
    """
    C{POST /RST.srf} (SOAP 1.1) and C{POST /RST2.srf} (SOAP 1.2, WLM
    2009): checks the C{wsse:UsernameToken} of a RequestSecurityToken
    envelope like the Passport 1.4 login and answers every requested token.
    The messenger ones are tickets for C{USR TWN S}; the
    C{messengerclear.live.com} one comes with a BinarySecret, kept with the
    ticket, for C{USR SSO S}; the others are service tokens for the web
    services (see L{msnp.msn.auth.ServiceTokens}).
    """

    isLeaf = True

    def __init__(self, config, checker, tickets, now=time.time, service_tokens=None, flavour: SOAPFlavour = SOAP11):
        super().__init__()
        self._config = config
        self._checker = checker
        self._tickets = tickets
        self._now = now
        self._service_tokens = service_tokens
        self._flavour = flavour
        self._failed, self._invalid = (RST2_FAILED, RST2_INVALID) if flavour is SOAP12 else (RST_FAILED, RST_INVALID)

    def render_POST(self, request):
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        data = request.content.read(MAX_BODY + 1)
        try:
            if len(data) > MAX_BODY:
                raise MalformedEnvelope("envelope too large")
            handle, password, addresses = parse_rst(data)
        except MalformedEnvelope as e:
            refuse(request, f"bad request: {e}")
            request.setResponseCode(http.BAD_REQUEST)
            return self._invalid
        hangup = Hangup(request)

        def answer(avatar_id):
            # Passport answered a refusal with 200 and the fault; clients
            # only read the body of a 200.
            if avatar_id is None:
                refuse_login(request, handle, "passport_soap", refusals)
            body = self._failed if avatar_id is None else self._tokens(avatar_id, addresses)
            request.setResponseCode(http.OK)
            # Not chunked: some clients read exactly Content-Length bytes.
            request.setHeader(b"Content-Length", b"%d" % len(body))
            if not hangup.happened:
                request.write(body)
            finish(request, hangup)

        refusals = []
        sign_in(self._checker, handle, password, client_address(request), "passport_soap", refusals).addCallback(answer)
        return server.NOT_DONE_YET

    def render_GET(self, request):
        request.setResponseCode(http.NOT_ALLOWED)
        request.setHeader(b"Allow", b"POST")
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        return self._invalid

    def _tokens(self, handle: str, addresses: list[str]) -> bytes:
        tokens = []
        ticket_lifetime = self._config.passport_ticket_lifetime
        service = self._service_tokens
        service_lifetime = service.lifetime if service is not None else ticket_lifetime
        for address in addresses:
            if address == LEGACY_ADDRESS:
                tokens.append((address, None, None, service_lifetime))
            elif address in MESSENGER_ADDRESSES:
                secret = sso.new_secret() if address == SSO_ADDRESS else None
                value = self._tickets.issue(handle, secret)
                if service is not None:
                    # messenger.msn.com's token also opens the offline
                    # message store (rsi.asmx).
                    service.register(value, handle)
                log.info("passport ticket issued to {handle}", handle=handle)
                tokens.append((address, value, secret, ticket_lifetime))
            elif service is not None:
                tokens.append((address, service.issue(handle), None, service_lifetime))
            else:
                # Without the web services, a token nobody checks.
                tokens.append((address, f"t={secrets.token_urlsafe(24)}&p={secrets.token_urlsafe(24)}", None, ticket_lifetime))
        return rst_success(handle, tokens, self._now(), ticket_lifetime, self._flavour)
