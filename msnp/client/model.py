"""
The client library's values and small helpers: the statuses, the contact
and message records, the errors it raises, event subscribers, and the
parsing of the tokens and payloads the servers send.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from msnp.msn import safexml, wire

# The statuses a user can set (and see): online, busy, idle, be right back,
# away, on the phone, out to lunch, appear offline; FLN is offline.
ONLINE, BUSY, IDLE, BE_RIGHT_BACK, AWAY, ON_THE_PHONE, OUT_TO_LUNCH, HIDDEN, OFFLINE = (
    "NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN", "FLN",
)


def _plain_handle(token: str) -> str:
    """
    A handle as presence and switchboard lines name it, without the
    network prefix (C{1:h}, MSNP18) or the endpoint (C{h;{guid}}).
    """
    if ":" in token.split("@", 1)[0]:
        token = token.split(":", 1)[1]
    return token.split(";", 1)[0].lower()


def _names_endpoint(token: str, own_handle: str) -> bool:
    """
    Whether a switchboard line names a point of presence (C{handle;{guid}})
    or the user themself (WLM 2009's own JOI after calling itself).
    """
    return ";" in token or token.lower() == own_handle


def _list_notice(payload: Optional[bytes]) -> list[tuple[str, int, str]]:
    """
    The (handle, list bits, name) of an C{ADL 0}/C{RML 0} notice; nothing
    for a payload that is not one.
    """
    if not payload:
        return []
    try:
        root = safexml.parse_xml(payload)
    except safexml.MalformedXML:
        return []
    found = []
    for domain in root:
        for contact in domain:
            user, bits = contact.get("n"), contact.get("l", "")
            if domain.get("n") and user and bits.isdigit():
                found.append((f"{user}@{domain.get('n')}".lower(), int(bits), contact.get("f") or ""))
    return found


class SignInError(Exception):
    """
    Signing in failed: the password was refused (C{code} 911 or a Passport
    refusal), or the server answered something a client cannot go on from.
    """

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.code = code


class NotDelivered(Exception):
    """
    The switchboard answered NAK: the message reached nobody.
    """


class UnsupportedByDialect(Exception):
    """
    The dialect the server chose has no way to do this (a personal message
    before MSNP11).
    """


def _deferred(method):
    """
    Run an C{async def} method as a Deferred, so that callers without
    coroutines can add callbacks and callers with them can await.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs) -> defer.Deferred:
        return defer.ensureDeferred(method(*args, **kwargs))

    return wrapper


def _decode(token: str) -> str:
    try:
        return wire.url_decode(token)
    except ValueError:
        return token


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


@attrs.define
class Contact:
    """
    Someone on one of my lists: C{lists} says which (FL, AL, BL, RL),
    C{status} is their presence as I see it (C{FLN} when offline or
    hidden from me).
    """

    handle: str
    name: str = ""
    status: str = OFFLINE
    lists: set = attrs.Factory(set)
    groups: set = attrs.Factory(set)
    contact_id: Optional[str] = None
    personal_message: str = ""

    @property
    def online(self) -> bool:
        return self.status != OFFLINE

    @property
    def blocked(self) -> bool:
        return "BL" in self.lists


@attrs.frozen
class Message:
    """
    A message in a conversation: who sent it, the text, the MIME headers.
    """

    sender: str
    sender_name: str
    text: str
    headers: dict


def _parse_mime(payload: bytes) -> tuple[dict, str]:
    head, _, body = payload.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    return headers, body.decode("utf-8", "replace")


class _Events:
    """
    Subscribers per event name; one failing subscriber does not stop the
    others.
    """

    log = Logger()

    def __init__(self):
        self._subscribers: dict[str, list] = {}

    def add(self, name: str, callback: Callable) -> Callable:
        self._subscribers.setdefault(name, []).append(callback)
        return callback

    def fire(self, name: str, *args) -> None:
        for callback in list(self._subscribers.get(name, ())):
            try:
                result = callback(*args)
                if hasattr(result, "__await__") and not isinstance(result, defer.Deferred):
                    result = defer.ensureDeferred(result)
                if isinstance(result, defer.Deferred):
                    result.addErrback(lambda failure: self.log.failure("{event} subscriber failed", failure, event=name))
            except Exception:
                self.log.failure("{event} subscriber failed", event=name)
