"""
The notification server's commands of MSNP13 and later, when the lists are
held in the address book (read and edited over SOAP): ADL and RML (MSNP13+)
tell the server which lists a contact is on, FQY (MSNP14+) asks for a
contact's network, UUN (MSNP13+) and UUM (MSNP14+) carry notifications and
offline text between users, and PUT and SDG (MSNP18 circles) are refused.
The server's own ADL/RML (the reverse list) and UBN (a relayed
notification) are rendered here for the session's C{receive}.  UUX, the
personal message of MSNP11 on, is here too: from MSNP13 its payload is an
XML document, and from MSNP16 it also describes the endpoint.

L{AddressBookCommands} is mixed into
L{msnp.msn.notification.NotificationSession}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from msnp.core import errors as core_errors
from msnp.core import events
from msnp.msn import errors, membership, oim, safexml, sso, wire
from msnp.msn.errors import CommandError
from msnp.msn.ns_lists import answer_refusal
from msnp.store.records import canonical_handle


def _refused_in_list_command(result):
    """
    ADL/RML edits: the core's refusals answered with their error numbers,
    an unknown account with 208.
    """
    if not isinstance(result, Deferred):
        return result

    def refused(failure):
        if failure.check(core_errors.NoSuchUser):
            raise CommandError(errors.INVALID_USERNAME, str(failure.value))
        return answer_refusal(failure)

    return result.addErrback(refused)


class AddressBookCommands:
    """
    ADL, RML, FQY, UUN, UUM, PUT, SDG and UUX for a logged-in
    L{msnp.msn.notification.NotificationSession} (its C{me}, C{dialect},
    C{messenger}, C{machine_guid}, C{endpoint_data}, C{send},
    C{_show_initial_presence} and C{_echo_own_presence}); and the C{ADL 0},
    C{RML 0} and C{UBN} lines its C{receive} sends.
    """

    # Lists in the address book (MSNP13+)

    def _list_payload(self, command, with_bits: bool = True):
        try:
            return membership.parse(command.payload or b"", with_bits)
        except membership.ListPayloadError as e:
            raise CommandError(e.code, str(e), close=e.close)

    def do_ADL(self, command):
        """
        C{ADL t len} + C{<ml>}: the initial dump (C{l="1"}) is the client's
        copy of the lists it read over SOAP and changes nothing; a later
        ADL puts the contacts on the lists its bits name.  C{ADL t OK}
        once every edit is stored.
        """
        initial, entries = self._list_payload(command)
        if initial:
            self.synced = True
            self.send(wire.format_line("ADL", command.trid, "OK"))
            return None
        user = self.me.user
        lists = self.messenger.lists
        # An ADL with the FL bit is also the client asking for the
        # contact's presence: the contact may be on the list already (put
        # there through the address book service), and is shown all the same.
        watched = [entry.handle for entry in entries if entry.bits & membership.FL]
        edits = []
        for entry in entries:
            for lst, bit in membership.LIST_BITS.items():
                if entry.bits & bit and entry.handle not in user.lists[lst]:
                    edits.append((lst, entry.handle))

        def next_edit(_=None):
            if not edits:
                self.send(wire.format_line("ADL", command.trid, "OK"))
                shown = [contact for contact in watched if contact in user.lists["FL"]]
                if shown:
                    return self._show_initial_presence(command.trid, shown)
                return None
            lst, contact = edits.pop(0)
            group_id = 0 if lst == "FL" and 0 in user.groups else None
            if contact in user.lists[lst]:
                return next_edit()
            return lists.add(self.me, lst, contact, contact, group_id).addCallback(next_edit)

        return _refused_in_list_command(next_edit())

    def do_RML(self, command):
        """
        C{RML t len} + C{<ml>}: take the contacts off the lists their bits
        name (a list they are not on is left as it is); C{RML t OK}.
        """
        initial, entries = self._list_payload(command)
        user = self.me.user
        lists = self.messenger.lists
        edits = [
            (lst, entry.handle)
            for entry in entries
            for lst, bit in membership.LIST_BITS.items()
            if entry.bits & bit and entry.handle in user.lists[lst]
        ]

        def next_edit(_=None):
            while edits:
                lst, contact = edits.pop(0)
                if contact in user.lists[lst]:
                    return lists.remove(self.me, lst, contact).addCallback(next_edit)
            self.send(wire.format_line("RML", command.trid, "OK"))
            return None

        return _refused_in_list_command(next_edit())

    def do_FQY(self, command):
        """
        C{FQY t len} + C{<ml><d n><c n/></d></ml>} (MSNP14+): the network of
        each contact; every address here is on Windows Live (1).
        """
        _, entries = self._list_payload(command, with_bits=False)
        if not entries:
            raise CommandError(errors.INVALID_XML, "FQY names no contact", close=True)
        answer = [membership.ListEntry(entry.handle, 0, membership.WINDOWS_LIVE) for entry in entries]
        self.send(wire.format_payload("FQY", command.trid, (), membership.render(answer, with_bits=False)))

    # Rendering the core's events (MSNP13+)

    def _reverse_list_notice(self, event: events.ReverseListChanged) -> bytes:
        """
        MSNP13+: C{ADL 0} (someone added this user, with their name) or
        C{RML 0} (took them off) with the reverse-list bit.
        """
        entry = membership.ListEntry(event.watcher, membership.RL)
        if event.added:
            return wire.format_payload("ADL", 0, (), membership.render([entry], names={event.watcher: event.name}))
        return wire.format_payload("RML", 0, (), membership.render([entry]))

    def _user_notification(self, event: events.UserNotification) -> None:
        """
        C{UBN sender type len} (MSNP13+) for a notification relayed to this
        endpoint (or to all of the user's, when it names none).
        """
        if not self.dialect.lists_in_address_book:
            return
        if event.instance and event.instance.lower() != self.machine_guid.lower():
            return
        sender = event.sender
        if event.sender_instance and self.dialect.has_multiple_points_of_presence:
            sender = f"{sender};{{{event.sender_instance}}}"
        self.send(wire.format_payload("UBN", None, (sender, event.kind), event.payload))

    # Notifications and messages between users (MSNP13+)

    def do_UUN(self, command):
        """
        C{UUN t handle[;{guid}] type len} + payload → C{UUN t OK}, and
        C{UBN} to the target's endpoints (only that point of presence when
        named); 217 when the target cannot be reached by this user.
        """
        if len(command.args) != 2 or not command.args[1].isdigit():
            raise CommandError(errors.INVALID_PARAMETER)
        target_text, _, guid_text = command.args[0].partition(";")
        if not wire.is_valid_handle(target_text):
            raise CommandError(errors.INVALID_PARAMETER)
        instance = ""
        if guid_text:
            instance = sso.machine_guid(guid_text) or ""
            if not instance:
                raise CommandError(errors.INVALID_PARAMETER)
        target = canonical_handle(target_text)
        me = self.me
        kind, payload = command.args[1], command.payload or b""

        def found(records):
            record = records.get(target)
            if target != me.handle and (record is None or not record.reachable_by(me.handle)):
                raise CommandError(errors.USER_OFFLINE)
            self.send(wire.format_line("UUN", command.trid, "OK"))
            sender_instance = self.machine_guid if self.dialect.has_multiple_points_of_presence else ""
            self.messenger.directory.deliver(
                [target], events.UserNotification(me.handle, target, kind, payload, instance, sender_instance)
            )

        return self.messenger.directory.presence_of([target]).addCallback(found)

    def do_UUM(self, command):
        """
        C{UUM t handle network type len} + MIME message.  At MSNP18 a text
        message (type 1) to a Windows Live user is kept as an offline
        message: C{UUM t OK} once stored.  Other networks are not served
        (204); typing and nudges cannot be kept (217).
        """
        args = command.args
        if len(args) != 3 or not args[1].isdigit() or not args[2].isdigit() or not wire.is_valid_handle(args[0]):
            raise CommandError(errors.INVALID_PARAMETER)
        if int(args[1]) != membership.WINDOWS_LIVE or not self.dialect.prefixed_handles:
            raise CommandError(errors.INVALID_NETWORK, "no other network is served")
        if args[2] != "1":
            raise CommandError(errors.USER_OFFLINE, "only text can be kept for later")
        try:
            headers, text = oim.parse_mime_text(command.payload or b"", base64_body=False)
        except oim.BadMessage as e:
            raise CommandError(errors.INVALID_PARAMETER, str(e))
        me = self.me
        d = self.messenger.offline.leave(me.handle, me.name, canonical_handle(args[0]), text, oim.new_run_id(), 1)

        def refused(failure):
            if failure.check(core_errors.MessengerError):
                raise CommandError(errors.USER_OFFLINE, str(failure.value))
            return failure

        return d.addCallbacks(lambda _: self.send(wire.format_line("UUM", command.trid, "OK")), refused)

    # Circles (MSNP18)

    def do_PUT(self, command):
        # MSNP18 circles (group chats) are not offered.
        raise CommandError(errors.COMMAND_DISABLED)

    def do_SDG(self, command):
        raise CommandError(errors.COMMAND_DISABLED)

    # Personal message and endpoint data (MSNP11+)

    def do_UUX(self, command):
        """
        MSNP11+: the personal message and current media (an XML payload,
        passed on untouched) → C{UUX t 0}, and C{UBX} to every watcher that
        may see this user and speaks MSNP11+.
        """
        payload = command.payload or b""
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(errors.INVALID_PARAMETER, "UUX payload is not UTF-8")
        if self.dialect.lists_in_address_book and payload:
            # MSNP13+: a Data document is the personal message; MSNP16+
            # clients also describe their endpoint (EndpointData,
            # PrivateEndpointData), which is kept with the endpoint.
            try:
                root = safexml.parse_xml(payload)
            except safexml.MalformedXML:
                raise CommandError(errors.INVALID_PARAMETER, "UUX payload is not XML")
            kind = safexml.local(root.tag)
            if kind in ("EndpointData", "PrivateEndpointData"):
                self.endpoint_data[kind] = payload
                self.me.endpoint_details[kind] = payload
                self.send(wire.format_line("UUX", command.trid, 0))
                self._echo_own_presence()
                return
            if kind != "Data":
                raise CommandError(errors.INVALID_PARAMETER, f"UUX {kind} document")
        self.send(wire.format_line("UUX", command.trid, 0))
        self.messenger.presence.set_personal_message(self.me, payload)
        self._echo_own_presence()
