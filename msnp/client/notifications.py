"""
The notification-server side of the client library: the handlers of the
lines the server sends unasked (presence, list changes, offline-message
notices, challenges, rings, OUT), as a mixin of L{msnp.client.messenger.Client}.
"""

from __future__ import annotations

import html
import re

from twisted.internet import defer

from msnp.client import addressbook, oim, sso
from msnp.client.model import OFFLINE, _decode, _list_notice, _parse_mime, _plain_handle
from msnp.msn import wire

_PSM = re.compile(r"<PSM>(.*?)</PSM>", re.S)


class NotificationHandlers:
    """
    C{_on_NAME} handles a line C{NAME} from the notification server.  Mixed
    into the client, whose state (C{contacts}, C{dialect}, C{events},
    C{tokens}, C{log}) and list, ping and ring methods it uses.
    """

    def _ns_command(self, command: wire.Command) -> None:
        handler = getattr(self, "_on_" + command.name, None)
        if handler is not None:
            handler(command)

    def _on_LST(self, command):
        self._list_line(command)

    def _on_LSG(self, command):
        self._group_line(command)

    def _on_PRP(self, command):
        if command.args[:1] == ("MFN",) and len(command.args) >= 2:
            self.name = _decode(command.args[1])

    def _on_ILN(self, command):
        args = list(command.args)
        if self.dialect.presence_network_id and len(args) >= 3:
            # MSNP14-17: the network id after the handle.
            del args[2]
        if len(args) >= 3:
            self._presence(args[0], _plain_handle(args[1]), args[2])

    _on_NLN = _on_ILN

    def _presence(self, status: str, handle: str, name: str) -> None:
        contact = self._contact(handle)
        contact.status = status
        contact.name = _decode(name)
        self.events.fire("presence", contact)

    def _on_FLN(self, command):
        if command.args:
            contact = self._contact(_plain_handle(command.args[0]))
            contact.status = OFFLINE
            self.events.fire("presence", contact)

    def _on_UBX(self, command):
        if not command.args or command.payload is None:
            return
        handle = _plain_handle(command.args[0])
        if handle == self.handle:
            # MSNP16+: my own extended presence, as my endpoints hear it.
            return
        contact = self._contact(handle)
        found = _PSM.search(command.payload.decode("utf-8", "replace"))
        contact.personal_message = html.unescape(found.group(1)) if found else ""
        self.events.fire("presence", contact)

    def _on_ADD(self, command):
        # ADD 0 RL version handle name (MSNP2-9)
        args = command.args
        if args[:1] == ("RL",) and len(args) >= 4:
            contact = self._contact(args[2])
            contact.lists.add("RL")
            self.events.fire("added_by", contact.handle, _decode(args[3]))

    def _on_ADC(self, command):
        # ADC 0 RL N=handle F=name (MSNP10+)
        args = command.args
        if args[:1] == ("RL",):
            fields = {a[:2]: a[2:] for a in args[1:] if a[1:2] == "="}
            if "N=" in fields:
                contact = self._contact(fields["N="])
                contact.lists.add("RL")
                self.events.fire("added_by", contact.handle, _decode(fields.get("F=", contact.handle)))

    def _on_REM(self, command):
        args = command.args
        if args[:1] == ("RL",) and len(args) >= 2:
            contact = self._contact(args[-1])
            contact.lists.discard("RL")
            self.events.fire("removed_by", contact.handle)

    def _on_ADL(self, command):
        # MSNP13+: ADL 0 with l="8": someone put me on their list.
        for handle, bits, name in _list_notice(command.payload):
            if bits & addressbook.LIST_BITS["RL"]:
                contact = self._contact(handle)
                contact.lists.add("RL")
                self.events.fire("added_by", handle, _decode(name or handle))

    def _on_RML(self, command):
        for handle, bits, _ in _list_notice(command.payload):
            if bits & addressbook.LIST_BITS["RL"]:
                contact = self._contact(handle)
                contact.lists.discard("RL")
                self.events.fire("removed_by", handle)

    def _on_MSG(self, command):
        # MSNP13+: the Mail-Data notices naming offline messages.
        if command.payload is None or not self.dialect.lists_in_address_book:
            return
        headers, body = _parse_mime(command.payload)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("text/x-msmsgsinitialmdatanotification", "text/x-msmsgsoimnotification"):
            return
        data = _parse_mime(body.encode("utf-8"))[0].get("mail-data", "")
        ids = re.findall(r"<M>.*?<I>([^<]+)</I>.*?</M>", data, re.S)
        if ids:
            reading = defer.ensureDeferred(self._read_offline_messages(ids))
            reading.addErrback(lambda failure: self.log.warn("could not read offline messages: {why}", why=failure.getErrorMessage()))

    async def _read_offline_messages(self, ids) -> None:
        token = self.tokens.get(sso.MESSENGER)
        if token is None:
            return
        for message_id in ids:
            message = await oim.get_message(self.reactor, self.nexus, token.ticket, message_id, self.trust)
            await oim.delete_messages(self.reactor, self.nexus, token.ticket, [message_id], self.trust)
            self.events.fire("offline_message", message)

    def _on_CHL(self, command):
        if command.args:
            self._answer_challenge(command.args[0])

    def _on_QNG(self, command):
        if command.args and command.args[0].isdigit():
            self._schedule_ping(int(command.args[0]))

    def _on_RNG(self, command):
        if self.accept_conversations and len(command.args) >= 4:
            joining = defer.ensureDeferred(self._answer_ring(command.args))
            joining.addErrback(lambda failure: self.log.warn("could not join a conversation: {why}", why=failure.getErrorMessage()))

    def _on_OUT(self, command):
        self._out_reason = command.args[0] if command.args else "signed out"
