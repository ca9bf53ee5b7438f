"""
SIP transactions (RFC 3261 §17): client and server, INVITE and non-INVITE,
with the retransmission and timeout timers on unreliable transports
(T1/T2/T4, Timers A-K).  No sockets here: messages go out through a
L{Sender}, time comes from an C{IReactorTime} (a C{task.Clock} in tests).

Client transactions hand their final response (or a 408/503 made up for a
timeout or a transport failure, §8.1.3.1) to a Deferred.  Server
transactions take the transaction user's responses and answer
retransmitted requests with the last one.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Protocol

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from msnp.sip.grammar import MAGIC_COOKIE, GrammarError, Via, format_hostport
from msnp.sip.message import Headers, Message, Request, Response

log = Logger()

# RFC 3261 §18.1.1: a request this close to the MTU goes over a congestion
# controlled transport.
UDP_SIZE_LIMIT = 1300


@attrs.frozen
class Timers:
    """
    The protocol's time constants (§17.1.1.1, Table 4), in seconds.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """
        64·T1: Timers B, F, H and J.
        """
        return 64 * self.t1


@attrs.frozen
class Hop:
    """
    Where a message goes to or came from: transport (udp, tcp, tls), host
    and port, and for streams the connection it arrived on, if any.
    C{certificate_names} are the names a TLS peer's certificate proved.
    """

    transport: str
    host: str
    port: int
    connection: object = attrs.field(default=None, eq=False, hash=False)
    certificate_names: tuple = attrs.field(default=(), eq=False, hash=False)

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __str__(self) -> str:
        return f"{self.transport}:{format_hostport(self.host, self.port)}"


class Sender(Protocol):
    def send(self, message: Message, hop: Hop) -> Deferred:
        """
        Put C{message} on the wire towards C{hop}; fails when it cannot.
        """

    def sent_by(self, hop: Hop) -> tuple[str, int]:
        """
        The host and port this side is reached at over C{hop}'s transport,
        for the Via of a request sent there.
        """


def new_branch() -> str:
    return MAGIC_COOKIE + os.urandom(10).hex()


def response_to(request: Request, status: int, reason: str = "", to_tag: Optional[str] = None) -> Response:
    """
    A response carrying the request's Via, From, To (with C{to_tag} added
    when it has none), Call-ID and CSeq (§8.2.6.2).
    """
    headers = Headers()
    for value in request.headers.get_all("Via"):
        headers.add("Via", value)
    headers.add("From", request.headers.get("From"))
    to = request.headers.get("To")
    if to_tag is not None and status > 100:
        address = request.to
        if address.tag is None:
            to = str(address.with_tag(to_tag))
    headers.add("To", to)
    headers.add("Call-ID", request.headers.get("Call-ID"))
    headers.add("CSeq", request.headers.get("CSeq"))
    return Response(status, reason, headers)


def response_hop(request: Request, source: Hop) -> Hop:
    """
    Where a response to C{request} goes (§18.2.2, RFC 3581): back on the
    connection it came on; over UDP to the source address, at the source
    port when the top Via asked for C{rport}, else at its sent-by port.
    """
    via = request.top_via
    if source.reliable:
        return source
    port = source.port if "rport" in via.params else via.sent_by[1]
    return Hop(source.transport, source.host, port)


def stamp_received(request: Request, source: Hop) -> None:
    """
    Add C{received} and fill C{rport} in the top Via (§18.2.1, RFC 3581),
    so the response finds its way back through NAT.
    """
    values = request.headers.get_list("Via")
    via = Via.parse(values[0])
    params = dict(via.params)
    if via.host != source.host:
        params["received"] = source.host
    if "rport" in params:
        params["received"] = source.host
        params["rport"] = str(source.port)
    request.headers.replace_first_element("Via", str(attrs.evolve(via, params=params)))


class _Timer:
    """
    One named timer of a transaction, re-armed or cancelled by name.
    """

    def __init__(self, clock):
        self._clock = clock
        self._calls: dict[str, object] = {}

    def start(self, name: str, delay: float, callback: Callable, *args) -> None:
        self.stop(name)

        def fire():
            self._calls.pop(name, None)
            callback(*args)

        self._calls[name] = self._clock.callLater(delay, fire)

    def stop(self, name: str) -> None:
        call = self._calls.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def stop_all(self) -> None:
        for name in list(self._calls):
            self.stop(name)


class ClientTransaction:
    """
    A request we sent and its answer: C{result} fires with the final
    response.  C{on_provisional} (if set) sees each 1xx.
    """

    def __init__(self, layer: "TransactionLayer", request: Request, hop: Hop):
        self.layer = layer
        self.request = request
        self.hop = hop
        self.invite = request.method == "INVITE"
        self.branch = request.top_via.branch
        self.key = (self.branch, "INVITE" if request.method == "ACK" else request.method)
        self.state = "calling" if self.invite else "trying"
        self.result: Deferred = Deferred()
        self.on_provisional: Optional[Callable[[Response], None]] = None
        self._timers = _Timer(layer.clock)
        self._interval = layer.timers.t1
        self._ack: Optional[Request] = None

    def start(self) -> None:
        timers = self.layer.timers
        # Timers first: a transport that fails at once ends the transaction.
        if not self.hop.reliable:
            self._timers.start("retransmit", self._interval, self._retransmit)
        self._timers.start("timeout", timers.timeout, self._timed_out)
        self._transmit()

    def _transmit(self, message: Optional[Message] = None) -> None:
        d = self.layer.send(message or self.request, self.hop)
        d.addErrback(self._transport_failed)

    def _retransmit(self) -> None:
        timers = self.layer.timers
        if self.state in ("calling", "trying"):
            self._transmit()
            self._interval = self._interval * 2 if self.invite else min(self._interval * 2, timers.t2)
        elif self.state == "proceeding" and not self.invite:
            self._transmit()
            self._interval = timers.t2
        else:
            return
        self._timers.start("retransmit", self._interval, self._retransmit)

    def _timed_out(self) -> None:
        if self.state in ("calling", "trying", "proceeding"):
            self._finish(self._made_up(408, "Request Timeout"))

    def _transport_failed(self, failure) -> None:
        log.info("SIP {method} to {hop} failed: {error}", method=self.request.method, hop=self.hop, error=failure.getErrorMessage())
        if self.state in ("calling", "trying", "proceeding"):
            self._finish(self._made_up(503, "Service Unavailable"))

    def _made_up(self, status: int, reason: str) -> Response:
        response = response_to(self.request, status, reason)
        response.made_up = True
        return response

    def _finish(self, response: Response) -> None:
        self.state = "terminated"
        self._timers.stop_all()
        self.layer._forget_client(self)
        if not self.result.called:
            self.result.callback(response)

    def response_received(self, response: Response) -> None:
        timers = self.layer.timers
        if response.status < 200:
            if self.state in ("calling", "trying"):
                self.state = "proceeding"
                if self.invite:
                    self._timers.stop("retransmit")
            if self.on_provisional is not None and self.state == "proceeding":
                self.on_provisional(response)
            return
        if self.state == "completed":
            if self.invite and self._ack is not None:
                self._transmit(self._ack)
            return
        if self.state == "terminated":
            return
        self._timers.stop_all()
        if self.invite and response.status < 300:
            # The transaction user ACKs a 2xx itself (§13.2.2.4).
            self._finish(response)
            return
        if self.invite:
            self._ack = self._ack_for(response)
            self._transmit(self._ack)
        self.state = "completed"
        linger = 0.0 if self.hop.reliable or self.layer.closed else (32.0 if self.invite else timers.t4)
        if linger:
            # Timers before the result: its callbacks may close the layer.
            self._timers.start("linger", linger, self._finish, response)
            if not self.result.called:
                self.result.callback(response)
        else:
            self._finish(response)

    def _ack_for(self, response: Response) -> Request:
        """
        The ACK of a non-2xx final response (§17.1.1.3).
        """
        request = self.request
        headers = Headers()
        headers.add("Via", request.headers.get_list("Via")[0])
        for route in request.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", request.headers.get("From"))
        headers.add("To", response.headers.get("To"))
        headers.add("Call-ID", request.call_id)
        headers.add("CSeq", f"{request.cseq.number} ACK")
        return Request("ACK", request.uri, headers)

    def cancel_timers(self) -> None:
        self._timers.stop_all()


class ServerTransaction:
    """
    A request we received: the transaction user answers with L{respond};
    retransmissions of the request are answered with the last response.
    """

    def __init__(self, layer: "TransactionLayer", request: Request, source: Hop, key):
        self.layer = layer
        self.request = request
        self.source = source
        self.key = key
        self.invite = request.method == "INVITE"
        self.hop = response_hop(request, source)
        self.state = "trying"
        self.last_response: Optional[Response] = None
        self._timers = _Timer(layer.clock)
        self._interval = layer.timers.t1
        self.on_cancel: Optional[Callable[[], None]] = None

    @property
    def answered(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def respond(self, response: Response) -> None:
        if self.state in ("completed", "confirmed", "terminated"):
            return
        if self.layer.closed:
            self.layer.send(response, self.hop)
            self.state = "terminated"
            return
        timers = self.layer.timers
        self.last_response = response
        self.layer.send(response, self.hop).addErrback(self._transport_failed)
        if response.status < 200:
            self.state = "proceeding"
            return
        if self.invite and response.status < 300:
            # 2xx to INVITE: the UAS core retransmits it until the ACK (§13.3.1.4).
            self._terminate()
            return
        self.state = "completed"
        if self.invite:
            if not self.hop.reliable:
                self._timers.start("retransmit", self._interval, self._retransmit)
            self._timers.start("timeout", timers.timeout, self._terminate)
        elif self.hop.reliable:
            self._terminate()
        else:
            self._timers.start("linger", timers.timeout, self._terminate)

    def _retransmit(self) -> None:
        if self.state != "completed":
            return
        self.layer.send(self.last_response, self.hop).addErrback(self._transport_failed)
        self._interval = min(self._interval * 2, self.layer.timers.t2)
        self._timers.start("retransmit", self._interval, self._retransmit)

    def _transport_failed(self, failure) -> None:
        log.info("SIP response to {hop} failed: {error}", hop=self.hop, error=failure.getErrorMessage())
        self._terminate()

    def request_retransmitted(self) -> None:
        if self.last_response is not None and self.state in ("proceeding", "completed"):
            self.layer.send(self.last_response, self.hop).addErrback(self._transport_failed)

    def ack_received(self) -> None:
        if self.invite and self.state == "completed":
            self.state = "confirmed"
            self._timers.stop_all()
            linger = 0.0 if self.hop.reliable else self.layer.timers.t4
            if linger:
                self._timers.start("linger", linger, self._terminate)
            else:
                self._terminate()

    def _terminate(self) -> None:
        self.state = "terminated"
        self._timers.stop_all()
        self.layer._forget_server(self)

    def cancel_timers(self) -> None:
        self._timers.stop_all()


class TransactionLayer:
    """
    Matches messages to transactions (§17.1.3, §17.2.3) and hands the rest
    up: new requests (and ACKs for 2xx, which have no transaction) to
    C{request_received(request, transaction_or_None, source)}, and 2xx
    responses to INVITE that no longer match (retransmissions the UAC core
    must ACK again) to C{stray_response(response)}.
    """

    def __init__(self, clock, sender: Sender, request_received, stray_response=None, timers: Timers = Timers()):
        self.clock = clock
        self.sender = sender
        self.timers = timers
        self._request_received = request_received
        self._stray_response = stray_response
        self._clients: dict = {}
        self._servers: dict = {}
        self.closed = False

    def send(self, message: Message, hop: Hop) -> Deferred:
        return maybeDeferred(self.sender.send, message, hop)

    # Client side

    def request(self, request: Request, hop: Hop) -> ClientTransaction:
        """
        Send C{request} (without a Via: one is added here) as a new client
        transaction towards C{hop}.
        """
        if hop.transport == "udp" and len(request.to_bytes()) + 200 > UDP_SIZE_LIMIT:
            hop = attrs.evolve(hop, transport="tcp", connection=None)
        host, port = self.sender.sent_by(hop)
        via = Via(hop.transport.upper(), host, port, {"branch": new_branch(), "rport": None})
        request.headers.remove("Via")
        fields = list(request.headers)
        request.headers = Headers([("Via", str(via))] + fields)
        transaction = ClientTransaction(self, request, hop)
        if self.closed:
            transaction.state = "terminated"
            transaction.result.callback(transaction._made_up(503, "Service Unavailable"))
            return transaction
        if request.method == "ACK":
            # An ACK for a 2xx is sent once, outside any transaction.
            self.send(request, hop)
            transaction.state = "terminated"
            transaction.result.callback(None)
            return transaction
        self._clients[transaction.key] = transaction
        transaction.start()
        return transaction

    def _forget_client(self, transaction: ClientTransaction) -> None:
        if self._clients.get(transaction.key) is transaction:
            del self._clients[transaction.key]

    # Server side

    def _server_key(self, request: Request):
        via = request.top_via
        method = "INVITE" if request.method == "ACK" else request.method
        branch = via.branch or ""
        if branch.startswith(MAGIC_COOKIE):
            return ("3261", branch, via.sent_by, method)
        # RFC 2543 peers: match on the request's identity instead (§17.2.3).
        return ("2543", request.uri, request.to.tag, request.from_.tag, request.call_id, request.cseq.number, str(via), method)

    def _forget_server(self, transaction: ServerTransaction) -> None:
        if self._servers.get(transaction.key) is transaction:
            del self._servers[transaction.key]

    def find_server(self, request: Request, method: str) -> Optional[ServerTransaction]:
        key = self._server_key(request)
        return self._servers.get(key[:-1] + (method,))

    # Incoming

    def message_received(self, message: Message, source: Hop) -> None:
        try:
            if isinstance(message, Response):
                self._response_received(message)
            else:
                self._incoming_request(message, source)
        except GrammarError as error:
            log.info("SIP message from {source} dropped: {error}", source=source, error=error)

    def _response_received(self, response: Response) -> None:
        via = response.top_via
        key = (via.branch, response.cseq.method if response.cseq.method != "ACK" else "INVITE")
        transaction = self._clients.get(key)
        if transaction is not None:
            transaction.response_received(response)
        elif response.cseq.method == "INVITE" and 200 <= response.status < 300 and self._stray_response:
            self._stray_response(response)

    def _incoming_request(self, request: Request, source: Hop) -> None:
        stamp_received(request, source)
        key = self._server_key(request)
        existing = self._servers.get(key)
        if request.method == "ACK":
            if existing is not None and existing.invite and not existing.state == "terminated":
                existing.ack_received()
            else:
                self._request_received(request, None, source)
            return
        if existing is not None:
            existing.request_retransmitted()
            return
        transaction = ServerTransaction(self, request, source, key)
        self._servers[key] = transaction
        if request.method == "CANCEL":
            self._cancel(transaction)
            return
        if transaction.invite:
            transaction.respond(response_to(request, 100))
        self._request_received(request, transaction, source)

    def _cancel(self, transaction: ServerTransaction) -> None:
        """
        CANCEL (§9.2): 200 when the INVITE it names is known (and 487 to
        that INVITE if still unanswered), else 481.
        """
        request = transaction.request
        target = self._servers.get(transaction.key[:-1] + ("INVITE",))
        if target is None:
            transaction.respond(response_to(request, 481))
            return
        transaction.respond(response_to(request, 200, to_tag=new_tag()))
        if not target.answered:
            if target.on_cancel is not None:
                target.on_cancel()
            target.respond(response_to(target.request, 487, to_tag=new_tag()))

    def close(self) -> None:
        """
        Stop every timer (on shutdown); pending client transactions fail
        with 503.
        """
        self.closed = True
        for transaction in list(self._servers.values()):
            transaction.cancel_timers()
        self._servers.clear()
        for transaction in list(self._clients.values()):
            transaction.cancel_timers()
            if not transaction.result.called:
                transaction.result.callback(transaction._made_up(503, "Service Unavailable"))
        self._clients.clear()


def new_tag() -> str:
    return os.urandom(6).hex()
