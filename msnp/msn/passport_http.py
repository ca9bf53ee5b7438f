"""
The HTTP plumbing shared by the Passport site (L{msnp.msn.passport},
L{msnp.msn.token_service}) and the HTTP gateway (L{msnp.msn.gateway}); no
resource of its own.

 - L{ExactCaseHTTPChannel} writes header names in the case it was given:
   twisted.web writes its own canonical case (C{Passporturls}), and the
   official client matches C{PassportURLs} exactly;
 - L{BoundedRequest} refuses a body past L{MAX_BODY} with 413 before storing
   it, and serves a request target in absolute form (C{GET
   https://host/login2.srf}, RFC 9112 section 3.2.2) like its origin form,
   with a run of slashes in its path counted as one (libpurple asks for
   C{//RST.srf});
 - L{PassportSite} logs every refused request once, with the client's
   address and the reason, and keeps no access log;
 - L{sign_in} checks a sign-in name and password for every Passport login,
   and L{refuse_login} says why one was refused;
 - L{Hangup} and L{finish} answer a request only if its client is still
   there.
"""

from __future__ import annotations

from typing import Optional

from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web import http, server

from msnp import metrics
from msnp.msn import wire
from msnp.core.accounts import MALFORMED, AddressedUsernamePassword, LoginRefused, refusal_of

log = Logger()

# Bigger bodies are refused unread; a real RST envelope is about 2 KB.
MAX_BODY = 64 * 1024

# Header names whose exact case the official client depends on.
# papyon reads the gateway's X-MSN-Messenger header by its exact name too.
_EXACT_CASE = {name.lower(): name for name in (b"PassportURLs", b"X-MSN-Messenger")}


class ExactCaseHTTPChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel that restores the exact case of the header names in
    L{_EXACT_CASE} when it writes a response, and logs the requests it
    refuses before they reach a resource (a malformed request line or
    header).
    """

    def _respondToBadRequestAndDisconnect(self):
        log_refusal(getattr(self.transport.getPeer(), "host", None), "bad request (malformed HTTP)")
        super()._respondToBadRequestAndDisconnect()

    def writeHeaders(self, version, code, reason, headers):
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            name = _EXACT_CASE.get(name.lower(), name)
            for value in values:
                lines.extend((name, b": ", value, b"\r\n"))
        lines.append(b"\r\n")
        self.transport.writeSequence(lines)


_TOO_LARGE = b"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class BoundedRequest(server.Request):
    """
    A request whose body may not pass L{MAX_BODY} bytes: past it the
    client gets 413 and is disconnected, before the body is stored.
    """

    _refused = False

    def gotLength(self, length):
        if length is not None and length > MAX_BODY:
            self._refuse_body()
        super().gotLength(None if self._refused else length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        if self.content.tell() + len(data) > MAX_BODY:
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def _refuse_body(self) -> None:
        if not self._refused:
            self._refused = True
            log_refusal(client_address(self), f"body over {MAX_BODY} bytes")
            self.channel.transport.write(_TOO_LARGE)
            # The channel's own close: it lets go of the transport first.
            self.channel.loseConnection()

    def requestReceived(self, command, path, version):
        if self._refused:
            return
        path, authority = origin_form(path)
        path = merge_slashes(path)
        if authority:
            # RFC 9112 section 3.2.2: the target's authority stands in for
            # any Host header.
            self.requestHeaders.setRawHeaders(b"host", [authority])
        super().requestReceived(command, path, version)


def origin_form(target: bytes) -> tuple[bytes, Optional[bytes]]:
    """
    The origin form of a request target and the authority it named (None
    when it named none).  An absolute-form target (C{http://} or
    C{https://}, any case) loses its scheme and authority and keeps its path
    and query, C{/} when it has no path; any other target is returned as
    it came.
    """
    scheme, separator, rest = target.partition(b"://")
    if not separator or scheme.lower() not in (b"http", b"https"):
        return target, None
    end = len(rest)
    for mark in (b"/", b"?"):
        index = rest.find(mark)
        if index != -1:
            end = min(end, index)
    authority, remainder = rest[:end], rest[end:]
    if not remainder.startswith(b"/"):
        remainder = b"/" + remainder
    return remainder, authority


def merge_slashes(target: bytes) -> bytes:
    """
    The target with every run of C{/} in its path made one; the query (from
    the first C{?}) is kept as it came.  libpurple 2.5-2.10 put a C{/} in
    front of paths that already start with one (C{POST //RST.srf}, C{POST
    //abservice/abservice.asmx}); Microsoft's servers answered those as
    the single-slash paths.
    """
    path, mark, query = target.partition(b"?")
    while b"//" in path:
        path = path.replace(b"//", b"/")
    return path + mark + query


# The reason logged for a refusal a resource did not name itself.
_REFUSALS = {
    http.BAD_REQUEST: "bad request",
    http.UNAUTHORIZED: "refused login",
    http.NOT_FOUND: "unknown path",
    http.NOT_ALLOWED: "method not allowed",
}


def log_refusal(address: Optional[str], reason: str, **fields) -> None:
    log.info("passport request refused from {address}: {reason}", address=address or "?", reason=reason, **fields)


def refuse(request, reason: str, **fields) -> None:
    """
    Mark C{request} as refused for C{reason}: the site logs it when the
    answer is written, whatever its status code (with C{fields} added to
    the log event).
    """
    request.refusal = reason
    request.refusal_fields = fields


class PassportSite(server.Site):
    protocol = ExactCaseHTTPChannel
    requestFactory = BoundedRequest

    def log(self, request):
        # No access log: it would carry the Authorization header's
        # neighbours and ticket-bearing replies.  Refusals get one line,
        # without the query string (clients may put anything there).
        reason = getattr(request, "refusal", None)
        if reason is None and request.code >= 400:
            reason = _REFUSALS.get(request.code, f"status {request.code}")
        if reason is not None:
            target = request.path[:100].decode("ascii", "replace")
            fields = getattr(request, "refusal_fields", {})
            log_refusal(client_address(request), f"{reason} ({request.method.decode('ascii', 'replace')} {target})", **fields)


def sign_in(
    checker,
    handle: str,
    password: Optional[str],
    address: Optional[str] = None,
    method: str = "passport_http",
    refusals: Optional[list] = None,
) -> Deferred:
    """
    Checks a sign-in name and password through C{checker} (which applies
    the account's growing delay to refusals).  Fires with the account's
    handle, or None when refused: a malformed name, a wrong password and an
    unknown account are not told apart to the client.  Every Passport login
    uses this, C{method} naming which (for the metrics); C{address}, the
    client's, counts refusals per source as well.  Why it was refused (a
    L{LoginRefused}) goes into C{refusals}; the caller logs the refusal
    (L{refuse_login}).
    """
    refusals = refusals if refusals is not None else []

    def refused_for(refusal: LoginRefused) -> None:
        refusals.append(refusal)
        metrics.LOGINS_REFUSED.labels(method, "throttled" if refusal.delayed else refusal.label).inc()

    if not wire.is_valid_handle(handle) or password is None:
        refused_for(LoginRefused(*MALFORMED))
        return succeed(None)
    d = checker.requestAvatarId(AddressedUsernamePassword(handle.encode("utf-8"), password.encode("utf-8"), address))

    def accepted(avatar_id):
        metrics.LOGINS_ACCEPTED.labels(method).inc()
        return avatar_id

    def refused(failure):
        if not failure.check(UnauthorizedLogin):
            log.failure("passport login failed", failure)
        refused_for(refusal_of(failure))
        return None

    return d.addCallbacks(accepted, refused)


def refuse_login(request, handle: Optional[str], method: str, refusals: list) -> None:
    """
    Mark C{request} as a refused login, saying why for the operator.
    """
    refusal = refusals[0] if refusals else None
    reason = ""
    if refusal is not None:
        reason = refusal.reason + (f" (throttled: answered after {refusal.delayed:g} s)" if refusal.delayed else "")
    refuse(
        request,
        _login_refusal(handle) + (f": {reason}" if reason else ""),
        msnp_event="login_refused",
        handle=(handle or "?")[:100],
        method=method,
        refused_because=reason,
    )


def _login_refusal(handle: Optional[str]) -> str:
    if not handle:
        return "refused login: no sign-in name"
    if not wire.is_valid_handle(handle):
        return "refused login: malformed sign-in name"
    return f"refused login for {handle}"


def client_address(request) -> Optional[str]:
    try:
        return getattr(request.getClientAddress(), "host", None)
    except AttributeError:
        # A request refused before it was tied to its channel.
        return None


class Hangup:
    """
    Whether the client of C{request} hung up, learnt from
    C{notifyFinish()} (which fails when the connection is lost first).
    """

    def __init__(self, request):
        self.happened = False
        request.notifyFinish().addErrback(self._lost)

    def _lost(self, _failure) -> None:
        self.happened = True


def finish(request, hangup: Hangup) -> None:
    # The client may have hung up while the password was being checked.
    if request.finished or hangup.happened:
        return
    request.finish()
