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

The client then presents the ticket with C{USR t TWN S t=...&p=...}.

twisted.web writes header names in its own canonical case
(C{Passporturls}); the official client matches C{PassportURLs} exactly, so
the channel here writes the names it was given in the case it was given.
"""

from __future__ import annotations

import secrets
from typing import Optional
from urllib.parse import unquote

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp import wire

log = Logger()

NEXUS_PATH = b"/rdr/pprdr.asp"
LOGIN_PATH = b"/login2.srf"

# Header names whose exact case the official client depends on.
_EXACT_CASE = {name.lower(): name for name in (b"PassportURLs",)}

_FAILED = (
    "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,"
    "cburl=http://messenger.msn.com/images/logo.gif,cbtxt=Invalid%20sign-in%20name%20or%20password"
)


class ExactCaseHTTPChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel that restores the exact case of the header names in
    L{_EXACT_CASE} when it writes a response.
    """

    def writeHeaders(self, version, code, reason, headers):
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            name = _EXACT_CASE.get(name.lower(), name)
            for value in values:
                lines.extend((name, b": ", value, b"\r\n"))
        lines.append(b"\r\n")
        self.transport.writeSequence(lines)


class PassportSite(server.Site):
    protocol = ExactCaseHTTPChannel

    def log(self, request):
        # The access log would carry the Authorization header's neighbours
        # and ticket-bearing replies; one line per login is logged instead.
        pass


def policy(now: float) -> str:
    """
    The string sent in C{USR t TWN S}: the client passes it on to the
    Passport login unchanged, so only its shape matters.
    """
    return (
        "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
        f"ct={int(now)},kpp=1,kv=5,ver=2.1.0173.1,tpf={secrets.token_hex(16)}"
    )


def nexus_urls(login_address: str) -> str:
    """
    The value of the nexus's C{PassportURLs} header.
    """
    return (
        "DARealm=Passport.Net,"
        f"DALogin={login_address},"
        f"DAReg=http://{login_address.split('/')[0]}/,"
        "Properties=,GeneralRedir=,Help=,ConfigVersion=11"
    )


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
    isLeaf = True

    def __init__(self, config):
        super().__init__()
        self._config = config

    def render_GET(self, request):
        request.setHeader(b"PassportURLs", nexus_urls(self._config.passport_login_address).encode("ascii"))
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
        fields = parse_authorization(request.getHeader(b"authorization"))
        handle = (fields or {}).get("sign-in", "")
        password = (fields or {}).get("pwd")
        if not wire.is_valid_handle(handle) or password is None:
            return self._refuse(request, "malformed request")
        d = self._checker.requestAvatarId(UsernamePassword(handle.encode("utf-8"), password.encode("utf-8")))

        def accepted(avatar_id):
            ticket = self._tickets.issue(avatar_id)
            log.info("passport ticket issued to {handle}", handle=avatar_id)
            request.setHeader(b"Authentication-Info", success_header(ticket).encode("ascii"))
            request.setResponseCode(http.OK)
            _finish(request)

        def refused(failure):
            if not failure.check(UnauthorizedLogin):
                log.failure("passport login failed", failure)
            self._refuse(request, "wrong password or unknown account", handle)
            _finish(request)

        d.addCallbacks(accepted, refused)
        return server.NOT_DONE_YET

    def _refuse(self, request, reason: str, handle: str = "") -> bytes:
        log.info("passport login refused for {handle}: {reason}", handle=handle or "?", reason=reason)
        request.setResponseCode(http.UNAUTHORIZED)
        request.setHeader(b"WWW-Authenticate", _FAILED.encode("ascii"))
        return b""


def _finish(request) -> None:
    # The client may have hung up while the password was being checked.
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.finish()


def make_site(config, checker, tickets) -> PassportSite:
    """
    The Passport site: nexus and login under their usual paths.
    """
    root = resource.Resource()
    root.putChild(b"rdr", _single_child(b"pprdr.asp", NexusResource(config)))
    root.putChild(b"login2.srf", LoginResource(checker, tickets))
    site = PassportSite(root)
    site.displayTracebacks = False
    return site


def _single_child(name: bytes, child) -> resource.Resource:
    parent = resource.Resource()
    parent.putChild(name, child)
    return parent
