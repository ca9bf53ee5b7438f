"""
Requests this server makes: NOTIFYs to clients' local nodes and to other
RVP servers, and SUBSCRIBEs to federated principals, following 302s; and
where another domain's RVP server is (``--rvp-peer``, else DNS SRV
``_rvp._tcp``, else the domain itself).
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urljoin, urlsplit

import attrs
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.logger import Logger
from twisted.web.http_headers import Headers as TwistedHeaders

from msnp.rvp.httpwire import NOTIFICATIONS_VERSION
from msnp.rvp.pool import ConnectionPool

log = Logger()

MAX_REDIRECTS = 5
REQUEST_TIMEOUT = 30.0


@attrs.frozen
class Reply:
    """
    The answer to an outbound request: C{url} is where it was finally
    sent (after redirects).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    url: str


class OutboundClient:
    """
    Sends RVP requests through a L{ConnectionPool}: per destination a
    bounded queue and a few kept-alive connections (see
    L{msnp.rvp.pool}); a request that finds no answer in C{timeout}
    seconds fails.
    """

    def __init__(self, reactor, timeout: float = REQUEST_TIMEOUT, clock=None, connect=None, **limits):
        self._reactor = reactor
        self._timeout = timeout
        self.pool = ConnectionPool(clock if clock is not None else reactor, connect or self._connect, timeout, **limits)

    def _connect(self, host: str, port: int, protocol) -> Deferred:
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self._reactor, host, port, timeout=self._timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, port, timeout=self._timeout)
        else:
            endpoint = HostnameEndpoint(self._reactor, host, port, timeout=self._timeout)
        return connectProtocol(endpoint, protocol)

    @inlineCallbacks
    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes = b"",
        want_body: bool = False,
        order_key=None,
        coalesce_key=None,
    ):
        """
        Send one request, following redirects (the same method and body to
        the Location), and fire with its L{Reply}.  C{order_key}: requests
        with the same key to one destination go one at a time, in order;
        C{coalesce_key}: a waiting request with the same key is replaced
        by this one (see L{ConnectionPool.request}).
        """
        for _ in range(MAX_REDIRECTS + 1):
            reply = yield self._once(method, url, headers, body, want_body, order_key, coalesce_key)
            if reply.status in (301, 302, 307, 308) and reply.headers.get("location"):
                url = urljoin(url, reply.headers["location"])
                continue
            return reply
        raise IOError(f"too many redirects from {url}")

    def _once(self, method, url, headers, body, want_body, order_key, coalesce_key) -> Deferred:
        parts = urlsplit(url)
        if parts.scheme.lower() != "http" or not parts.hostname:
            return fail(ValueError(f"not an http URL: {url}"))
        try:
            port = parts.port or 80
        except ValueError:
            return fail(ValueError(f"bad port in {url}"))
        fields = TwistedHeaders()
        fields.setRawHeaders(b"Host", [parts.netloc.rpartition("@")[2].encode("idna")])
        fields.setRawHeaders(b"RVP-Notifications-Version", [NOTIFICATIONS_VERSION.encode()])
        for name, value in headers.items():
            fields.setRawHeaders(name.encode("ascii"), [value.encode("utf-8")])
        if body:
            fields.setRawHeaders(b"Content-Type", [b"text/xml"])
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        d = self.pool.request(
            parts.hostname, port, method.encode("ascii"), path.encode("utf-8"), fields, body, want_body, order_key, coalesce_key
        )
        return d.addCallback(lambda answer: Reply(answer.status, answer.headers, answer.body, url))

    def stop(self) -> Deferred:
        return self.pool.stop()


class PeerLocator:
    """
    Where another RVP domain is served: a configured base URL, else the
    target of ``_rvp._tcp.<domain>``, else ``http://<domain>``.  Answers
    are remembered for the life of the process.
    """

    def __init__(self, peers: dict[str, str], resolver=None):
        self._configured = {domain.lower(): url.rstrip("/") for domain, url in peers.items()}
        self._found: dict[str, str] = {}
        self._resolver = resolver

    def configured(self) -> dict[str, str]:
        return dict(self._configured)

    @inlineCallbacks
    def base_url(self, domain: str):
        domain = domain.lower()
        if domain in self._configured:
            return self._configured[domain]
        if domain in self._found:
            return self._found[domain]
        url = f"http://{domain}"
        try:
            resolver = self._resolver
            if resolver is None:
                from twisted.names import client

                resolver = client
            answers, _, _ = yield resolver.lookupService(f"_rvp._tcp.{domain}")
            records = sorted(
                (a.payload for a in answers if getattr(a.payload, "target", None) is not None),
                key=lambda r: (r.priority, -r.weight),
            )
            if records:
                target = records[0].target.name.decode("ascii").rstrip(".")
                port = records[0].port
                url = f"http://{target}" + ("" if port == 80 else f":{port}")
        except Exception as error:
            log.info("no _rvp._tcp record for {domain} ({error}); using the domain", domain=domain, error=error)
        self._found[domain] = url
        return url

    def domain_of(self, url: str) -> Optional[str]:
        for domain, base in list(self._configured.items()) + list(self._found.items()):
            if url.lower().startswith(base.lower() + "/"):
                return domain
        return None
