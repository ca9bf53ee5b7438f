"""
Passport 1.4 ("Tweener") over HTTPS, for the MSNP8+ C{USR TWN} login.

Two twisted.web resources on their own endpoint:

 - the nexus, C{GET /rdr/pprdr.asp}: an empty 200 whose C{PassportURLs}
   header names the login address (C{DALogin}, without a scheme);
 - the login, C{GET /login2.srf} with C{Authorization: Passport1.4
   ...,sign-in=HANDLE,pwd=PASSWORD,...}: the password is checked against the
   stored scrypt hash, and a ticket comes back in C{Authentication-Info:
   Passport1.4 da-status=success,...,from-PP='t=...&p=...'}; a wrong
   password or unknown account gets 401 with C{WWW-Authenticate:
   Passport1.4 da-status=failed,...}.

From MSN Messenger 7.5 (MSNP12) the client asks for the same ticket with
Passport SOAP instead: C{POST /RST.srf} with a WS-Trust
RequestSecurityToken envelope whose C{wsse:UsernameToken} holds the name
and password; the answer is a RequestSecurityTokenResponseCollection whose
C{messenger.msn.com} token is the ticket, or a C{wsse:FailedAuthentication}
fault.

The client then presents the ticket with C{USR t TWN S t=...&p=...}.

Clients patched for the Escargot revival network ask a nexus at
C{GET /nexus-mock} whose C{DALogin} has a scheme (C{https://HOST/login}) and
log in at C{GET /login} the same way; their web helpers C{POST /NotRST.srf}
with C{X-User}/C{X-Password} headers and read the ticket from C{X-Token}.
MSN Messenger 6-7.5 also fetch their configuration here
(C{/Config/MsgrConfig.asmx}, C{/etc/MsgrConfig}) and the tab and portal
pages under C{/svcs/mms/}; they get minimal documents.

The HTTP plumbing under every resource of the site (exact-case header
names, bounded bodies, absolute-form targets, refusal logging, the shared
password check) is L{msnp.msn.passport_http}.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Optional
from urllib.parse import unquote
from xml.sax.saxutils import escape, quoteattr

from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp.msn import safexml, sso
from msnp.msn.passport_http import MAX_BODY, Hangup, PassportSite, client_address, finish, refuse, refuse_login, sign_in

log = Logger()

_NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"

_FAILED = (
    "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,"
    "cburl=http://messenger.msn.com/images/logo.gif,cbtxt=Invalid%20sign-in%20name%20or%20password"
)


def policy(now: float) -> str:
    """
    The string sent in C{USR t TWN S}: the client passes it on to the
    Passport login unchanged, so only its shape matters.
    """
    return (
        "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
        f"ct={int(now)},kpp=1,kv=5,ver=2.1.0173.1,tpf={secrets.token_hex(16)}"
    )


def nexus_urls(login_address: str, site: str) -> str:
    """
    The value of a nexus's C{PassportURLs} header: C{login_address} is the
    C{DALogin}, C{site} the host (and port) of this site.
    """
    return (
        "DARealm=Passport.Net,"
        f"DALogin={login_address},"
        f"DAReg=http://{site}/,"
        "Properties=,GeneralRedir=,Help=,ConfigVersion=11"
    )


def escargot_login_address(config) -> str:
    """
    The C{DALogin} of C{/nexus-mock}: with its scheme, at C{/login}, as
    clients patched for Escargot expect (they split it at C{://}).
    """
    return f"https://{config.passport_site}/login"


def parse_authorization(value: Optional[bytes]) -> Optional[dict[str, str]]:
    """
    The fields of a C{Passport1.4 k=v,k=v,...} header, URL-decoded; None
    when the header is missing or not Passport1.4.
    """
    if not value:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    scheme, _, rest = text.strip().partition(" ")
    if scheme.lower() != "passport1.4":
        return None
    fields = {}
    for part in rest.split(","):
        key, eq, item = part.strip().partition("=")
        if eq:
            fields[key.lower()] = unquote(item)
    return fields


def success_header(ticket: str) -> str:
    return (
        "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,"
        f"from-PP='{ticket}',ru=http://messenger.msn.com"
    )


class NexusResource(resource.Resource):
    """
    A nexus: an empty 200 whose C{PassportURLs} names the login.
    C{login_address} gives the C{DALogin} for the configuration.
    """

    isLeaf = True

    def __init__(self, config, login_address=lambda config: config.passport_login_address):
        super().__init__()
        self._config = config
        self._login_address = login_address

    def render_GET(self, request):
        urls = nexus_urls(self._login_address(self._config), self._config.passport_site)
        request.setHeader(b"PassportURLs", urls.encode("ascii"))
        request.setHeader(b"Content-Type", b"text/html")
        return b""


class LoginResource(resource.Resource):
    """
    Checks the sign-in name and password of a C{Passport1.4} request and
    issues a ticket for the account.
    """

    isLeaf = True

    def __init__(self, checker, tickets):
        super().__init__()
        self._checker = checker
        self._tickets = tickets

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html")
        fields = parse_authorization(request.getHeader(b"authorization")) or {}
        hangup = Hangup(request)

        def answer(avatar_id):
            if avatar_id is None:
                refuse_login(request, fields.get("sign-in"), "passport_http", refusals)
                request.setResponseCode(http.UNAUTHORIZED)
                request.setHeader(b"WWW-Authenticate", _FAILED.encode("ascii"))
            else:
                ticket = self._tickets.issue(avatar_id)
                log.info("passport ticket issued to {handle}", handle=avatar_id)
                request.setHeader(b"Authentication-Info", success_header(ticket).encode("ascii"))
                request.setResponseCode(http.OK)
            # An empty body said outright, as the nexus does, not chunked.
            request.setHeader(b"Content-Length", b"0")
            finish(request, hangup)

        refusals = []
        sign_in(
            self._checker, fields.get("sign-in", ""), fields.get("pwd"), client_address(request), "passport_http", refusals
        ).addCallback(answer)
        return server.NOT_DONE_YET


# Escargot's header login (web helpers and patched MSN 7.5): the ticket for
# C{USR TWN S} in a response header.  A refusal is a 200 without the header,
# as there; browsers read it across origins, so CORS headers come with it.
_CORS = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"POST"),
    (b"Access-Control-Expose-Headers", b"X-Token"),
)


class HeaderLoginResource(resource.Resource):
    """
    C{POST /NotRST.srf} with C{X-User} and C{X-Password}: the ticket comes
    back in C{X-Token}; C{OPTIONS} answers a browser's preflight.
    """

    isLeaf = True

    def __init__(self, checker, tickets):
        super().__init__()
        self._checker = checker
        self._tickets = tickets

    def render_OPTIONS(self, request):
        for name, value in _CORS:
            request.setHeader(name, value)
        request.setHeader(b"Access-Control-Allow-Headers", b"X-User, X-Password, Content-Type")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setHeader(b"Content-Length", b"0")
        return b""

    def render_POST(self, request):
        for name, value in _CORS:
            request.setHeader(name, value)
        request.setHeader(b"Content-Length", b"0")
        try:
            handle = request.getHeader(b"x-user").decode("utf-8")
            password = request.getHeader(b"x-password").decode("utf-8")
        except (AttributeError, UnicodeDecodeError):
            refuse(request, "bad request: X-User or X-Password missing or not UTF-8")
            request.setResponseCode(http.BAD_REQUEST)
            return b""

        hangup = Hangup(request)

        def answer(avatar_id):
            if avatar_id is None:
                refuse_login(request, handle, "passport_header", refusals)
            else:
                request.setHeader(b"X-Token", self._tickets.issue(avatar_id).encode("ascii"))
                log.info("passport ticket issued to {handle}", handle=avatar_id)
            request.setResponseCode(http.OK)
            finish(request, hangup)

        hangup = Hangup(request)
        refusals = []
        sign_in(self._checker, handle, password, client_address(request), "passport_header", refusals).addCallback(answer)
        return server.NOT_DONE_YET


# Passport SOAP (RST), MSN Messenger 7.5 / MSNP12: the same ticket, asked
# for with a WS-Trust RequestSecurityToken envelope instead of a header.

# Token requests answered in one envelope; clients ask for two to five.
RST_MAX_TOKENS = 16
# The addresses whose token is the ticket for USR TWN S (and, for
# messengerclear, USR SSO S with the BinarySecret kept with it).
MESSENGER_ADDRESSES = frozenset({"messenger.msn.com", "messengerclear.live.com"})
SSO_ADDRESS = "messengerclear.live.com"
# The Passport token every client asks for first; answered with an opaque
# legacy token.
LEGACY_ADDRESS = "http://Passport.NET/tb"

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


# Configuration MSN Messenger 6-7.5 fetch at start-up: no tabs, no phone
# dialer, no relay, nothing cached.  A GET gets the document itself, a POST
# (the SOAP GetClientConfig of 7.x) the document in its envelope.
_MSGR_CONFIG = (
    "<MsgrConfig><Simple><Config><ExpiresInDays>0</ExpiresInDays></Config>"
    "<DisablePhoneDialer>1</DisablePhoneDialer>"
    "<Relay><Enabled>0</Enabled><MaxCallLength>0</MaxCallLength></Relay>"
    "<TrustedDomains><domain name={host}/></TrustedDomains></Simple>"
    "<TabConfig><msntabdata></msntabdata>"
    "<msntabsettings><oemdisplaylimit>0</oemdisplaylimit><oemtotallimit>0</oemtotallimit></msntabsettings>"
    "</TabConfig></MsgrConfig>"
)


def msgr_config(host: str) -> str:
    return _MSGR_CONFIG.format(host=quoteattr(host))


def msgr_config_envelope(host: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{_NS_SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
        '<GetClientConfigResponse xmlns="http://www.msn.com/webservices/Messenger/Client">'
        f"<GetClientConfigResult><![CDATA[{msgr_config(host)}]]></GetClientConfigResult>"
        "</GetClientConfigResponse></soap:Body></soap:Envelope>"
    ).encode("utf-8")


class MsgrConfigResource(resource.Resource):
    """
    C{/Config/MsgrConfig.asmx} and C{/etc/MsgrConfig}, GET and POST.
    """

    isLeaf = True

    def __init__(self, config):
        super().__init__()
        self._config = config

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        return ('<?xml version="1.0" encoding="utf-8"?>' + msgr_config(self._config.public_host)).encode("utf-8")

    def render_POST(self, request):
        # The request envelope says nothing the answer depends on.
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        return msgr_config_envelope(self._config.public_host)


# /svcs/mms/tabs.asp: the tab list of MSN Messenger 5-6, empty; written as
# Escargot served it (settings, then the tab data).
TABS_DOCUMENT = (
    b'<?xml version="1.0"?>'
    b"<msntabsettings><oemtotallimit>0</oemtotallimit><oemdisplaylimit>0</oemdisplaylimit></msntabsettings>"
    b"<msntabdata></msntabdata>"
)
# /svcs/mms/portal.asp: the page behind the client's "today" window.
PORTAL_DOCUMENT = b"<!DOCTYPE html><html><head><title>msnp</title></head><body></body></html>"


class StaticDocument(resource.Resource):
    """
    One fixed document, for GET (and HEAD).
    """

    isLeaf = True

    def __init__(self, content_type: bytes, body: bytes):
        super().__init__()
        self._content_type = content_type
        self._body = body

    def render_GET(self, request):
        request.setHeader(b"Content-Type", self._content_type)
        return self._body


def make_site(config, checker, tickets, service_tokens=None, services=()) -> PassportSite:
    """
    The Passport site: the nexus, Passport 1.4 login and Passport SOAP
    (RST, RST2) under their usual paths, Escargot's nexus and logins, the
    configuration and pages MSN Messenger 5-7.5 fetch, and the web
    services of C{services} (pairs of a path and a resource).
    """
    login = LoginResource(checker, tickets)
    msgr_config_resource = MsgrConfigResource(config)
    root = resource.Resource()
    root.putChild(b"rdr", _single_child(b"pprdr.asp", NexusResource(config)))
    root.putChild(b"login2.srf", login)
    root.putChild(b"RST.srf", RSTResource(config, checker, tickets, service_tokens=service_tokens))
    root.putChild(b"RST2.srf", RSTResource(config, checker, tickets, service_tokens=service_tokens, flavour=SOAP12))
    for path, child in services:
        _put_path(root, path, child)
    root.putChild(b"nexus-mock", NexusResource(config, escargot_login_address))
    root.putChild(b"login", login)
    root.putChild(b"NotRST.srf", HeaderLoginResource(checker, tickets))
    # The 7.x clients spell the folder both ways.
    root.putChild(b"Config", _single_child(b"MsgrConfig.asmx", msgr_config_resource))
    root.putChild(b"config", _single_child(b"MsgrConfig.asmx", msgr_config_resource))
    root.putChild(b"etc", _single_child(b"MsgrConfig", msgr_config_resource))
    mms = resource.Resource()
    mms.putChild(b"tabs.asp", StaticDocument(b"text/xml", TABS_DOCUMENT))
    mms.putChild(b"portal.asp", StaticDocument(b"text/html", PORTAL_DOCUMENT))
    root.putChild(b"svcs", _single_child(b"mms", mms))
    site = PassportSite(root)
    site.displayTracebacks = False
    return site


def _put_path(root: resource.Resource, path: bytes, child) -> None:
    """
    Mount C{child} at C{path} (C{/a/b/c}), making the folders on the way.
    """
    *folders, leaf = path.strip(b"/").split(b"/")
    node = root
    for folder in folders:
        existing = node.children.get(folder)
        if existing is None:
            existing = resource.Resource()
            node.putChild(folder, existing)
        node = existing
    node.putChild(leaf, child)


def _single_child(name: bytes, child) -> resource.Resource:
    parent = resource.Resource()
    parent.putChild(name, child)
    return parent
