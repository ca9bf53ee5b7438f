"""
The switchboard side of the client library: L{Conversation} is one
switchboard session, its messages, typing notices, joins and leaves.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer

from msnp.client.connection import CommandConnection, ConnectionClosed, ServerError
from msnp.client.model import Message, NotDelivered, _decode, _deferred, _names_endpoint, _parse_mime
from msnp.msn import wire

_PLAIN_TEXT = "text/plain"
_TYPING = "text/x-msmsgscontrol"


class Conversation:
    """
    A switchboard session: C{participants} are the other people in it.
    """

    def __init__(self, client: "Client", connection: CommandConnection, session_id: Optional[str] = None):
        self.client = client
        self.connection = connection
        self.session_id = session_id
        self.participants: dict[str, str] = {}
        self._joins: dict[str, list] = {}
        self.closed = connection.closed
        connection.on_command = self._received
        connection.closed.addCallback(self._ended)

    def __repr__(self) -> str:
        return f"<Conversation with {', '.join(self.participants) or 'nobody'}>"

    # Actions

    def send(self, text: str, headers: Optional[dict] = None) -> defer.Deferred:
        """
        Send a plain-text message; fires once the switchboard ACKs it,
        fails with L{NotDelivered} on NAK.
        """
        lines = ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8"]
        for key, value in (headers or {"X-MMS-IM-Format": "FN=Arial; EF=; CO=0; CS=0; PF=0"}).items():
            lines.append(f"{key}: {value}")
        payload = ("\r\n".join(lines) + "\r\n\r\n" + text).encode("utf-8")
        d = self.connection.request("MSG", "A", payload=payload, answers=("ACK",), refusals=("NAK",))
        return d.addErrback(self._not_delivered)

    def _not_delivered(self, failure):
        failure.trap(ServerError)
        raise NotDelivered(str(failure.value))

    def send_typing(self) -> defer.Deferred:
        """
        Tell the others I am typing (no acknowledgement is asked for).
        """
        payload = f"MIME-Version: 1.0\r\nContent-Type: {_TYPING}\r\nTypingUser: {self.client.handle}\r\n\r\n\r\n".encode("utf-8")
        self.connection.write_command("MSG", self.connection.next_trid(), ("U",), payload)
        return defer.succeed(None)

    @_deferred
    async def invite(self, handle: str) -> None:
        """
        Call C{handle} into the conversation; fires when they have joined,
        fails with L{ServerError} when they cannot be called (217: offline).
        """
        handle = handle.lower()
        if handle in self.participants:
            return
        joined = defer.Deferred()
        self._joins.setdefault(handle, []).append(joined)
        try:
            await self.connection.request("CAL", handle)
        except Exception:
            self._joins[handle].remove(joined)
            raise
        await joined

    @_deferred
    async def leave(self) -> None:
        """
        Leave the conversation (OUT) and wait for the switchboard to close.
        """
        if not self.connection.is_closed:
            self.connection.write_command("OUT", None, ())
        await self.connection.close()

    # What the switchboard says

    def _received(self, command: wire.Command) -> None:
        name, args = command.name, command.args
        if name in ("IRO", "JOI", "BYE") and args and _names_endpoint(args[2] if name == "IRO" and len(args) > 2 else args[0], self.client.handle):
            # MSNP16+: a point of presence (handle;{guid}) or myself; the
            # user is named on a line of their own.
            return
        if name in ("IRO",) and len(args) >= 4:
            self.participants[args[2].lower()] = _decode(args[3])
        elif name == "JOI" and len(args) >= 2:
            handle = args[0].lower()
            self.participants[handle] = _decode(args[1])
            for waiting in self._joins.pop(handle, []):
                waiting.callback(None)
            self.client.events.fire("joined", self, handle)
        elif name == "BYE" and args:
            handle = args[0].lower()
            self.participants.pop(handle, None)
            self.client.events.fire("left", self, handle)
        elif name == "MSG" and len(args) >= 2 and command.payload is not None:
            self._message(args[0].lower(), _decode(args[1]), command.payload)

    def _message(self, sender: str, sender_name: str, payload: bytes) -> None:
        headers, body = _parse_mime(payload)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == _PLAIN_TEXT:
            self.client.events.fire("message", self, Message(sender, sender_name, body, headers))
        elif kind == _TYPING:
            self.client.events.fire("typing", self, headers.get("typinguser", sender).lower())

    def _ended(self, _):
        for waiting in self._joins.values():
            for joined in waiting:
                joined.errback(ConnectionClosed("CAL"))
        self._joins = {}
        self.client._conversation_ended(self)
