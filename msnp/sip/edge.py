"""
The SIP edge as one object: the agent with its presence notifier and
watcher and the IM handlers, behind L{ISipFederation} for the messenger,
and the Twisted service that listens on the configured transports.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.logger import Logger
from zope.interface import implementer

from msnp.sip.agent import SipAgent
from msnp.sip.im import InstantMessaging
from msnp.sip.link import IMessengerLink, ISipFederation
from msnp.sip.notifier import PresenceNotifier
from msnp.sip.peers import PeerTable
from msnp.sip.tls import FederationTls, parse_ssl_description
from msnp.sip.transaction import Timers
from msnp.sip.transport import SipTransports
from msnp.sip.watcher import PresenceWatcher

log = Logger()


@attrs.define
class SipSettings:
    """
    What C{--sip*} options configure.  C{stream_endpoints}: Twisted
    endpoint descriptions (tcp:..., ssl:...); C{udp_port}/C{udp_interface}:
    the UDP socket (None: no UDP).
    """

    domains: list = attrs.Factory(list)
    peers: list = attrs.Factory(list)
    stream_endpoints: list = attrs.Factory(list)
    udp_port: Optional[int] = None
    udp_interface: str = "127.0.0.1"
    public_host: str = "127.0.0.1"
    # Authorities for mutual TLS (--sip-ca); the certificate presented is
    # the first ssl: listener's.
    tls_ca: Optional[str] = None
    notify_interval: float = 5.0
    subscribe_expires: int = 3600
    retry_interval: float = 300.0
    max_subscriptions_per_peer: int = 10000
    timers: Timers = Timers()

    @property
    def enabled(self) -> bool:
        return bool(self.stream_endpoints or self.udp_port is not None)


@implementer(ISipFederation)
class SipEdge:
    """
    The edge: incoming SIP requests to the messenger through C{link}, and
    the messenger's calls (L{ISipFederation}) out as SIP.
    """

    def __init__(self, settings: SipSettings, link: IMessengerLink, transports: SipTransports, clock, resolver=None, name_resolver=None):
        self.settings = settings
        self.link = link
        self.transports = transports
        self.peers = PeerTable(list(settings.peers), clock, resolver, name_resolver)
        self.agent = SipAgent(clock, transports, settings.domains, self.peers, settings.timers)
        transports.receiver = self.agent.layer.message_received
        self.notifier = PresenceNotifier(self.agent, link, settings.notify_interval, settings.max_subscriptions_per_peer)
        self.watcher = PresenceWatcher(self.agent, link, settings.subscribe_expires, settings.retry_interval)
        self.im = InstantMessaging(self.agent, link)
        self.notifier.on_subscribed = self.watcher.contact_subscribed
        self.notifier.on_authorised = self.watcher.contact_authorised

    # ISipFederation

    def is_federated(self, handle: str) -> bool:
        return handle.rpartition("@")[2].lower() in self.peers

    def presence_changed(self, owner: str) -> defer.Deferred:
        return self.notifier.presence_changed(owner)

    def watch(self, owner: str, contact: str) -> None:
        self.watcher.watch(owner, contact)

    def unwatch(self, owner: str, contact: str) -> None:
        self.watcher.unwatch(owner, contact)

    def send(self, sender: str, recipient: str, event) -> defer.Deferred:
        return self.im.send(sender, recipient, event)

    def close(self) -> defer.Deferred:
        """
        Shutdown: end subscriptions and sessions (best effort, each
        request its own transaction), then stop every timer.
        """
        sent = self.notifier.close() + self.watcher.close() + self.im.close()
        d = defer.DeferredList(sent, consumeErrors=True)
        if sent:
            # Do not wait for slow peers longer than a reliable round trip.
            timeout = self.agent.clock.callLater(2.0, d.cancel)
            d.addBoth(lambda result: timeout.cancel() if timeout.active() else None)
        d.addBoth(lambda _: self.agent.close())
        return d


class SipService(Service):
    """
    Listens on the SIP transports while running; stops with an orderly
    goodbye to subscribers and sessions.
    """

    name = "sip"

    def __init__(self, reactor, settings: SipSettings, link: IMessengerLink, resolver=None, name_resolver=None):
        self.reactor = reactor
        self.settings = settings
        self.tls: Optional[FederationTls] = None
        listeners = [d for d in settings.stream_endpoints if d.startswith("ssl:")]
        if settings.tls_ca and listeners:
            first = parse_ssl_description(listeners[0])
            self.tls = FederationTls(first.private_key, first.certificate_path, settings.tls_ca)
        client_tls = self._client_tls if self.tls is not None else None
        self.transports = SipTransports(reactor, settings.public_host, client_tls_options=client_tls)
        self.edge = SipEdge(settings, link, self.transports, reactor, resolver, name_resolver)
        self.ports: list = []

    def _client_tls(self, host: str, port: int):
        return self.tls.client_options(self.edge.peers.tls_name(host, port))

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        if not self.ports:
            self._listen()
        super().startService()

    def _listen(self) -> None:
        settings = self.settings
        if settings.udp_port is not None:
            port = self.reactor.listenUDP(settings.udp_port, self.transports.udp_protocol(), interface=settings.udp_interface)
            self.ports.append(port)
            self.transports.listening("udp", port.getHost().port)
            log.info("SIP listening on udp:{port}", port=port.getHost().port)
        for description in settings.stream_endpoints:
            transport = "tls" if description.startswith("ssl:") else "tcp"
            results: list = []
            self._endpoint(description).listen(self.transports.stream_factory(transport)).addBoth(results.append)
            result = results[0]
            if not hasattr(result, "getHost"):
                result.raiseException()
            self.ports.append(result)
            self.transports.listening(transport, result.getHost().port)
            log.info("SIP listening on {description} (port {port})", description=description, port=result.getHost().port)

    def _endpoint(self, description: str):
        """
        The listening endpoint; with --sip-ca an ssl: one asks peers for
        their certificates (mutual TLS).
        """
        if self.tls is None or not description.startswith("ssl:"):
            return serverFromString(self.reactor, description)
        listener = parse_ssl_description(description)
        options = FederationTls(listener.private_key, listener.certificate_path, self.settings.tls_ca).server_options()
        return SSL4ServerEndpoint(self.reactor, listener.port, options, backlog=listener.backlog or 50, interface=listener.interface)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        yield self.edge.close()
        ports, self.ports = self.ports, []
        for port in ports:
            yield port.stopListening()
        yield self.transports.close_connections()

    def port(self, transport: str) -> Optional[int]:
        return self.transports.ports.get(transport)
