"""
Requests this server makes: NOTIFYs to clients' local nodes and to other
RVP servers, and SUBSCRIBEs to federated principals, following 302s; and
where another domain's RVP server is (``--rvp-peer``, else DNS SRV
``_rvp._tcp``, else the domain itself).
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urljoin

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers as TwistedHeaders

from msnp.rvp.httpwire import NOTIFICATIONS_VERSION

log = Logger()

MAX_REDIRECTS = 5
MAX_REPLY_BODY = 256 * 1024
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


class _Collect(Protocol):
    """
    Read a reply body up to a limit.  When the body is not wanted, stop at
    once: some local nodes answer without Content-Length and keep the
    connection open, so waiting for the end would never finish.
    """

    def __init__(self, done: Deferred, want_body: bool):
        self.done = done
        self.want_body = want_body
        self.data = bytearray()

    def connectionMade(self) -> None:
        if not self.want_body:
            self.transport.stopProducing()
            self._finish()

    def dataReceived(self, data: bytes) -> None:
        if self.done is None:
            return
        self.data += data
        if len(self.data) > MAX_REPLY_BODY:
            self.transport.stopProducing()
            self._finish()

    def connectionLost(self, reason) -> None:
        self._finish()

    def _finish(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            done.callback(bytes(self.data[:MAX_REPLY_BODY]))


class OutboundClient:
    """
    Sends RVP requests with Twisted's HTTP client.  Connections to other
    servers are kept open and reused; a request that finds no answer in
    C{timeout} seconds fails.
    """

    def __init__(self, reactor, timeout: float = REQUEST_TIMEOUT):
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._pool.retryAutomatically = False
        self._agent = Agent(reactor, connectTimeout=timeout, pool=self._pool)
        self._timeout = timeout
        self._pending: set[Deferred] = set()

    @inlineCallbacks
    def request(self, method: str, url: str, headers: dict[str, str], body: bytes = b"", want_body: bool = False):
        """
        Send one request, following redirects (the same method and body to
        the Location), and fire with its L{Reply}.
        """
        for _ in range(MAX_REDIRECTS + 1):
            reply = yield self._once(method, url, headers, body, want_body)
            if reply.status in (301, 302, 307, 308) and reply.headers.get("location"):
                url = urljoin(url, reply.headers["location"])
                continue
            return reply
        raise IOError(f"too many redirects from {url}")

    def _once(self, method: str, url: str, headers: dict[str, str], body: bytes, want_body: bool) -> Deferred:
        from twisted.web.client import FileBodyProducer
        from io import BytesIO

        fields = TwistedHeaders()
        fields.setRawHeaders(b"RVP-Notifications-Version", [NOTIFICATIONS_VERSION.encode()])
        for name, value in headers.items():
            fields.setRawHeaders(name.encode("ascii"), [value.encode("utf-8")])
        producer = FileBodyProducer(BytesIO(body)) if body else None
        if body:
            fields.setRawHeaders(b"Content-Type", [b"text/xml"])
        d = self._agent.request(method.encode("ascii"), url.encode("utf-8"), fields, producer)
        timer = self._reactor.callLater(self._timeout, d.cancel)

        def got(response):
            collected = Deferred()
            response.deliverBody(_Collect(collected, want_body))
            reply_headers = {
                name.decode("latin-1").lower(): values[-1].decode("latin-1")
                for name, values in response.headers.getAllRawHeaders()
            }
            return collected.addCallback(lambda data: Reply(response.code, reply_headers, data, url))

        def done(result):
            if timer.active():
                timer.cancel()
            self._pending.discard(d)
            return result

        d.addCallback(got)
        d.addBoth(done)
        self._pending.add(d)
        return d

    def stop(self) -> Deferred:
        for d in list(self._pending):
            d.cancel()
        return self._pool.closeCachedConnections()


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
