"""
Offline messages (OIM) for MSNP13+ clients, over the core's
L{msnp.core.offline.OfflineMessages}:

 - C{/OimWS/oim.asmx} Store2: keep a message, once the sender has answered
   the lock-key challenge (the CHL algorithm over a challenge this server
   issued, with the client's product key);
 - C{/rsi/rsi.asmx}: GetMetadata, GetMessage and DeleteMessages for the
   recipient, who learns of messages through the C{Mail-Data} notices the
   notification server sends (rendered here);
 - the message texts of MSNP18's C{UUM}.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import email.parser
import secrets
import time
from typing import Optional
from xml.sax.saxutils import escape

from msnp.core import errors as core_errors
from msnp.msn import challenge, safexml, wire
from msnp.msn.soap import SOAPFault, SOAPService, with_envelope

NS_OIM_2006 = "http://messenger.live.com/ws/2006/09/oim/"
NS_OIM_2004 = "http://messenger.msn.com/ws/2004/09/oim/"
NS_RSI = "http://www.hotmail.msn.com/ws/2004/09/oim/rsi"
# Past this many messages the notice says "too-large" and the client asks
# rsi.asmx GetMetadata for the list.
NOTICE_LIMIT = 25
OIM_FOLDER = "00000000-0000-0000-0000-000000000009"
CHALLENGE_LIFETIME = 3600.0


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def _encoded_word(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def message_text(message, recipient: str) -> str:
    """
    The RFC 822 form of a kept message, as GetMessage answers it: the
    OIM headers, then the text in base64 lines of 76 characters.
    """
    body = base64.encodebytes(message.text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    filetime = int(message.received_at * 10_000_000) + 116444736000000000
    arrival = time.strftime("%d %b %Y %H:%M:%S", time.gmtime(message.received_at))
    headers = [
        f"Received: from msnp by msnp with OIM; {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(message.received_at))}",
        f"From: {_encoded_word(message.sender_name)} <{message.sender}>",
        f"To: <{recipient}>",
        "Subject: ",
        "X-OIM-originatingSource: 127.0.0.1",
        "X-OIMProxy: MSNMSGR",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: base64",
        "X-OIM-Message-Type: OfflineMessage",
        f"X-OIM-Run-Id: {message.run_id or '{00000000-0000-0000-0000-000000000000}'}",
        f"X-OIM-Sequence-Num: {message.sequence}",
        f"X-OriginalArrivalTime: {arrival}.0000 (UTC) FILETIME=[{filetime & 0xFFFFFFFF:08X}:{filetime >> 32:08X}]",
        f"Date: {time.strftime('%d %b %Y %H:%M:%S -0000', time.gmtime(message.received_at))}",
    ]
    return "\r\n".join(headers) + "\r\n\r\n" + body


def mail_data(messages, recipient: str, for_notice: bool = True) -> str:
    """
    The C{Mail-Data} document: the inbox counters (always 0: there is no
    mail here), one C{M} per offline message, the quota.  A notice with
    more than L{NOTICE_LIMIT} messages says C{too-large} instead.
    """
    if for_notice and len(messages) > NOTICE_LIMIT:
        return "too-large"
    entries = "".join(
        f"<M><T>11</T><S>6</S><RT>{_iso(m.received_at)}</RT><RS>0</RS><SZ>{len(message_text(m, recipient))}</SZ>"
        f"<E>{escape(m.sender)}</E><I>{m.message_id}</I><F>{OIM_FOLDER}</F><N>{_encoded_word(m.sender_name)}</N></M>"
        for m in messages
    )
    return (
        "<MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>"
        f"{entries}<Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>"
    )


def notice(kind: str, body: str) -> bytes:
    """
    A C{MSG Hotmail Hotmail} notice of content type C{kind}.
    """
    text = f"MIME-Version: 1.0\r\nContent-Type: {kind}; charset=UTF-8\r\n\r\n{body}"
    return wire.format_payload("MSG", None, ("Hotmail", "Hotmail"), text.encode("utf-8"))


def initial_notice(messages, recipient: str) -> bytes:
    return notice("text/x-msmsgsinitialmdatanotification", f"Mail-Data: {mail_data(messages, recipient)}\r\n\r\n")


def arrival_notice(message, recipient: str) -> bytes:
    return notice("text/x-msmsgsoimnotification", f"Mail-Data: {mail_data([message], recipient)}\r\n\r\n")


def deletion_notice(count: int) -> bytes:
    return notice(
        "text/x-msmsgsactivemailnotification",
        f"Src-Folder: .!!OIM\r\nDest-Folder: .!!trAsH\r\nMessage-Delta: {count}\r\n\r\n",
    )


class BadMessage(ValueError):
    pass


def parse_mime_text(data: bytes, base64_body: bool) -> tuple[dict, str]:
    """
    The headers and the text of a plain-text MIME message (the Store2
    Content, or a UUM payload).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("not UTF-8")
    head, separator, body = text.replace("\r\n", "\n").partition("\n\n")
    if not separator:
        raise BadMessage("no header block")
    message = email.parser.Parser().parsestr(head + "\n\n", headersonly=True)
    content_type = (message.get("Content-Type") or "text/plain").split(";")[0].strip().lower()
    if content_type != "text/plain":
        raise BadMessage(f"content type {content_type}")
    if base64_body or (message.get("Content-Transfer-Encoding") or "").strip().lower() == "base64":
        try:
            body = base64.b64decode("".join(body.split()), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadMessage("body is not base64 of UTF-8")
    return {k.lower(): v for k, v in message.items()}, body


def decode_friendly_name(text: Optional[str], fallback: str) -> str:
    if not text:
        return fallback
    try:
        parts = email.header.decode_header(text)
        return "".join(part.decode(charset or "utf-8") if isinstance(part, bytes) else part for part, charset in parts)[:129]
    except (LookupError, UnicodeDecodeError, ValueError, email.errors.HeaderParseError):
        return fallback


class LockKeys:
    """
    The lock-key challenge of each sender: issued on the first Store2,
    answered with the CHL algorithm and the sender's product key, good
    for an hour.
    """

    MAX_CHALLENGES = 100_000

    def __init__(self, now):
        self._now = now
        self._issued: dict[str, tuple[str, float]] = {}

    def challenge_for(self, handle: str) -> str:
        entry = self._issued.get(handle)
        if entry is None or entry[1] < self._now():
            while len(self._issued) >= self.MAX_CHALLENGES:
                del self._issued[next(iter(self._issued))]
            entry = self._issued[handle] = (challenge.new_challenge(), self._now() + CHALLENGE_LIFETIME)
        return entry[0]

    def accepts(self, handle: str, product_id: str, lockkey: str) -> bool:
        entry = self._issued.get(handle)
        if entry is None or entry[1] < self._now() or not lockkey:
            return False
        return challenge.answer_is_right(True, entry[0], product_id, lockkey.encode("ascii", "replace"), challenge.MSNP13_PRODUCTS)


class OIMFault(SOAPFault):
    """
    A fault of the OIM store, named in its own namespace (C{q0:}), with an
    optional C{detail} body.
    """

    def __init__(self, code: str, detail: str = ""):
        super().__init__(code, code)
        self.detail = detail


class OIMStoreService(SOAPService):
    """
    C{/OimWS/oim.asmx}: Store2 (and the 2004 Store of older clients).
    """

    def __init__(self, service_tokens, clock, messenger, config):
        super().__init__(service_tokens, clock)
        self._messenger = messenger
        self._lockkeys = LockKeys(clock.seconds)

    def token_of(self, root) -> Optional[str]:
        ticket = safexml.find(root, "Ticket")
        return ticket.get("passport") if ticket is not None else None

    def fault_envelope(self, fault, action: str) -> bytes:
        namespace = NS_OIM_2006
        if isinstance(fault, OIMFault):
            code, detail = fault.errorcode, fault.detail
        elif fault.errorcode == "BadContextToken":
            code, detail = "AuthenticationFailed", ""
        else:
            code, detail = "SystemUnavailable", ""
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            f'<soap:Body><soap:Fault><faultcode xmlns:q0="{namespace}">q0:{code}</faultcode>'
            "<faultstring>Exception of type System.Web.Services.Protocols.SoapException was thrown.</faultstring>"
            "<faultactor>https://ows.messenger.msn.com/OimWS/oim.asmx</faultactor>"
            f"<detail>{detail}</detail></soap:Fault></soap:Body></soap:Envelope>"
        ).encode("utf-8")

    @with_envelope
    def op_Store2(self, handle, operation, root):
        """
        Keep a message: the sender named in C{From} must own the ticket
        and have answered the lock-key challenge; C{Content} is the MIME
        message with its text in base64.
        """
        header = safexml.child(root, "Header")
        sender_element = safexml.find(header, "From")
        recipient_element = safexml.find(header, "To")
        ticket = safexml.find(header, "Ticket")
        if sender_element is None or recipient_element is None or ticket is None:
            raise OIMFault("InvalidContent")
        if (sender_element.get("memberName") or "").lower() != handle:
            raise OIMFault("AuthenticationFailed")
        if not self._lockkeys.accepts(handle, ticket.get("appid") or "", ticket.get("lockkey") or ""):
            challenge_text = self._lockkeys.challenge_for(handle)
            raise OIMFault(
                "AuthenticationFailed",
                f'<TweenerChallenge xmlns="{NS_OIM_2006}">ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1</TweenerChallenge>'
                f'<LockKeyChallenge xmlns="{NS_OIM_2006}">{challenge_text}</LockKeyChallenge>',
            )
        recipient = (recipient_element.get("memberName") or "").lower()
        if not wire.is_valid_handle(recipient):
            raise OIMFault("InvalidContent")
        sequence_text = safexml.text(safexml.path(safexml.find(header, "Sequence"), "MessageNumber"))
        if not sequence_text.isdigit() or len(sequence_text) > 9:
            raise OIMFault("InvalidContent")
        content = safexml.text(safexml.child(operation, "Content"))
        try:
            headers, text = parse_mime_text(content.encode("utf-8"), base64_body=True)
        except BadMessage:
            raise OIMFault("InvalidContent")
        given_sequence = headers.get("x-oim-sequence-num")
        if given_sequence is not None and given_sequence.strip() != sequence_text:
            raise OIMFault("InvalidContent")
        name = decode_friendly_name(sender_element.get("friendlyName"), handle)
        d = self._messenger.offline.leave(handle, name, recipient, text, headers.get("x-oim-run-id", "").strip(), int(sequence_text))

        def kept(_):
            return f'<StoreResponse xmlns="{NS_OIM_2006}"><PointsConsumed>0</PointsConsumed></StoreResponse>'

        def refused(failure):
            if failure.check(core_errors.MailboxFull):
                raise OIMFault("SenderThrottleLimitExceeded")
            if failure.check(core_errors.MessageTooLarge):
                raise OIMFault("InvalidContent")
            if failure.check(core_errors.NoSuchUser, core_errors.NotAccepted):
                raise OIMFault("SystemUnavailable")
            return failure

        return d.addCallbacks(kept, refused)

    op_Store = op_Store2


class OIMReadService(SOAPService):
    """
    C{/rsi/rsi.asmx}: the recipient's offline messages, read with the
    C{messenger.msn.com} token in C{PassportCookie}.
    """

    namespace = NS_RSI

    def __init__(self, service_tokens, clock, messenger, config):
        super().__init__(service_tokens, clock)
        self._messenger = messenger

    def op_GetMetadata(self, handle, operation):
        d = self._messenger.offline.messages(handle)
        return d.addCallback(lambda messages: f'<GetMetadataResponse xmlns="{NS_RSI}">{mail_data(messages, handle, for_notice=False)}</GetMetadataResponse>')

    def op_GetMessage(self, handle, operation):
        message_id = safexml.text(safexml.child(operation, "messageId"))

        def found(message):
            if message is None:
                raise SOAPFault("MessageDoesNotExist", "No such message")
            return (
                f'<GetMessageResponse xmlns="{NS_RSI}"><GetMessageResult>'
                f"{escape(message_text(message, handle))}</GetMessageResult></GetMessageResponse>"
            )

        return self._messenger.offline.message(handle, message_id).addCallback(found)

    def op_DeleteMessages(self, handle, operation):
        ids = [safexml.text(i) for i in safexml.children(safexml.child(operation, "messageIds"), "messageId")]
        if not ids:
            raise SOAPFault("InvalidArgument", "No message named")
        return self._messenger.offline.delete(handle, ids).addCallback(lambda _: f'<DeleteMessagesResponse xmlns="{NS_RSI}" />')


def new_run_id() -> str:
    return "{" + secrets.token_hex(16).upper() + "}"
