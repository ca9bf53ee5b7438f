"""
Federated SIP domains: where requests for each go (a static route from
C{--sip-peer DOMAIN=URI}, or DNS SRV C{_sip._tcp.DOMAIN} when the option
gives only the domain), and from where requests claiming each may come.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from msnp.sip.grammar import URI, GrammarError
from msnp.sip.transaction import Hop

log = Logger()

# How long resolved addresses are trusted (seconds).
ADDRESS_LIFETIME = 300.0


class PeerOptionError(ValueError):
    pass


@attrs.define
class Peer:
    """
    One federated domain.  C{uri} is None when it is found by DNS SRV.
    C{session_im}: the peer wants instant messages in INVITE sessions
    (OCS style) rather than pager-mode MESSAGE.
    """

    domain: str
    uri: Optional[URI] = None
    session_im: bool = False
    hops: list = attrs.Factory(list)
    # Address new requests to the Contact each user last sent us rather
    # than to their address of record: for a peer that is one user agent
    # routing by its contact user (baresip 1.0 answers its AOR with 404).
    contact_routing: bool = False
    resolved_at: float = -1e18

    @property
    def tls_name(self) -> str:
        """
        The name the peer's TLS certificate must carry when we connect:
        the host of its route when that is a name, else its domain.
        """
        if self.uri is not None and not _is_address(self.uri.host):
            return self.uri.host.lower()
        return self.domain

    @property
    def transport(self) -> str:
        if self.uri is None:
            return "tcp"
        return self.uri.transport or ("tls" if self.uri.scheme == "sips" else "udp")


def parse_peer_option(text: str) -> Peer:
    """
    C{DOMAIN=sip:HOST[:PORT][;transport=udp|tcp|tls][;im=session][;route=contact]}
    or C{DOMAIN} alone (DNS SRV).
    """
    domain, eq, uri_text = text.partition("=")
    domain = domain.strip().lower()
    if not domain or any(c in domain for c in " @:/;"):
        raise PeerOptionError(f"bad peer domain {domain!r}")
    if not eq:
        return Peer(domain)
    try:
        uri = URI.parse(uri_text)
    except GrammarError as error:
        raise PeerOptionError(f"{domain}: {error}")
    if uri.scheme == "tel":
        raise PeerOptionError(f"{domain}: a peer is a sip: or sips: URI")
    if uri.transport not in (None, "udp", "tcp", "tls"):
        raise PeerOptionError(f"{domain}: unknown transport {uri.transport}")
    session_im = uri.params.get("im") == "session"
    if "im" in uri.params and not session_im:
        raise PeerOptionError(f"{domain}: im= takes only 'session'")
    contact_routing = uri.params.get("route") == "contact"
    if "route" in uri.params and not contact_routing:
        raise PeerOptionError(f"{domain}: route= takes only 'contact'")
    return Peer(domain, uri.with_params(im=False, route=False), session_im, contact_routing=contact_routing)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class PeerTable:
    """
    The configured peers.  C{resolver} is a C{twisted.names} resolver (for
    SRV) and C{name_resolver} a callable host → Deferred of addresses;
    both are replaced in tests.
    """

    def __init__(self, peers: list[Peer], clock, resolver=None, name_resolver=None):
        self.peers = {peer.domain: peer for peer in peers}
        self.clock = clock
        self._resolver = resolver
        self._name_resolver = name_resolver

    def __contains__(self, domain: str) -> bool:
        return domain.lower() in self.peers

    def peer_for(self, domain: str) -> Optional[Peer]:
        return self.peers.get(domain.lower())

    def tls_name(self, host: str, port: int) -> str:
        """
        The certificate name expected of the peer reached at C{host}:C{port}.
        """
        for peer in self.peers.values():
            if any(hop.host == host and hop.port == port for hop in peer.hops):
                return peer.tls_name
        return host

    def route(self, domain: str) -> defer.Deferred:
        """
        Deferred list of hops for C{domain}, best first; [] when none.
        """
        peer = self.peer_for(domain)
        if peer is None:
            return defer.succeed([])
        if peer.hops and self.clock.seconds() - peer.resolved_at < ADDRESS_LIFETIME:
            return defer.succeed(list(peer.hops))
        d = self._resolve(peer)

        def resolved(hops):
            if hops:
                peer.hops = hops
                peer.resolved_at = self.clock.seconds()
            return list(hops or peer.hops)

        def failed(failure):
            log.info("SIP peer {domain} not resolved: {error}", domain=domain, error=failure.getErrorMessage())
            return list(peer.hops)

        return d.addCallbacks(resolved, failed)

    def _resolve(self, peer: Peer) -> defer.Deferred:
        if peer.uri is not None:
            uri = peer.uri
            transport = peer.transport
            port = uri.port or (5061 if transport == "tls" else 5060)
            host = uri.params.get("maddr") or uri.host
            return self._addresses(host).addCallback(lambda addresses: [Hop(transport, a, port) for a in addresses])
        return self._srv(peer.domain)

    def _addresses(self, host: str) -> defer.Deferred:
        host = host.strip("[]")
        if _is_address(host):
            return defer.succeed([host])
        if self._name_resolver is not None:
            return defer.maybeDeferred(self._name_resolver, host)
        from twisted.internet import reactor

        return reactor.resolve(host).addCallback(lambda address: [address])

    @defer.inlineCallbacks
    def _srv(self, domain: str):
        resolver = self._resolver
        if resolver is None:
            from twisted.names import client

            resolver = self._resolver = client.createResolver()
        answers, _, _ = yield resolver.lookupService(f"_sip._tcp.{domain}")
        records = sorted(
            (answer.payload for answer in answers if answer.type == 33),
            key=lambda record: (record.priority, -record.weight),
        )
        hops = []
        for record in records:
            target = str(record.target)
            if not target or target == ".":
                continue
            try:
                addresses = yield self._addresses(target)
            except Exception as error:  # one target that fails to resolve
                log.info("SIP SRV target {target} not resolved: {error}", target=target, error=error)
                continue
            hops.extend(Hop("tcp", address, record.port) for address in addresses)
        return hops

    @defer.inlineCallbacks
    def admits(self, domain: str, source: Hop):
        """
        Whether a request claiming to come from C{domain} may come from
        C{source}: the peer's resolved address, and over TLS a certificate
        naming the peer's domain or host.
        """
        peer = self.peer_for(domain)
        if peer is None:
            return False
        hops = yield self.route(domain)
        if source.host not in {hop.host for hop in hops}:
            return False
        if source.transport == "tls":
            names = {name.lower() for name in source.certificate_names}
            expected = {peer.domain}
            if peer.uri is not None:
                expected.add(peer.uri.host.strip("[]").lower())
            return bool(names & expected)
        return True
