"""
An MSN Messenger client as a library: sign in, keep a contact list with
presence, talk in conversations.  MSNP2-MSNP12 are offered by default;
offering MSNP13-MSNP18 (L{WLM_DIALECTS}) signs in as Windows Live Messenger
does: single sign-on from MSNP15, the lists read over SOAP and sent back
with ADL, offline messages read from the web service.

    client = Client("bot@example.com", "secret", server="127.0.0.1:1863")
    await client.sign_in()
    conversation = await client.start_conversation(["alice@example.com"])
    await conversation.send("hello")

Every action returns a Deferred (usable with C{await} in an C{async def}
run by C{ensureDeferred}).  Events are subscribed to with the C{on_*}
methods, which also work as decorators.  Lines are read with
the project's framer (L{msnp.msn.framing}) and shaped with the dialect data of
L{msnp.msn.dialects}: the client asks the dialect the server chose how a
line looks, as the server does.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from typing import Iterable, Optional, Union

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.logger import Logger

from msnp.client import addressbook, passport, sso
from msnp.client.connection import CommandConnection, ConnectionClosed, ServerError
from msnp.client.conversation import Conversation
from msnp.client.identity import (  # noqa: F401 (the library's names, imported from here)
    ALL_DIALECTS,
    CLIENT_VERSION,
    WLM_CAPS,
    WLM_CAPS_EX,
    WLM_DIALECTS,
    challenge_product,
    challenge_response,
    client_version,
)
from msnp.client.model import (  # noqa: F401 (the library's names, imported from here)
    AWAY,
    BE_RIGHT_BACK,
    BUSY,
    HIDDEN,
    IDLE,
    OFFLINE,
    ON_THE_PHONE,
    ONLINE,
    OUT_TO_LUNCH,
    Contact,
    Message,
    NotDelivered,
    SignInError,
    UnsupportedByDialect,
    _address,
    _decode,
    _deferred,
    _Events,
    _list_notice,
    _names_endpoint,
    _parse_mime,
    _plain_handle,
)
from msnp.client.notifications import NotificationHandlers
from msnp.msn import dialects, wire


class Client(NotificationHandlers):
    """
    One user signed in to an MSN service.  C{server} is the dispatch
    server (C{host:port}); C{dialects} the versions offered, best first;
    C{nexus} and C{trust} where Passport (MSNP8+) is and which certificates
    its TLS trusts (a PEM file path or bytes; None: the system's).  With
    C{reconnect}, the client signs in again after the server shuts down
    (C{OUT SSD}).
    """

    log = Logger()

    def __init__(
        self,
        handle: str,
        password: str,
        server: str = "messenger.hotmail.com:1863",
        dialects: Iterable[str] = ALL_DIALECTS,
        nexus: str = passport.DEFAULT_NEXUS,
        trust: Union[None, str, bytes] = None,
        status: str = ONLINE,
        reconnect: bool = False,
        reconnect_delay: float = 5.0,
        ping_interval: float = 45.0,
        accept_conversations: bool = True,
        machine_guid: Optional[str] = None,
        reactor=None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.handle = handle.lower()
        self.password = password
        self.server = server
        self.offered = tuple(d.upper() for d in dialects)
        self.nexus = nexus
        self.trust = trust
        self.initial_status = status
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.ping_interval = ping_interval
        self.accept_conversations = accept_conversations
        # MSNP16+: the endpoint this client is; the same GUID signing in
        # again replaces it, another one is a second point of presence.
        guid = machine_guid or str(uuid.uuid4())
        self.machine_guid = "{" + guid.strip("{}").upper() + "}"
        # MSNP13+: the Passport tokens of the web services.
        self.tokens: dict = {}

        self.events = _Events()
        self.dialect: Optional[dialects.Dialect] = None
        self.name = ""
        self.status = OFFLINE
        self.personal_message = ""
        self.contacts: dict[str, Contact] = {}
        self.groups: dict[str, str] = {}
        self.conversations: list[Conversation] = []
        self.signed_out = defer.Deferred()
        self._ns: Optional[CommandConnection] = None
        self._sync: Optional[dict] = None
        self._ping_call = None
        self._reconnect_call = None
        self._leaving = False
        self._out_reason: Optional[str] = None

    # Events

    def on_presence(self, callback):
        """C{callback(contact)}: a contact's status, name or personal message changed."""
        return self.events.add("presence", callback)

    def on_added_by(self, callback):
        """C{callback(handle, name)}: someone put me on their contact list."""
        return self.events.add("added_by", callback)

    def on_removed_by(self, callback):
        """C{callback(handle)}: someone took me off their contact list."""
        return self.events.add("removed_by", callback)

    def on_conversation(self, callback):
        """C{callback(conversation)}: someone started a conversation with me."""
        return self.events.add("conversation", callback)

    def on_message(self, callback):
        """C{callback(conversation, message)}: a message arrived."""
        return self.events.add("message", callback)

    def on_typing(self, callback):
        """C{callback(conversation, handle)}: someone is typing."""
        return self.events.add("typing", callback)

    def on_joined(self, callback):
        """C{callback(conversation, handle)}: someone joined a conversation."""
        return self.events.add("joined", callback)

    def on_left(self, callback):
        """C{callback(conversation, handle)}: someone left a conversation."""
        return self.events.add("left", callback)

    def on_signed_in(self, callback):
        """C{callback()}: signed in, lists fetched, initial status set (again, after a reconnection)."""
        return self.events.add("signed_in", callback)

    def on_signed_out(self, callback):
        """C{callback(reason)}: the session ended (C{OTH}: signed in elsewhere, C{SSD}: server shut down, or why)."""
        return self.events.add("signed_out", callback)

    def on_offline_message(self, callback):
        """C{callback(message)}: an L{msnp.client.oim.OfflineMessage} left while I was offline (MSNP13+); it is deleted once read."""
        return self.events.add("offline_message", callback)

    # Signing in and out

    @_deferred
    async def sign_in(self) -> None:
        """
        Connect through the dispatch server, log in (MD5 before MSNP8,
        Passport from MSNP8), fetch the lists and set the initial status.
        """
        self._leaving = False
        address = self.server
        for _ in range(3):
            connection = await self._connect(address)
            try:
                referral = await self._log_in(connection)
            except BaseException:
                await connection.close()
                raise
            if referral is None:
                break
            await connection.close()
            address = referral
        else:
            raise SignInError("referred from server to server too many times")
        self._ns = connection
        connection.on_command = self._ns_command
        connection.closed.addCallback(self._ns_closed, connection)
        await self._synchronise()
        await self.set_status(self.initial_status)
        if self.signed_out.called:
            self.signed_out = defer.Deferred()
        self._schedule_ping(self.ping_interval)
        self.events.fire("signed_in")

    async def _connect(self, address: str) -> CommandConnection:
        host, port = _address(address)
        endpoint = HostnameEndpoint(self.reactor, host, port)
        return await connectProtocol(endpoint, CommandConnection())

    async def _log_in(self, connection: CommandConnection) -> Optional[str]:
        """
        VER, CVR and USR on C{connection}: the address to go on to when
        it refers us elsewhere (XFR NS), None once logged in.
        """
        reply = await connection.request("VER", *self.offered, "CVR0")
        chosen = [v for v in reply.args if v.upper().startswith("MSNP") and v[4:].isdigit()]
        if not chosen:
            raise SignInError("no MSNP version in common with the server")
        self.dialect = dialects.ALL_DIALECTS.get(int(chosen[0][4:])) or dialects.Dialect(int(chosen[0][4:]))
        connection.dialect = self.dialect
        await connection.request("CVR", *client_version(self.dialect.version), self.handle)
        package = self.dialect.auth_package
        try:
            reply = await connection.request("USR", package, "I", self.handle, answers=("XFR",))
            if reply.name == "XFR":
                if len(reply.args) < 2 or reply.args[0] != "NS":
                    raise SignInError(f"unexpected referral {reply.args}")
                return reply.args[1]
            if len(reply.args) < 3 or reply.args[1] != "S":
                raise SignInError(f"unexpected answer to USR: {reply.args}")
            try:
                if package == "MD5":
                    proof = (hashlib.md5((reply.args[2] + self.password).encode("utf-8")).hexdigest(),)
                elif package == "SSO":
                    if len(reply.args) < 4:
                        raise SignInError(f"unexpected answer to USR: {reply.args}")
                    tokens = await self._fetch_tokens()
                    proof = tuple(sso.sso_answer(tokens[sso.MESSENGER_CLEAR], reply.args[3]).split(" "))
                    if self.dialect.requires_machine_guid:
                        proof += (self.machine_guid,)
                elif self.dialect.lists_in_address_book:
                    # Windows Live Messenger 8.0 asks RST.srf for its ticket.
                    tokens = await self._fetch_tokens()
                    proof = (tokens[sso.MESSENGER].ticket,)
                else:
                    proof = (await passport.fetch_ticket(self.reactor, self.handle, self.password, reply.args[2], self.nexus, self.trust),)
            except passport.PassportRefused:
                raise SignInError("Passport refused the password", 911)
            except (passport.PassportError, KeyError) as problem:
                raise SignInError(f"Passport gave no ticket: {problem}")
            reply = await connection.request("USR", package, "S", *proof)
        except ServerError as error:
            raise SignInError(f"login refused with {error.code}", error.code)
        if not reply.args or reply.args[0] != "OK":
            raise SignInError(f"unexpected answer to USR: {reply.args}")
        if not self.dialect.has_contact_ids and len(reply.args) >= 3:
            self.name = _decode(reply.args[2])
        return None

    async def _fetch_tokens(self) -> dict:
        url = sso.token_service(self.nexus, self.dialect.version)
        self.tokens = await sso.fetch_tokens(self.reactor, self.handle, self.password, url, self.trust)
        return self.tokens

    @_deferred
    async def sign_out(self) -> None:
        """
        Leave every conversation, say OUT and close.
        """
        self._leaving = True
        self._cancel_timers()
        for conversation in list(self.conversations):
            await conversation.leave()
        connection = self._ns
        if connection is not None and not connection.is_closed:
            connection.write_command("OUT", None, ())
            await connection.close()

    def _cancel_timers(self) -> None:
        for name in ("_ping_call", "_reconnect_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)

    def _ns_closed(self, _, connection: CommandConnection, reason: str = "closed") -> None:
        if connection is not self._ns:
            return
        self._ns = None
        self.status = OFFLINE
        self._cancel_timers()
        for contact in self.contacts.values():
            contact.status = OFFLINE
        reason = self._out_reason or ("signed out" if self._leaving else "connection lost")
        self._out_reason = None
        self.events.fire("signed_out", reason)
        if not self.signed_out.called:
            self.signed_out.callback(reason)
        if reason == "SSD" and self.reconnect and not self._leaving:
            self._reconnect_call = self.reactor.callLater(self.reconnect_delay, self._try_again, self.reconnect_delay)

    def _try_again(self, delay: float) -> None:
        self._reconnect_call = None

        def failed(failure):
            if self._leaving:
                return
            self.log.info("signing in again failed ({why}); next try in {delay}s", why=failure.getErrorMessage(), delay=delay * 2)
            self._reconnect_call = self.reactor.callLater(min(delay * 2, 300), self._try_again, min(delay * 2, 300))

        self.sign_in().addErrback(failed)

    @property
    def _session(self) -> CommandConnection:
        """
        The notification connection, for actions that need one.
        """
        if self._ns is None or self._ns.is_closed:
            raise ConnectionClosed("not signed in")
        return self._ns

    # Keep-alive and challenges

    def _schedule_ping(self, seconds: float) -> None:
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.cancel()
        self._ping_call = self.reactor.callLater(max(5.0, seconds), self._ping)

    def _ping(self) -> None:
        self._ping_call = None
        if self._ns is not None:
            self._ns.write_command("PNG", None, ())
            # Until QNG says otherwise (MSNP9+ names the next interval).
            self._schedule_ping(self.ping_interval)

    def _answer_challenge(self, text: str) -> None:
        product, answer = challenge_response(self.dialect.version, text)
        self._ns.request("QRY", product, payload=answer.encode("ascii")).addErrback(
            lambda failure: self.log.warn("challenge answer refused: {why}", why=failure.getErrorMessage())
        )

    # Lists

    async def _synchronise(self) -> None:
        self.contacts.clear()
        self.groups.clear()
        if self.dialect.lists_in_address_book:
            await self._read_address_book()
            return
        done = defer.Deferred()
        self._sync = {"done": done, "lists": 0, "groups": 0, "want_lists": None, "want_groups": None}
        args = (0, 0) if self.dialect.has_contact_ids else (0,)
        reply = await self._session.request("SYN", *args)
        counts = reply.args[2:] if self.dialect.has_contact_ids else reply.args[1:]
        if self.dialect.merges_lists and len(counts) >= 2:
            self._sync["want_lists"], self._sync["want_groups"] = int(counts[0]), int(counts[1])
            self._sync_progress()
        elif self.dialect.merges_lists:
            self._sync_finished()
        await done

    async def _read_address_book(self) -> None:
        """
        MSNP13+: the lists from the Sharing and address book services, my
        privacy setting back to the server (BLP) and the initial ADL.
        """
        token = self.tokens.get(sso.CONTACTS)
        if token is None:
            raise SignInError("Passport gave no address book token")
        book = await addressbook.fetch(self.reactor, self.nexus, token.ticket, self.trust)
        for entry in book.entries.values():
            contact = self._contact(entry.handle)
            contact.lists = set(entry.lists)
            contact.name = entry.name or contact.name
            contact.groups = set(entry.groups)
        self.groups.update(book.groups)
        self.name = book.my_name or self.name
        await self._session.request("BLP", book.blp)
        await self._session.request("ADL", payload=addressbook.initial_adl(book))

    def _sync_progress(self) -> None:
        sync = self._sync
        if sync is None or sync["want_lists"] is None:
            return
        if sync["lists"] >= sync["want_lists"] and sync["groups"] >= sync["want_groups"]:
            self._sync_finished()

    def _sync_finished(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None and not sync["done"].called:
            sync["done"].callback(None)

    def _contact(self, handle: str) -> Contact:
        handle = handle.lower()
        contact = self.contacts.get(handle)
        if contact is None:
            contact = self.contacts[handle] = Contact(handle, handle)
        return contact

    def _list_line(self, command: wire.Command) -> None:
        args = command.args
        if self.dialect.has_contact_ids:
            fields = {a[:2]: a[2:] for a in args if a[1:2] == "=" and a[:1] in "NFC"}
            numbers = [a for a in args if a.isdigit()]
            if "N=" not in fields or not numbers:
                return
            contact = self._contact(fields["N="])
            contact.name = _decode(fields.get("F=", contact.handle))
            contact.contact_id = fields.get("C=") or contact.contact_id
            bits = int(numbers[0])
            rest = [a for a in args if not a.isdigit() and a[1:2] != "="]
            contact.groups = set(rest[0].split(",")) if rest else set()
        elif self.dialect.merges_lists:
            if len(args) < 3:
                return
            contact = self._contact(args[0])
            contact.name = _decode(args[1])
            bits = int(args[2]) if args[2].isdigit() else 0
            contact.groups = set(args[3].split(",")) if len(args) > 3 else set()
        else:
            # LST t LIST version index total [handle name [groups]]
            if len(args) < 4:
                return
            lst, index, total = args[0], args[2], args[3]
            if len(args) >= 6:
                contact = self._contact(args[4])
                contact.lists.add(lst)
                if lst == "FL" or not contact.name or contact.name == contact.handle:
                    contact.name = _decode(args[5])
                if lst == "FL" and len(args) > 6:
                    contact.groups = set(args[6].split(","))
            if lst == "RL" and index == total and self._sync is not None:
                self._sync_finished()
            return
        contact.lists = {name for name, bit in dialects.LIST_BITS.items() if bits & bit}
        if self._sync is not None:
            self._sync["lists"] += 1
            self._sync_progress()

    def _group_line(self, command: wire.Command) -> None:
        args = command.args
        if self.dialect.has_contact_ids:
            if len(args) >= 2:
                self.groups[args[1]] = _decode(args[0])
        elif self.dialect.merges_lists:
            if len(args) >= 2:
                self.groups[args[0]] = _decode(args[1])
        elif len(args) >= 5:
            self.groups[args[3]] = _decode(args[4])
        if self._sync is not None and self.dialect.merges_lists:
            self._sync["groups"] += 1
            self._sync_progress()

    @_deferred
    async def add_contact(self, handle: str, name: Optional[str] = None, group: Optional[str] = None) -> Contact:
        """
        Put C{handle} on my forward list (watch their presence), in
        C{group} if given (a group id as in C{self.groups}).
        """
        contact = await self._add_to_list("FL", handle, name, group)
        return contact

    @_deferred
    async def remove_contact(self, handle: str) -> None:
        """
        Take C{handle} off my forward list.
        """
        await self._remove_from_list("FL", handle)

    @_deferred
    async def block(self, handle: str) -> None:
        """
        Block C{handle}: off my allow list, onto my block list (they see me
        offline and cannot call me).
        """
        contact = self.contacts.get(handle.lower())
        if contact is not None and "AL" in contact.lists:
            await self._remove_from_list("AL", handle)
        await self._add_to_list("BL", handle)

    @_deferred
    async def allow(self, handle: str) -> None:
        """
        Allow C{handle}: off my block list, onto my allow list.
        """
        contact = self.contacts.get(handle.lower())
        if contact is not None and "BL" in contact.lists:
            await self._remove_from_list("BL", handle)
        await self._add_to_list("AL", handle)

    async def _add_to_list(self, lst: str, handle: str, name: Optional[str] = None, group: Optional[str] = None) -> Contact:
        handle = handle.lower()
        existing = self.contacts.get(handle)
        name = name or (existing.name if existing else handle)
        if self.dialect.lists_in_address_book:
            if group is not None:
                raise UnsupportedByDialect(f"{self.dialect.name} keeps groups in the address book service")
            await self._session.request("ADL", payload=addressbook.adl(handle, [lst]))
            contact = self._contact(handle)
            contact.lists.add(lst)
            if lst == "FL":
                contact.name = name
            return contact
        extra = (group,) if group is not None else ()
        if self.dialect.has_contact_ids:
            fields = (f"N={handle}",) + ((f"F={wire.url_encode(name)}",) if lst == "FL" else ())
            reply = await self._session.request("ADC", lst, *fields, *extra)
        else:
            reply = await self._session.request("ADD", lst, handle, wire.url_encode(name), *extra)
        contact = self._contact(handle)
        contact.lists.add(lst)
        if lst == "FL":
            contact.name = name
            for arg in reply.args:
                if arg.startswith("C="):
                    contact.contact_id = arg[2:]
            if group is not None:
                contact.groups.add(group)
        return contact

    async def _remove_from_list(self, lst: str, handle: str) -> None:
        handle = handle.lower()
        contact = self.contacts.get(handle)
        target = handle
        if self.dialect.lists_in_address_book:
            await self._session.request("RML", payload=addressbook.adl(handle, [lst]))
            if contact is not None:
                contact.lists.discard(lst)
                if lst == "FL":
                    contact.status = OFFLINE
                    contact.groups.clear()
            return
        if self.dialect.has_contact_ids and lst == "FL":
            if contact is None or contact.contact_id is None:
                raise ServerError(216, "REM")
            target = contact.contact_id
        await self._session.request("REM", lst, target)
        if contact is not None:
            contact.lists.discard(lst)
            if lst == "FL":
                contact.status = OFFLINE
                contact.groups.clear()

    @_deferred
    async def add_group(self, name: str) -> str:
        """
        Make a group; returns its id (a number before MSNP10, a GUID from).
        """
        if self.dialect.lists_in_address_book:
            raise UnsupportedByDialect(f"{self.dialect.name} keeps groups in the address book service")
        encoded = wire.url_encode(name)
        reply = await self._session.request("ADG", encoded, *(() if self.dialect.has_contact_ids else (0,)))
        group_id = reply.args[1] if self.dialect.has_contact_ids else reply.args[2]
        self.groups[group_id] = name
        return group_id

    @_deferred
    async def remove_group(self, group_id: str) -> None:
        if self.dialect.lists_in_address_book:
            raise UnsupportedByDialect(f"{self.dialect.name} keeps groups in the address book service")
        await self._session.request("RMG", group_id)
        self.groups.pop(group_id, None)

    # My own presence

    @_deferred
    async def set_status(self, status: str) -> None:
        """
        Set my status (L{ONLINE}, L{BUSY}, L{AWAY}, L{HIDDEN}, ...).
        """
        details = (0,) if self.dialect.chg_details else ()
        if self.dialect.lists_in_address_book:
            details = (self.dialect.capabilities(WLM_CAPS, WLM_CAPS_EX), 0)
        await self._session.request("CHG", status, *details)
        self.status = status

    @_deferred
    async def set_name(self, name: str) -> None:
        """
        Change my friendly name.
        """
        if self.dialect.has_contact_ids:
            await self._session.request("PRP", "MFN", wire.url_encode(name))
        else:
            await self._session.request("REA", self.handle, wire.url_encode(name))
        self.name = name

    @_deferred
    async def set_personal_message(self, text: str) -> None:
        """
        Set my personal message (MSNP11+).
        """
        if not self.dialect.has_personal_messages:
            raise UnsupportedByDialect(f"{self.dialect.name} has no personal messages")
        payload = f"<Data><PSM>{html.escape(text)}</PSM><CurrentMedia></CurrentMedia></Data>".encode("utf-8")
        await self._session.request("UUX", payload=payload)
        self.personal_message = text

    @_deferred
    async def send_offline_message(self, handle: str, text: str) -> None:
        """
        MSNP18: leave C{text} for C{handle}, who is offline (UUM); fails
        with L{ServerError} when it cannot be kept.
        """
        if self.dialect.version < 18:
            raise UnsupportedByDialect(f"{self.dialect.name} sends offline messages through the web service, not UUM")
        payload = f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nDest-Agent: client\r\n\r\n{text}".encode("utf-8")
        await self._session.request("UUM", handle.lower(), 1, 1, payload=payload)

    # Conversations

    @_deferred
    async def start_conversation(self, handles: Iterable[str]) -> Conversation:
        """
        Open a switchboard session and invite everyone in C{handles}; fires
        with the conversation once all of them have joined.
        """
        reply = await self._session.request("XFR", "SB")
        if len(reply.args) < 4 or reply.args[0] != "SB":
            raise ServerError(0, f"XFR SB answered {reply.args}")
        address, cookie = reply.args[1], reply.args[3]
        connection = await self._connect(address)
        connection.dialect = self.dialect
        conversation = Conversation(self, connection)
        self.conversations.append(conversation)
        try:
            await connection.request("USR", self._endpoint_name, cookie)
            for handle in handles:
                await conversation.invite(handle)
        except BaseException:
            await conversation.leave()
            raise
        return conversation

    async def _answer_ring(self, args: tuple) -> None:
        # RNG session address CKI cookie caller name
        session_id, address, cookie = args[0], args[1], args[3]
        connection = await self._connect(address)
        connection.dialect = self.dialect
        conversation = Conversation(self, connection, session_id)
        self.conversations.append(conversation)
        try:
            await connection.request("ANS", self._endpoint_name, cookie, session_id)
        except Exception:
            await connection.close()
            raise
        self.events.fire("conversation", conversation)

    @property
    def _endpoint_name(self) -> str:
        """
        How I name myself to a switchboard: C{handle;{guid}} from MSNP16.
        """
        if self.dialect.has_multiple_points_of_presence:
            return f"{self.handle};{self.machine_guid}"
        return self.handle

    def _conversation_ended(self, conversation: Conversation) -> None:
        if conversation in self.conversations:
            self.conversations.remove(conversation)
