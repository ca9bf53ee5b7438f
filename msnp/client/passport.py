"""
The client side of Passport 1.4 (MSNP8-MSNP12 logins): ask the nexus where
the login is, then send the account and password there over HTTPS with the
policy the notification server gave, and take the ticket from the answer.

TLS is always verified: against the platform's trust store by default, or
against the certificates in a PEM file or bytes the caller names (a private
server's own authority).
"""

from __future__ import annotations

import re
from typing import Optional, Union
from urllib.parse import quote

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

DEFAULT_NEXUS = "https://nexus.passport.com/rdr/pprdr.asp"

# Redirects followed between one login address and the next.
MAX_REDIRECTS = 3


class PassportError(Exception):
    """
    The Passport exchange failed for a reason other than the password: the
    nexus gave no login address, an answer had no ticket, too many
    redirects.
    """


class PassportRefused(PassportError):
    """
    Passport refused the account and password (401, da-status=failed).
    """


def trust_root(trust: Union[None, str, bytes]):
    """
    The trust root for C{trust}: None for the platform's store, else the
    PEM certificates in the file named (str) or given (bytes).
    """
    if trust is None:
        return None
    if isinstance(trust, str):
        with open(trust, "rb") as handle:
            trust = handle.read()
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", trust, re.S)
    if not pems:
        raise PassportError("no certificate in the trust store given")
    return trustRootFromCertificates([Certificate.loadPEM(pem) for pem in pems])


def authorization(handle: str, password: str, policy: str) -> bytes:
    """
    The C{Authorization} header of the login request.
    """
    return (
        "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
        f"sign-in={quote(handle, safe='')},pwd={quote(password, safe='')},{policy}"
    ).encode("utf-8")


def header_fields(value: str) -> dict[str, str]:
    """
    The C{k=v} fields of a Passport header (after its scheme), keys lower
    case, quotes around values removed.
    """
    _, _, rest = value.strip().partition(" ")
    fields = {}
    for part in rest.split(","):
        key, eq, item = part.strip().partition("=")
        if eq:
            fields.setdefault(key.lower(), item.strip("'"))
    return fields


class _Body(Protocol):
    def __init__(self):
        self.parts = []
        self.done = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason=None) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def _drain(response) -> defer.Deferred:
    body = _Body()
    response.deliverBody(body)
    return body.done


def _https(address: str) -> bytes:
    """
    A login address as the nexus names it (no scheme) as a URL.
    """
    return (address if "://" in address else "https://" + address).encode("ascii")


async def fetch_ticket(
    reactor, handle: str, password: str, policy: str, nexus: str = DEFAULT_NEXUS, trust: Union[None, str, bytes] = None
) -> str:
    """
    The Passport ticket (C{t=...&p=...}) for C{handle}; raises
    L{PassportRefused} for a wrong password, L{PassportError} otherwise.
    """
    agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust_root(trust)))
    response = await agent.request(b"GET", nexus.encode("ascii"))
    await _drain(response)
    urls = response.headers.getRawHeaders(b"PassportURLs") or []
    login = header_fields("x " + urls[0].decode("ascii")).get("dalogin") if urls else None
    if response.code != 200 or not login:
        raise PassportError(f"the nexus answered {response.code} without a login address")
    url = _https(login)
    for _ in range(MAX_REDIRECTS + 1):
        headers = Headers({b"Authorization": [authorization(handle, password, policy)]})
        response = await agent.request(b"GET", url, headers)
        await _drain(response)
        if response.code == 302:
            location = response.headers.getRawHeaders(b"Location") or []
            if not location:
                raise PassportError("a redirect without a location")
            url = location[0]
            continue
        if response.code == 401:
            raise PassportRefused(handle)
        info = response.headers.getRawHeaders(b"Authentication-Info") or []
        ticket: Optional[str] = header_fields(info[0].decode("ascii")).get("from-pp") if info else None
        if response.code != 200 or not ticket:
            raise PassportError(f"the login answered {response.code} without a ticket")
        return ticket
    raise PassportError("too many redirects")
