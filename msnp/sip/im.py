"""
Instant messages both ways: MESSAGE in pager mode (RFC 3428), OCS-style
IM sessions (INVITE with ``m=message ... sip null``, in-dialog MESSAGE,
INFO KeyboardActivity for typing, BYE), and typing as RFC 3994
isComposing (given up for a contact that answers it with 415).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Optional
from xml.etree import ElementTree

from twisted.internet import defer
from twisted.logger import Logger

from msnp.sip.dialog import Dialog
from msnp.sip.grammar import GrammarError, parse_media_type, parse_params
from msnp.sip.link import DeliveryFailed, IMessengerLink, Left, Text, Typing
from msnp.sip.message import Request, Response
from msnp.sip.transaction import Hop, ServerTransaction, new_tag

log = Logger()

TEXT = "text/plain"
ISCOMPOSING = "application/im-iscomposing+xml"
CPIM = "message/cpim"
MS_XML = "application/xml"
ACCEPTED = (TEXT, ISCOMPOSING, CPIM)
KEYBOARD_ACTIVITY = b'<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>'
ISCOMPOSING_ACTIVE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
    b"<state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>\n"
)
MAX_TEXT_BYTES = 8 * 1024
# Seconds an IM session may stay silent before we end it.
SESSION_IDLE = 600.0


class Unreadable(Exception):
    def __init__(self, status: int, reason: str = ""):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _text(body: bytes, params: dict) -> str:
    charset = (params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii"):
        raise Unreadable(415, "charset")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(400, "body is not UTF-8")
    if len(body) > MAX_TEXT_BYTES:
        raise Unreadable(413, "message too long")
    return text


def read_body(content_type: Optional[str], body: bytes):
    """
    The event an IM body carries: L{Text}, L{Typing}, or None (an idle
    indication: nothing to pass on).  Raises L{Unreadable}.
    """
    if content_type is None:
        if not body:
            return None
        raise Unreadable(415, "no Content-Type")
    try:
        kind, params = parse_media_type(content_type)
    except GrammarError:
        raise Unreadable(415, "bad Content-Type")
    if kind == TEXT:
        return Text(_text(body, params))
    if kind == ISCOMPOSING:
        return Typing() if composing_state(body) == "active" else None
    if kind == CPIM:
        return read_cpim(body)
    raise Unreadable(415, kind)


def composing_state(body: bytes) -> Optional[str]:
    try:
        root = ElementTree.fromstring(body) if b"<!ENTITY" not in body else None
    except ElementTree.ParseError:
        raise Unreadable(400, "bad isComposing document")
    if root is None:
        raise Unreadable(400, "bad isComposing document")
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "state":
            return (element.text or "").strip().lower()
    raise Unreadable(400, "isComposing without state")


def read_cpim(body: bytes):
    """
    message/cpim (RFC 3862): CPIM headers, an empty line, the inner MIME
    headers, an empty line, the inner body.
    """
    parts = re.split(rb"\r?\n\r?\n", body, maxsplit=2)
    if len(parts) < 3:
        raise Unreadable(400, "bad message/cpim")
    inner_type = None
    for line in parts[1].splitlines():
        name, _, value = line.decode("utf-8", "replace").partition(":")
        if name.strip().lower() == "content-type":
            inner_type = value.strip()
    if inner_type is None or inner_type.split(";")[0].strip().lower() == CPIM:
        raise Unreadable(415, "message/cpim without a usable inner type")
    return read_body(inner_type, parts[2])


def is_keyboard_activity(body: bytes) -> bool:
    try:
        root = ElementTree.fromstring(body) if b"<!ENTITY" not in body else None
    except ElementTree.ParseError:
        return False
    return root is not None and root.tag == "KeyboardActivity"


def sdp_offer_accepts(content_type: Optional[str], body: bytes) -> bool:
    """
    Whether an INVITE's SDP offers a SIP-signalled text session
    (``m=message ... sip ...``); an INVITE without a body is taken as one.
    """
    if not body:
        return True
    if content_type != "application/sdp":
        return False
    media = [line for line in body.decode("utf-8", "replace").splitlines() if line.startswith("m=")]
    return any(line.split()[0] == "m=message" and " sip " in f" {line} " for line in media)


def sdp_answer(host: str, port: int) -> bytes:
    return (
        "v=0\r\n"
        f"o=- 0 0 IN IP4 {host}\r\n"
        "s=session\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=message {port} sip null\r\n"
        "a=accept-types:text/plain application/im-iscomposing+xml\r\n"
    ).encode("ascii")


def first_message(request: Request):
    """
    The first message riding in an INVITE's C{ms-text-format} header
    (base64 in its C{ms-body} parameter), or None.
    """
    value = request.headers.get("ms-text-format")
    if not value:
        return None
    kind, _, params_text = value.partition(";")
    try:
        params = parse_params(";" + params_text) if params_text.strip() else {}
    except GrammarError:
        return None
    encoded = params.get("ms-body")
    if not encoded:
        return None
    try:
        body = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        return read_body(kind.strip(), body)
    except Unreadable:
        return None


class Session:
    """
    One INVITE-started IM session between a local and a federated user.
    """

    def __init__(self, im: "InstantMessaging", dialog: Dialog, local: str, remote: str, hop: Hop, incoming: bool):
        self.im = im
        self.dialog = dialog
        self.local = local
        self.remote = remote
        self.hop = hop
        self.incoming = incoming
        self.confirmed = not incoming
        self.ended = False
        self.typing_by_info = True
        self._answer: Optional[Response] = None
        self._resend = None
        self._resend_interval = 0.0
        self._idle = None

    @property
    def key(self):
        return (self.local, self.remote)

    def request_in_dialog(self, request: Request, transaction: ServerTransaction, source: Hop):
        return self.im._in_session(self, request, transaction, source)

    def ack_received(self, request: Request) -> None:
        self.confirmed = True
        self._stop_resending()

    # 2xx retransmission until the ACK (RFC 3261 §13.3.1.4)

    def answered(self, response: Response) -> None:
        self._answer = response
        if self.hop.reliable:
            return
        self._resend_interval = self.im.agent.timers.t1
        self._resend_started = self.im.agent.clock.seconds()
        self._resend = self.im.agent.clock.callLater(self._resend_interval, self._resend_answer)

    def _resend_answer(self) -> None:
        self._resend = None
        agent = self.im.agent
        if self.confirmed or self.ended:
            return
        if agent.clock.seconds() - self._resend_started >= agent.timers.timeout:
            log.info("SIP IM session with {remote}: no ACK, ended", remote=self.remote)
            self.im.end(self, send_bye=True)
            return
        agent.layer.send(self._answer, self.hop)
        self._resend_interval = min(self._resend_interval * 2, agent.timers.t2)
        self._resend = agent.clock.callLater(self._resend_interval, self._resend_answer)

    def _stop_resending(self) -> None:
        if self._resend is not None and self._resend.active():
            self._resend.cancel()
        self._resend = None

    def touch(self) -> None:
        clock = self.im.agent.clock
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.im.session_idle)
        else:
            self._idle = clock.callLater(self.im.session_idle, self._idled)

    def _idled(self) -> None:
        self._idle = None
        self.im.end(self, send_bye=True, tell_local=True)

    def cancel_timers(self) -> None:
        self._stop_resending()
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None


class InstantMessaging:
    def __init__(self, agent, link: IMessengerLink, session_idle: float = SESSION_IDLE):
        self.agent = agent
        self.link = link
        self.session_idle = session_idle
        self.sessions: dict[tuple, Session] = {}
        # Federated users who answered isComposing with 415.
        self.no_typing: set[str] = set()
        agent.handlers["MESSAGE"] = self.message_received
        agent.handlers["INVITE"] = self.invite_received
        agent.stray_response_handlers.append(self._stray_2xx)

    # Incoming

    def _deliver(self, sender: str, recipient: str, event, transaction: ServerTransaction, to_tag=None) -> defer.Deferred:
        agent = self.agent
        if event is None:
            agent.respond(transaction, 200, to_tag=to_tag)
            return defer.succeed(None)
        d = defer.maybeDeferred(self.link.deliver, sender, recipient, event)

        def delivered(_):
            agent.respond(transaction, 200, to_tag=to_tag)

        def failed(failure):
            failure.trap(DeliveryFailed)
            agent.respond(transaction, failure.value.status, failure.value.reason, to_tag=to_tag)

        return d.addCallbacks(delivered, failed)

    def _read(self, request: Request, transaction: ServerTransaction, to_tag=None):
        try:
            return True, read_body(request.headers.get("Content-Type"), request.body)
        except Unreadable as error:
            headers = [("Accept", ", ".join(ACCEPTED))] if error.status == 415 else []
            headers.append(("Warning", f'399 msnp "{error.reason}"'))
            self.agent.respond(transaction, error.status, headers=headers, to_tag=to_tag)
            return False, None

    @defer.inlineCallbacks
    def message_received(self, request: Request, transaction: ServerTransaction, source: Hop):
        sender = request.from_.uri.address_of_record
        recipient = _aor(request.uri)
        ok, event = self._read(request, transaction)
        if not ok:
            return
        exists = yield self.link.account_exists(recipient)
        if not exists:
            self.agent.respond(transaction, 404)
            return
        yield self._deliver(sender, recipient, event, transaction)

    @defer.inlineCallbacks
    def invite_received(self, request: Request, transaction: ServerTransaction, source: Hop):
        agent = self.agent
        sender = request.from_.uri.address_of_record
        recipient = _aor(request.uri)
        if not sdp_offer_accepts(request.content_type, request.body):
            agent.respond(transaction, 488, headers=[("Warning", '304 msnp "only m=message sessions"')])
            return
        if not request.headers.get_list("Contact"):
            agent.respond(transaction, 400, "Missing Contact")
            return
        exists = yield self.link.account_exists(recipient)
        if not exists:
            agent.respond(transaction, 404)
            return
        tag = new_tag()
        event = first_message(request)
        if event is not None:
            try:
                yield self.link.deliver(sender, recipient, event)
            except DeliveryFailed as failure:
                agent.respond(transaction, failure.status, failure.reason, to_tag=tag)
                return
        dialog = Dialog.as_uas(request, tag, source)
        session = Session(self, dialog, recipient, sender, source, incoming=True)
        previous = self.sessions.get(session.key)
        if previous is not None:
            self.end(previous, send_bye=True)
        self.sessions[session.key] = session
        agent.dialogs.add(dialog, session)
        host, port = agent.sender.sent_by(source)
        response = agent.respond(
            transaction,
            200,
            to_tag=tag,
            headers=[("Contact", agent.contact(recipient.partition("@")[0], source)), ("Content-Type", "application/sdp")],
            body=sdp_answer(host, port),
        )
        session.answered(response)
        session.touch()

    @defer.inlineCallbacks
    def _in_session(self, session: Session, request: Request, transaction: ServerTransaction, source: Hop):
        agent = self.agent
        dialog = session.dialog
        if not dialog.check_remote_cseq(request):
            agent.respond(transaction, 500, "CSeq out of order")
            return
        session.touch()
        method = request.method
        if method == "BYE":
            agent.respond(transaction, 200, to_tag=dialog.local.tag)
            self.end(session, send_bye=False, tell_local=True)
            return
        if method == "MESSAGE":
            ok, event = self._read(request, transaction, dialog.local.tag)
            if ok:
                yield self._deliver(session.remote, session.local, event, transaction, dialog.local.tag)
            return
        if method == "INFO":
            if is_keyboard_activity(request.body):
                yield self._deliver(session.remote, session.local, Typing(), transaction, dialog.local.tag)
            elif not request.body:
                agent.respond(transaction, 200, to_tag=dialog.local.tag)
            else:
                agent.respond(transaction, 415, headers=[("Accept", MS_XML)], to_tag=dialog.local.tag)
            return
        if method == "INVITE":
            # A re-INVITE refreshes the target; the session stays as it is.
            dialog.update_target(request)
            host, port = agent.sender.sent_by(source)
            response = agent.respond(
                transaction,
                200,
                to_tag=dialog.local.tag,
                headers=[("Contact", agent.contact(session.local.partition("@")[0], source)), ("Content-Type", "application/sdp")],
                body=sdp_answer(host, port),
            )
            session.confirmed = False
            session.answered(response)
            return
        agent.respond(transaction, 405, headers=[("Allow", "MESSAGE, INFO, BYE, ACK, INVITE")], to_tag=dialog.local.tag)

    def end(self, session: Session, send_bye: bool, tell_local: bool = False) -> None:
        if session.ended:
            return
        session.ended = True
        session.cancel_timers()
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        self.agent.dialogs.remove(session.dialog)
        if send_bye:
            request = session.dialog.request("BYE")
            self.agent.send(request, self._hop(session))
        if tell_local:
            d = defer.maybeDeferred(self.link.deliver, session.remote, session.local, Left())
            d.addErrback(lambda failure: failure.trap(DeliveryFailed))

    def _hop(self, session: Session) -> Hop:
        source = session.hop
        if source.reliable and not getattr(source.connection, "closed", True):
            return source
        return session.dialog.next_hop(source.transport) or source

    def _stray_2xx(self, response: Response) -> None:
        """
        A retransmitted 2xx to our INVITE: ACK it again.
        """
        for session in self.sessions.values():
            if not session.incoming and session.dialog.call_id == response.call_id:
                ack = session.dialog.request("ACK", cseq=response.cseq.number)
                self.agent.layer.request(ack, self._hop(session))
                return

    # Outgoing

    @defer.inlineCallbacks
    def send(self, sender: str, recipient: str, event):
        """
        Deliver an event from local C{sender} to federated C{recipient}:
        in their IM session if one is open, else pager mode (or a new
        session, for peers that want sessions or refuse pager mode).
        """
        session = self.sessions.get((sender, recipient))
        if isinstance(event, Left):
            if session is not None:
                self.end(session, send_bye=True)
            return None
        if session is not None:
            response = yield self._send_in_session(session, event)
        else:
            peer = self.agent.peers.peer_for(recipient.rpartition("@")[2])
            if peer is not None and peer.session_im:
                response = yield self._send_new_session(sender, recipient, event)
            else:
                response = yield self._send_pager(sender, recipient, event)
                if response is not None and response.status in (405, 501) and isinstance(event, Text):
                    response = yield self._send_new_session(sender, recipient, event)
        if response is None:
            return None
        if response.status >= 300:
            raise DeliveryFailed(response.status, response.reason)
        return None

    def _body(self, event, in_session: bool, session: Optional[Session] = None):
        if isinstance(event, Text):
            return "MESSAGE", "text/plain;charset=UTF-8", event.text.encode("utf-8")
        if in_session and session is not None and session.typing_by_info:
            return "INFO", MS_XML, KEYBOARD_ACTIVITY
        return "MESSAGE", ISCOMPOSING, ISCOMPOSING_ACTIVE

    @defer.inlineCallbacks
    def _send_pager(self, sender: str, recipient: str, event):
        if isinstance(event, Typing) and recipient in self.no_typing:
            return None
        hops = yield self.agent.route(recipient)
        if not hops:
            raise DeliveryFailed(404, "no route to the peer")
        method, content_type, body = self._body(event, in_session=False)
        request = self.agent.new_request(method, sender, recipient, hops[0])
        request.headers.add("Content-Type", content_type)
        request.body = body
        response = yield self.agent.send(request, hops[0])
        if isinstance(event, Typing):
            if response.status == 415:
                # RFC 3994 §4: this peer does not do typing; stop sending it.
                self.no_typing.add(recipient)
            return None
        return response

    @defer.inlineCallbacks
    def _send_in_session(self, session: Session, event):
        method, content_type, body = self._body(event, in_session=True, session=session)
        request = session.dialog.request(method)
        request.headers.add("Content-Type", content_type)
        request.body = body
        session.touch()
        response = yield self.agent.send(request, self._hop(session))
        if response.status == 481:
            self.end(session, send_bye=False)
            if isinstance(event, Text):
                # The peer forgot the session: start over.
                response = yield self.send(session.local, session.remote, event)
                return None
        if isinstance(event, Typing):
            if response.status in (415, 501, 405) and session.typing_by_info:
                session.typing_by_info = False
            return None
        return response

    @defer.inlineCallbacks
    def _send_new_session(self, sender: str, recipient: str, event):
        agent = self.agent
        hops = yield agent.route(recipient)
        if not hops:
            raise DeliveryFailed(404, "no route to the peer")
        hop = hops[0]
        request = agent.new_request("INVITE", sender, recipient, hop)
        request.headers.add("Contact", agent.contact(sender.partition("@")[0], hop))
        request.headers.add("Content-Type", "application/sdp")
        host, port = agent.sender.sent_by(hop)
        request.body = sdp_answer(host, port)
        response = yield agent.send(request, hop)
        if not 200 <= response.status < 300:
            return response
        try:
            dialog = Dialog.as_uac(request, response, hop)
        except GrammarError:
            return Response(502, "Bad Gateway")
        session = Session(self, dialog, sender, recipient, hop, incoming=False)
        previous = self.sessions.get(session.key)
        if previous is not None:
            self.end(previous, send_bye=True)
        self.sessions[session.key] = session
        agent.dialogs.add(dialog, session)
        agent.layer.request(dialog.request("ACK", cseq=request.cseq.number), self._hop(session))
        session.touch()
        if isinstance(event, Typing):
            return None
        response = yield self._send_in_session(session, event)
        return response

    def close(self) -> list:
        sent = []
        for session in list(self.sessions.values()):
            session.cancel_timers()
            if not session.ended:
                session.ended = True
                self.agent.dialogs.remove(session.dialog)
                sent.append(self.agent.send(session.dialog.request("BYE"), self._hop(session)))
        self.sessions.clear()
        return sent


def _aor(uri_text: str) -> str:
    from msnp.sip.grammar import URI

    return URI.parse(uri_text).address_of_record
