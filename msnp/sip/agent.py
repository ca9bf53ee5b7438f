"""
The SIP user agent of the edge: checks every incoming request (peer,
domain, Max-Forwards, Require), routes it to its dialog or to the handler
of its method, and builds and sends requests for the handlers.  Every
request gets a final response; a handler that fails answers 500.
"""

from __future__ import annotations

import os
from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.sip.dialog import DialogTable, new_call_id
from msnp.sip.grammar import Address, GrammarError, URI, display_name_part
from msnp.sip.message import Headers, Request, Response
from msnp.sip.peers import PeerTable
from msnp.sip.transaction import Hop, ServerTransaction, Timers, TransactionLayer, new_tag, response_to

log = Logger()

USER_AGENT = "msnp"
ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "INFO", "SUBSCRIBE", "NOTIFY")
# Methods we know and refuse (405), as against unknown ones (501).
REFUSED_METHODS = ("REGISTER", "PUBLISH", "REFER", "UPDATE", "PRACK")
MAX_LEARNED_CONTACTS = 10000


class SipAgent:
    """
    One edge: our domains, the peers, the transaction layer and the
    dialogs, with the presence and IM handlers plugged in by
    L{msnp.sip.edge.SipEdge}.
    """

    def __init__(self, clock, sender, domains: list[str], peers: PeerTable, timers: Timers = Timers()):
        self.clock = clock
        self.sender = sender
        self.domains = {domain.lower() for domain in domains}
        self.peers = peers
        self.layer = TransactionLayer(clock, sender, self._request_received, self._stray_response, timers)
        self.dialogs = DialogTable()
        # method → handler(request, transaction, source) for out-of-dialog requests
        self.handlers: dict = {}
        # Handlers asked, before 481, about in-dialog requests of no known
        # dialog (a NOTIFY that overtakes the 2xx to our SUBSCRIBE).
        self.orphan_handlers: list = []
        self.stray_response_handlers: list = []
        # Address of record -> the Contact its user last sent us, for
        # peers configured with route=contact.
        self.learned_contacts: dict[str, str] = {}

    @property
    def timers(self) -> Timers:
        return self.layer.timers

    def is_local(self, handle: str) -> bool:
        return handle.rpartition("@")[2].lower() in self.domains

    def contact(self, user: str, hop: Hop) -> str:
        """
        Our Contact for C{user} (the local part) towards C{hop}.
        """
        host, port = self.sender.sent_by(hop)
        params = "" if hop.transport == "udp" else f";transport={hop.transport}"
        return f"<sip:{user}@{host}:{port}{params}>"

    # Incoming requests

    def _request_received(self, request: Request, transaction: Optional[ServerTransaction], source: Hop) -> None:
        d = defer.maybeDeferred(self._dispatch, request, transaction, source)
        d.addErrback(self._failed, request, transaction)

    def _failed(self, failure: Failure, request: Request, transaction: Optional[ServerTransaction]) -> None:
        log.failure("SIP {method} handler failed", failure, method=request.method)
        if transaction is not None and not transaction.answered:
            transaction.respond(response_to(request, 500, to_tag=new_tag()))

    def respond(self, transaction: ServerTransaction, status: int, reason: str = "", headers=(), body: bytes = b"", to_tag=None):
        response = response_to(transaction.request, status, reason, to_tag=to_tag or new_tag())
        for name, value in headers:
            response.headers.add(name, value)
        response.headers.add("Server", USER_AGENT)
        response.body = body
        transaction.respond(response)
        return response

    @defer.inlineCallbacks
    def _dispatch(self, request: Request, transaction: Optional[ServerTransaction], source: Hop):
        if transaction is None:
            # ACK to a 2xx: its dialog's owner stops retransmitting.
            owner = self.dialogs.find(request)
            if owner is not None:
                owner.ack_received(request)
            return
        method = request.method
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None and int(max_forwards) == 0 and method != "OPTIONS":
            self.respond(transaction, 483)
            return
        required = request.headers.get_list("Require")
        if required and method != "CANCEL":
            self.respond(transaction, 420, headers=[("Unsupported", ", ".join(required))])
            return
        try:
            uri = URI.parse(request.uri)
            sender = request.from_
        except GrammarError:
            self.respond(transaction, 416 if ":" in request.uri else 400)
            return
        if uri.scheme not in ("sip", "sips"):
            self.respond(transaction, 416)
            return
        sender_domain = sender.uri.host if sender.uri is not None else ""
        admitted = yield self.peers.admits(sender_domain, source)
        if not admitted:
            log.info("SIP {method} from {sender} via {source} refused: not a configured peer", method=method, sender=sender.uri, source=source)
            self.respond(transaction, 403, "Forbidden (not a federated peer)")
            return
        self._learn_contact(sender, request)
        if request.to.tag is not None:
            owner = self.dialogs.find(request)
            if owner is None:
                for handler in self.orphan_handlers:
                    if handler(request, transaction, source):
                        return
                self.respond(transaction, 481)
                return
            yield owner.request_in_dialog(request, transaction, source)
            return
        if method == "OPTIONS":
            self.respond(transaction, 200, headers=self.capabilities())
            return
        if method in REFUSED_METHODS:
            self.respond(transaction, 405, headers=[("Allow", ", ".join(ALLOWED_METHODS))])
            return
        handler = self.handlers.get(method)
        if handler is None:
            if method in ALLOWED_METHODS:
                # BYE, INFO, NOTIFY... outside a dialog
                self.respond(transaction, 481)
            else:
                self.respond(transaction, 501, headers=[("Allow", ", ".join(ALLOWED_METHODS))])
            return
        if uri.host not in self.domains:
            self.respond(transaction, 404, "Not Found (domain not served here)")
            return
        yield handler(request, transaction, source)

    def _learn_contact(self, sender: Address, request: Request) -> None:
        peer = self.peers.peer_for(sender.uri.host) if sender.uri is not None else None
        if peer is None or not peer.contact_routing:
            return
        contacts = request.headers.get_list("Contact")
        if not contacts:
            return
        try:
            contact = Address.parse(contacts[0]).uri
        except GrammarError:
            return
        if contact is None or contact.scheme not in ("sip", "sips"):
            return
        learned = self.learned_contacts
        if len(learned) >= MAX_LEARNED_CONTACTS and sender.uri.address_of_record not in learned:
            learned.pop(next(iter(learned)))
        learned[sender.uri.address_of_record] = str(contact)

    def capabilities(self) -> list[tuple[str, str]]:
        return [
            ("Allow", ", ".join(ALLOWED_METHODS)),
            ("Accept", "application/sdp, text/plain, message/cpim, application/im-iscomposing+xml"),
            ("Allow-Events", "presence"),
        ]

    def _stray_response(self, response: Response) -> None:
        for handler in self.stray_response_handlers:
            handler(response)

    # Outgoing requests

    def new_request(
        self, method: str, sender: str, recipient: str, hop: Hop, call_id: Optional[str] = None, sender_name: str = ""
    ) -> Request:
        """
        An out-of-dialog request from local C{sender} to C{recipient}
        (both C{user@domain}), with a new From tag and Call-ID, and
        C{sender_name} as the From display name.
        """
        headers = Headers()
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{display_name_part(sender_name)}<sip:{sender}>;tag={new_tag()}")
        headers.add("To", f"<sip:{recipient}>")
        headers.add("Call-ID", call_id or new_call_id(self.sender.sent_by(hop)[0]))
        headers.add("CSeq", f"1 {method}")
        headers.add("User-Agent", USER_AGENT)
        target = f"sip:{recipient}"
        peer = self.peers.peer_for(recipient.rpartition("@")[2])
        if peer is not None and peer.contact_routing:
            target = self.learned_contacts.get(recipient, target)
        return Request(method, target, headers)

    @defer.inlineCallbacks
    def route(self, recipient: str):
        """
        Hops for a federated handle's domain, best first ([] if none).
        """
        hops = yield self.peers.route(recipient.rpartition("@")[2])
        return hops

    def send(self, request: Request, hop: Hop) -> defer.Deferred:
        """
        Send C{request} in a client transaction; Deferred final response.
        """
        return self.layer.request(request, hop).result

    def close(self) -> None:
        self.layer.close()


def random_id() -> str:
    return os.urandom(8).hex()
