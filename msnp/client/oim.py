"""
Reading offline messages (MSNP13+) as Windows Live Messenger does: the
notification server names each kept message in its C{Mail-Data} notice,
the client asks the read service (C{rsi.asmx}, with the
C{messenger.msn.com} token as its Passport cookie) for the message by id,
and deletes it once read.
"""

from __future__ import annotations

import base64
import binascii
import email.header
from typing import Union
from xml.sax.saxutils import escape

import attrs

from msnp.client.addressbook import AddressBookError, fault_reason, service_url
from msnp.client.sso import post
from msnp.msn import safexml

NS_RSI = "http://www.hotmail.msn.com/ws/2004/09/oim/rsi"
RSI_PATH = "/rsi/rsi.asmx"
MAX_ANSWER = 256 * 1024


@attrs.frozen
class OfflineMessage:
    """
    One message as the read service gives it: who sent it (handle and
    name), its sequence number, and its text.
    """

    message_id: str
    sender: str
    sender_name: str
    sequence: str
    text: str


def request(action: str, token: str, inner: str) -> bytes:
    t, _, p = token.partition("&p=")
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
        f'<PassportCookie xmlns="{NS_RSI}"><t>{escape(t[2:] if t.startswith("t=") else t)}</t><p>{escape(p)}</p></PassportCookie>'
        f'</soap:Header><soap:Body><{action} xmlns="{NS_RSI}">{inner}</{action}></soap:Body></soap:Envelope>'
    ).encode("utf-8")


async def _call(reactor, nexus: str, action: str, token: str, inner: str, trust):
    code, data = await post(reactor, service_url(nexus, RSI_PATH), request(action, token, inner), trust, f"{NS_RSI}/{action}")
    root = safexml.parse_xml(data, AddressBookError, MAX_ANSWER)
    fault = safexml.find(root, "Fault")
    if code != 200 or fault is not None:
        raise AddressBookError(f"{action} answered {code}: {fault_reason(fault)}")
    return root


def parse_message(message_id: str, text: str) -> OfflineMessage:
    """
    The RFC 822 text of GetMessage: headers, a blank line, the body in
    base64 of UTF-8.
    """
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    headers = {}
    for line in head.split("\n"):
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    sender, sender_name = headers.get("from", ""), ""
    if "<" in sender and sender.endswith(">"):
        encoded, _, address = sender[:-1].rpartition("<")
        sender = address
        parts = email.header.decode_header(encoded.strip())
        sender_name = "".join(p.decode(c or "utf-8", "replace") if isinstance(p, bytes) else p for p, c in parts)
    try:
        decoded = base64.b64decode("".join(body.split()), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise AddressBookError(f"offline message {message_id} is not base64")
    return OfflineMessage(message_id, sender.strip().lower(), sender_name, headers.get("x-oim-sequence-num", ""), decoded)


async def get_message(reactor, nexus: str, token: str, message_id: str, trust: Union[None, str, bytes] = None) -> OfflineMessage:
    inner = f"<messageId>{escape(message_id)}</messageId><alsoMarkAsRead>false</alsoMarkAsRead>"
    root = await _call(reactor, nexus, "GetMessage", token, inner, trust)
    return parse_message(message_id, safexml.text(safexml.find(root, "GetMessageResult")))


async def delete_messages(reactor, nexus: str, token: str, message_ids, trust: Union[None, str, bytes] = None) -> None:
    inner = "<messageIds>" + "".join(f"<messageId>{escape(i)}</messageId>" for i in message_ids) + "</messageIds>"
    await _call(reactor, nexus, "DeleteMessages", token, inner, trust)
