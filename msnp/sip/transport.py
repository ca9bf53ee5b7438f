"""
SIP over UDP, TCP and TLS on Twisted (RFC 3261 §18): datagrams and streams
in, parsed messages up to the transaction layer, messages out on the
connection they belong to or on a new one.

Unparseable datagrams are dropped; a datagram or stream message whose
start line and Via could be read is answered with the parse error's
status.  A stream that loses its framing is answered (when it can be) and
closed.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from msnp.sip.message import MAX_BODY_BYTES, ParseError, Request, StreamParser, parse_datagram
from msnp.sip.transaction import Hop, response_to

log = Logger()

# Bytes queued to a stream peer that does not read before it is dropped.
MAX_OUTBOUND_BUFFER = 4 * 1024 * 1024


def _error_response(error: ParseError):
    """
    The response to a request that failed to parse, when enough of it was
    read to address one (its Via, From, To, Call-ID and CSeq).
    """
    request = error.message
    if not isinstance(request, Request):
        return None
    try:
        request.top_via
        if not all(name in request.headers for name in ("From", "To", "Call-ID", "CSeq")):
            return None
        response = response_to(request, error.status)
    except ValueError:
        return None
    response.headers.add("Warning", f'399 msnp "{error.reason}"')
    return response


class SipDatagramProtocol(DatagramProtocol):
    """
    One UDP socket: each datagram is one message.
    """

    noisy = False

    def __init__(self, transports: "SipTransports"):
        self.transports = transports

    def datagramReceived(self, data: bytes, address) -> None:
        host, port = address[0], address[1]
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            message = parse_datagram(data, self.transports.max_body)
        except ParseError as error:
            response = _error_response(error)
            log.info("SIP datagram from {host}:{port} refused: {reason}", host=host, port=port, reason=error.reason)
            if response is not None:
                self.transport.write(response.to_bytes(), (host, port))
            return
        self.transports.message_received(message, Hop("udp", host, port))

    def send(self, data: bytes, host: str, port: int) -> None:
        self.transport.write(data, (host, port))


@implementer(IHandshakeListener)
class SipStreamProtocol(Protocol):
    """
    One TCP or TLS connection, in either direction.  C{secured} fires once
    a TLS handshake has completed (and fails if the connection ends
    first): an outbound TLS connection is not used before.
    """

    def __init__(self, transports: "SipTransports", transport_name: str, outbound_key=None):
        self.transports = transports
        self.transport_name = transport_name
        self.outbound_key = outbound_key
        self.parser = StreamParser(transports.max_body)
        self.closed = False
        self.peer: Optional[Hop] = None
        self._idle = None
        self._lost_waiters: list[defer.Deferred] = []
        self.secured: defer.Deferred = defer.Deferred()

    def handshakeCompleted(self) -> None:
        if not self.secured.called:
            self.secured.callback(self)

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = Hop(self.transport_name, peer.host, peer.port, self)
        self.transports._connection_made(self)
        self._arm_idle()

    def _arm_idle(self) -> None:
        clock = self.transports.clock
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.transports.idle_timeout)
        else:
            self._idle = clock.callLater(self.transports.idle_timeout, self._idle_out)

    def _idle_out(self) -> None:
        self._idle = None
        log.info("SIP connection from {peer} idle, closed", peer=self.peer)
        self.transport.loseConnection()

    def hop(self) -> Hop:
        names = ()
        if self.transport_name == "tls":
            names = certificate_names(self.transport)
        return Hop(self.transport_name, self.peer.host, self.peer.port, self, names)

    def dataReceived(self, data: bytes) -> None:
        self._arm_idle()
        pings = self.parser.pings
        try:
            results = self.parser.feed(data)
        except ParseError as error:
            for message in getattr(error, "parsed", []):
                self._deliver(message)
            response = _error_response(error)
            log.info("SIP stream from {peer} closed: {reason}", peer=self.peer, reason=error.reason)
            if response is not None:
                self.transport.write(response.to_bytes())
            self.transport.loseConnection()
            return
        for _ in range(self.parser.pings - pings):
            self.transport.write(b"\r\n")  # RFC 5626 pong
        for result in results:
            self._deliver(result)

    def _deliver(self, result) -> None:
        if self.closed:
            return
        if isinstance(result, ParseError):
            response = _error_response(result)
            log.info("SIP message from {peer} refused: {reason}", peer=self.peer, reason=result.reason)
            if response is not None:
                self.send(response.to_bytes())
            return
        self.transports.message_received(result, self.hop())

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        self._arm_idle()
        self.transport.write(data)

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        if not self.secured.called and self.outbound_key is not None:
            self.secured.errback(ConnectionError("connection ended before the TLS handshake completed"))
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self.transports._connection_lost(self)
        waiters, self._lost_waiters = self._lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_lost(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if self.closed:
            d.callback(None)
        else:
            self._lost_waiters.append(d)
        return d


def certificate_names(transport) -> tuple:
    """
    The DNS names (subjectAltName, else the common name) of the peer's
    certificate on a TLS connection, lower case; () without one.
    """
    certificate = transport.getPeerCertificate() if hasattr(transport, "getPeerCertificate") else None
    if certificate is None:
        return ()
    try:
        from cryptography import x509

        cert = certificate.to_cryptography()
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = [name.lower() for name in names.get_values_for_type(x509.DNSName)]
            ips = [str(address) for address in names.get_values_for_type(x509.IPAddress)]
            if dns or ips:
                return tuple(dns + ips)
        except x509.ExtensionNotFound:
            pass
        common = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        return tuple(attribute.value.lower() for attribute in common)
    except Exception:  # a certificate we cannot read proves no name
        return ()


class SipStreamFactory(Factory):
    noisy = False

    def __init__(self, transports: "SipTransports", transport_name: str):
        self.transports = transports
        self.transport_name = transport_name

    def buildProtocol(self, addr):
        if not self.transports.admits_connection(addr.host):
            return None
        return SipStreamProtocol(self.transports, self.transport_name)


class SipTransports:
    """
    Every SIP socket of one server: the UDP socket, the TCP/TLS listeners
    and the connections, inbound and outbound.  Implements the transaction
    layer's L{msnp.sip.transaction.Sender}.
    """

    def __init__(
        self,
        reactor,
        public_host: str,
        clock=None,
        max_body: int = MAX_BODY_BYTES,
        idle_timeout: float = 600.0,
        max_connections_per_address: int = 64,
        client_tls_options: Optional[Callable[[str, int], object]] = None,
    ):
        self.reactor = reactor
        self.clock = clock or reactor
        self.public_host = public_host
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.max_connections_per_address = max_connections_per_address
        self.client_tls_options = client_tls_options
        self.udp: Optional[SipDatagramProtocol] = None
        self.ports: dict[str, int] = {}
        self.connections: set[SipStreamProtocol] = set()
        self._outbound: dict[tuple, SipStreamProtocol] = {}
        self._connecting: dict[tuple, defer.Deferred] = {}
        self.receiver: Callable = lambda message, hop: None

    # Listening

    def udp_protocol(self) -> SipDatagramProtocol:
        self.udp = SipDatagramProtocol(self)
        return self.udp

    def stream_factory(self, transport_name: str) -> SipStreamFactory:
        return SipStreamFactory(self, transport_name)

    def listening(self, transport_name: str, port: int) -> None:
        self.ports[transport_name] = port

    def admits_connection(self, host: str) -> bool:
        count = sum(1 for c in self.connections if c.peer is not None and c.peer.host == host)
        return count < self.max_connections_per_address

    # Incoming

    def message_received(self, message, hop: Hop) -> None:
        self.receiver(message, hop)

    def _connection_made(self, connection: SipStreamProtocol) -> None:
        self.connections.add(connection)

    def _connection_lost(self, connection: SipStreamProtocol) -> None:
        self.connections.discard(connection)
        if connection.outbound_key is not None and self._outbound.get(connection.outbound_key) is connection:
            del self._outbound[connection.outbound_key]

    # Outgoing (the Sender interface)

    def sent_by(self, hop: Hop) -> tuple[str, int]:
        port = self.ports.get(hop.transport)
        if port is None:
            port = next(iter(self.ports.values()), 5060)
        return self.public_host, port

    def send(self, message, hop: Hop) -> defer.Deferred:
        data = message.to_bytes()
        if hop.transport == "udp":
            if self.udp is None or self.udp.transport is None:
                return defer.fail(ConnectionError("no UDP socket"))
            self.udp.send(data, hop.host, hop.port)
            return defer.succeed(None)
        connection = hop.connection
        if isinstance(connection, SipStreamProtocol) and not connection.closed:
            connection.send(data)
            return defer.succeed(None)
        key = (hop.transport, hop.host, hop.port)
        existing = self._outbound.get(key)
        if existing is not None and not existing.closed:
            existing.send(data)
            return defer.succeed(None)
        d = self._connect(key)
        d.addCallback(lambda connection: connection.send(data))
        return d

    def _connect(self, key) -> defer.Deferred:
        """
        One outbound connection per (transport, host, port); requests
        made while it is being set up wait for it.
        """
        waiting = self._connecting.get(key)
        result: defer.Deferred = defer.Deferred()
        if waiting is None:
            transport, host, port = key
            if transport == "tls":
                if self.client_tls_options is None:
                    return defer.fail(ConnectionError("TLS to peers is not configured"))
                endpoint = SSL4ClientEndpoint(self.reactor, host, port, self.client_tls_options(host, port), timeout=10)
            else:
                endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=10)
            protocol = SipStreamProtocol(self, transport, outbound_key=key)
            waiting = connectProtocol(endpoint, protocol)
            if transport == "tls":
                # Nothing goes out before the peer's certificate is checked.
                waiting.addCallback(lambda connection: connection.secured)
            else:
                protocol.secured.callback(protocol)
            self._connecting[key] = waiting
            waiters: list = []
            waiting.waiters = waiters

            def connected(connection):
                self._connecting.pop(key, None)
                self._outbound[key] = connection
                for w in waiters:
                    w.callback(connection)

            def failed(failure):
                self._connecting.pop(key, None)
                for w in waiters:
                    w.errback(failure)

            waiting.addCallbacks(connected, failed)
        waiting.waiters.append(result)
        return result

    def close_connections(self) -> defer.Deferred:
        """
        Close every stream connection; fires once all are gone.
        """
        for waiting in list(self._connecting.values()):
            waiting.cancel()
        closing = []
        for connection in list(self.connections):
            if connection.transport is not None and not connection.closed:
                closing.append(connection.when_lost())
                connection.transport.loseConnection()
        return defer.DeferredList(closing)
