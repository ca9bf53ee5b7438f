"""
The RVP front-end as a running service: its listener, the addresses of the
configured peers (resolved at start), and an orderly stop.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from twisted.application.service import MultiService
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from msnp.rvp.connection import HttpFactory
from msnp.rvp.frontend import RvpFrontEnd, RvpSettings
from msnp.rvp.home import IRvpHome
from msnp.rvp.principals import Site

log = Logger()


def parse_peer(text: str) -> tuple[str, str]:
    """
    ``DOMAIN=URL`` → (domain, URL); ValueError when malformed.
    """
    domain, equals, url = text.partition("=")
    domain, url = domain.strip().lower(), url.strip().rstrip("/")
    if not equals or not domain or Site.from_url(url) is None:
        raise ValueError(f"expected DOMAIN=http://HOST[:PORT], got {text!r}")
    return domain, url


def parse_host(text: str) -> tuple[str, Optional[int]]:
    """
    ``NAME`` or ``NAME:PORT``.
    """
    host, colon, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"not a port: {port}")
    return host.lower(), int(port) if colon else None


class RvpService(MultiService):
    """
    Serves RVP on C{endpoint} for C{domain}'s accounts.  C{host} (and an
    optional port) is what principal URLs carry; the port defaults to the
    one bound.
    """

    def __init__(self, reactor, endpoint: str, home: IRvpHome, domain: str, host: str, peers: dict[str, str], clock=None):
        super().__init__()
        from msnp.service import ListeningService

        self.reactor = reactor
        self._host, self._port = parse_host(host)
        settings = RvpSettings(domain.lower(), Site(self._host, self._port or 80), dict(peers))
        self.frontend = RvpFrontEnd(settings, home, reactor, clock)
        self.factory = HttpFactory(self.frontend.handle, reactor)
        self.listener = ListeningService(reactor, endpoint, self.factory, "--rvp", self._listening)
        self.listener.setServiceParent(self)

    def _listening(self, port) -> None:
        number = getattr(port.getHost(), "port", None)
        if self._port is None and number is not None:
            self.frontend.set_site(Site(self._host, number))
        log.info(
            "rvp listening on {description} for {domain} as {base}",
            description=self.listener.description,
            domain=self.frontend.settings.domain,
            base=self.frontend.principals.site.base,
        )

    @property
    def port(self) -> int:
        return self.listener.port.getHost().port

    def startService(self) -> None:
        super().startService()
        self._resolving = self._resolve_peers().addCallback(lambda _: self.frontend.start())

    @inlineCallbacks
    def _resolve_peers(self):
        """
        Server-to-server requests without credentials are accepted from the
        addresses the peers' hosts have now.
        """
        for domain, url in self.frontend.settings.peers.items():
            host = Site.from_url(url).host
            try:
                ipaddress.ip_address(host)
                address = host
            except ValueError:
                try:
                    address = yield self.reactor.resolve(host)
                except Exception as error:
                    log.warn("rvp peer {domain}: cannot resolve {host}: {error}", domain=domain, host=host, error=error)
                    continue
            self.frontend.settings.peer_addresses[address] = domain

    @inlineCallbacks
    def stopService(self):
        yield super().stopService()
        self.factory.close_all()
        yield self.frontend.stop()
