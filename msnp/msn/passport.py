"""
Passport 1.4 ("Tweener") over HTTPS, for the MSNP8+ C{USR TWN} login, and
the Passport site that serves it.

Two twisted.web resources on their own endpoint:

 - the nexus, C{GET /rdr/pprdr.asp}: an empty 200 whose C{PassportURLs}
   header names the login address (C{DALogin}, without a scheme);
 - the login, C{GET /login2.srf} with C{Authorization: Passport1.4
   ...,sign-in=HANDLE,pwd=PASSWORD,...}: the password is checked against the
   stored scrypt hash, and a ticket comes back in C{Authentication-Info:
   Passport1.4 da-status=success,...,from-PP='t=...&p=...'}; a wrong
   password or unknown account gets 401 with C{WWW-Authenticate:
   Passport1.4 da-status=failed,...}.

The client then presents the ticket with C{USR t TWN S t=...&p=...}.

From MSN Messenger 7.5 (MSNP12) the client asks for the same ticket with
Passport SOAP instead (C{POST /RST.srf}, C{/RST2.srf}): that is the
security token service, L{msnp.msn.token_service}, mounted here by
L{make_site}.

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

import secrets
from typing import Optional
from urllib.parse import unquote
from xml.sax.saxutils import quoteattr

from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp.msn.passport_http import Hangup, PassportSite, client_address, finish, refuse, refuse_login, sign_in
from msnp.msn.token_service import SOAP12, RSTResource

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
