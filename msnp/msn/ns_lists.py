"""
The notification server's contact-list commands for the dialects whose lists
the server holds, MSNP2–MSNP12: SYN, LST and LSG read them; ADD, REM (and,
from MSNP10, ADC and SBP, which name contacts by id) edit them; GTC and BLP
set privacy; REA and PRP set names and phone numbers; ADG, REG and RMG edit
groups.  BLP and PRP are still sent from MSNP13, when the lists live in the
address book (L{msnp.msn.ns_address_book}).

L{ContactListCommands} is mixed into
L{msnp.msn.notification.NotificationSession}: each command is a call on the
core's L{msnp.core.lists.ContactLists}, answered in the session's dialect.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from msnp.core import errors as core_errors
from msnp.msn import dialects, errors, wire
from msnp.msn.errors import CloseConnection, CommandError, code_for
from msnp.store.records import StoreError, canonical_handle

EDITABLE_LISTS = ("FL", "AL", "BL")


def decode_name(token: str, limit: int = wire.MAX_NAME_BYTES) -> str:
    """
    Decode a URL-encoded name parameter; 201 when it is too long or not
    UTF-8.
    """
    if len(token.encode("utf-8")) > limit:
        raise CommandError(errors.INVALID_PARAMETER, "name too long")
    try:
        name = wire.url_decode(token)
    except ValueError:
        raise CommandError(errors.INVALID_PARAMETER, "name is not UTF-8")
    # Raw (unencoded) UTF-8 is accepted, but what is sent on must fit too.
    if len(wire.url_encode(name)) > limit:
        raise CommandError(errors.INVALID_PARAMETER, "name too long once encoded")
    return name



def parse_group_id(token: str, max_groups: int) -> int:
    """
    A group number; one out of range is only sent by a broken client.
    """
    if not token.isdigit() or int(token) >= max_groups:
        raise CloseConnection("group id out of range")
    return int(token)



def answer_refusal(failure):
    """
    A refusal from the core or the store, answered with its error number.
    """
    error = failure.value
    if isinstance(error, (core_errors.MessengerError, StoreError)):
        raise CommandError(code_for(error), str(error))
    return failure


class ContactListCommands:
    """
    SYN, LST, LSG, ADD, REM, ADC, SBP, GTC, BLP, REA, PRP, ADG, REG and RMG
    for a logged-in L{msnp.msn.notification.NotificationSession} (its C{me},
    C{dialect}, C{messenger}, C{config}, C{send} and
    C{_show_initial_presence}).
    """

    # Reading the lists

    def do_SYN(self, command):
        if len(command.args) < 1 or not command.args[0].isdigit():
            raise CommandError(errors.INVALID_PARAMETER)
        user = self.me.user
        self.synced = True
        if int(command.args[0]) == user.version:
            self.send(self.dialect.sync_current(command.trid, user.version))
            return None
        d = self._contact_properties()
        d.addCallback(lambda props: self.send(b"".join(dialects.sync_lines(self.dialect, command.trid, user, props))))
        return d


    def _contact_properties(self) -> Deferred:
        user = self.me.user
        if not self.dialect.has_phone_properties or not user.lists["FL"]:
            return succeed({})
        return self.messenger.store.contact_properties(list(user.lists["FL"]), user.handle)


    def do_LST(self, command):
        if len(command.args) != 1 or command.args[0] not in dialects.LIST_ORDER:
            raise CommandError(errors.INVALID_PARAMETER)
        lst = command.args[0]
        user = self.me.user
        d = self._contact_properties() if lst == "FL" else succeed({})
        d.addCallback(lambda props: self.send(b"".join(dialects.list_lines(self.dialect, command.trid, user, lst, props))))
        return d


    def do_LSG(self, command):
        self.send(b"".join(dialects.group_lines(self.dialect, command.trid, self.me.user)))

    # Editing the lists

    def _list_argument(self, token: str) -> str:
        if token == "RL":
            raise CloseConnection("client tried to edit its reverse list")
        if token == "PL" and self.dialect.has_pending_list:
            raise CloseConnection("client tried to add to its pending list")
        if token not in EDITABLE_LISTS:
            raise CommandError(errors.INVALID_PARAMETER, "no such list")
        return token


    def _contact_argument(self, token: str) -> str:
        if len(token.encode("utf-8")) > wire.MAX_HANDLE_BYTES or "@" not in token:
            raise CommandError(errors.INVALID_PARAMETER, "malformed handle")
        if not wire.handle_has_domain(token):
            raise CommandError(errors.DOMAIN_MISSING, "handle has no domain")
        if not wire.is_valid_handle(token):
            raise CommandError(errors.INVALID_PARAMETER, "malformed handle")
        return canonical_handle(token)


    def do_ADD(self, command):
        args = command.args
        if len(args) < 3 or len(args) > 4:
            raise CommandError(errors.INVALID_PARAMETER)
        lst = self._list_argument(args[0])
        contact = self._contact_argument(args[1])
        name = decode_name(args[2])
        user = self.me.user
        group_id = None
        if len(args) == 4:
            if lst != "FL" or not self.dialect.has_groups:
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = parse_group_id(args[3], self.config.max_groups)
            if group_id not in user.groups:
                raise CommandError(errors.INVALID_GROUP)
            if contact in user.lists["FL"] and group_id not in user.memberships.get(contact, set()):
                return self._add_to_group(command, contact, group_id)
        elif lst == "FL" and self.dialect.has_groups:
            group_id = 0 if 0 in user.groups else None
        group = (group_id,) if group_id is not None else ()

        def confirm(edit):
            self.send(wire.format_line("ADD", command.trid, lst, edit.version, contact, wire.url_encode(name), *group))

        d = self.messenger.lists.add(self.me, lst, contact, name, group_id, confirm)
        if lst == "FL":
            d.addCallback(lambda _: self._show_initial_presence(command.trid, [contact]))
        return d.addErrback(answer_refusal)


    def _add_to_group(self, command, contact, group_id):
        user = self.me.user

        def confirm(edit):
            name = user.lists["FL"][contact]
            self.send(wire.format_line("ADD", command.trid, "FL", edit.version, contact, wire.url_encode(name), group_id))

        return self.messenger.lists.add_to_group(self.me, contact, group_id, confirm).addErrback(answer_refusal)


    def do_REM(self, command):
        args = command.args
        if len(args) < 2 or len(args) > 3:
            raise CommandError(errors.INVALID_PARAMETER)
        if self.dialect.has_contact_ids:
            return self._remove_by_contact_id(command)
        lst = self._list_argument(args[0])
        if not wire.is_valid_handle(args[1]):
            raise CommandError(errors.INVALID_PARAMETER, "malformed handle")
        contact = canonical_handle(args[1])
        user = self.me.user
        if contact not in user.lists[lst]:
            raise CommandError(errors.NOT_ON_LIST)
        lists = self.messenger.lists
        if len(args) == 3:
            if lst != "FL" or not self.dialect.has_groups:
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = parse_group_id(args[2], self.config.max_groups)

            def ungrouped(edit):
                self.send(wire.format_line("REM", command.trid, "FL", edit.version, contact, group_id))

            return lists.remove_from_group(self.me, contact, group_id, ungrouped).addErrback(answer_refusal)

        def removed(edit):
            self.send(wire.format_line("REM", command.trid, lst, edit.version, contact))

        return lists.remove(self.me, lst, contact, removed).addErrback(answer_refusal)

    # Lists by contact id (MSNP10+)

    def do_ADC(self, command):
        """
        C{ADC t FL N=handle F=name {group}}, C{ADC t AL|BL N=handle}, or
        C{ADC t FL C=contact-id group} to put a listed contact in a group.
        """
        args = command.args
        if len(args) < 2:
            raise CommandError(errors.INVALID_PARAMETER)
        lst = self._list_argument(args[0])
        fields, extra = {}, []
        for token in args[1:]:
            key, eq, value = token.partition("=")
            if eq and key in ("N", "F", "C") and key not in fields:
                fields[key] = value
            else:
                extra.append(token)
        if len(extra) > 1 or (extra and lst != "FL"):
            raise CommandError(errors.INVALID_PARAMETER)
        user = self.me.user
        lists = self.messenger.lists
        group_id = self._group_argument(extra[0]) if extra else None
        if "C" in fields:
            if lst != "FL" or "N" in fields or group_id is None:
                raise CommandError(errors.INVALID_PARAMETER)
            contact = dialects.find_contact(user, fields["C"])
            if contact is None:
                raise CommandError(errors.NOT_ON_LIST)

            def grouped(edit):
                self.send(wire.format_line("ADC", command.trid, "FL", f"C={fields['C']}", extra[0]))

            return lists.add_to_group(self.me, contact, group_id, grouped).addErrback(answer_refusal)
        if "N" not in fields:
            raise CommandError(errors.INVALID_PARAMETER)
        contact = self._contact_argument(fields["N"])
        name = decode_name(fields["F"]) if lst == "FL" and "F" in fields else contact
        if lst == "FL" and group_id is None and 0 in user.groups:
            group_id = 0

        def confirm(edit):
            if lst == "FL":
                reply = [f"N={contact}", f"F={wire.url_encode(name)}", f"C={dialects.contact_id(user.handle, contact)}", *extra]
            else:
                reply = [f"N={contact}"]
            self.send(wire.format_line("ADC", command.trid, lst, *reply))

        d = lists.add(self.me, lst, contact, name, group_id, confirm)
        if lst == "FL":
            d.addCallback(lambda _: self._show_initial_presence(command.trid, [contact]))

        def refused(failure):
            # MSNP10 answers an unknown account with 208 where ADD used 205.
            if failure.check(core_errors.NoSuchUser):
                raise CommandError(errors.INVALID_USERNAME, str(failure.value))
            return answer_refusal(failure)

        return d.addErrback(refused)


    def _remove_by_contact_id(self, command):
        """
        C{REM t FL contact-id {group}} or C{REM t AL|BL handle}.
        """
        args = command.args
        if args[0] == "PL":
            return self._remove_pending(command)
        lst = self._list_argument(args[0])
        user = self.me.user
        if lst == "FL":
            contact = dialects.find_contact(user, args[1])
        else:
            contact = canonical_handle(args[1])
        if contact is None or contact not in user.lists[lst]:
            raise CommandError(errors.NOT_ON_LIST)
        lists = self.messenger.lists
        if len(args) == 3:
            if lst != "FL":
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = self._group_argument(args[2])

            def ungrouped(edit):
                self.send(wire.format_line("REM", command.trid, "FL", args[1], args[2]))

            return lists.remove_from_group(self.me, contact, group_id, ungrouped).addErrback(answer_refusal)

        def removed(edit):
            self.send(wire.format_line("REM", command.trid, lst, args[1]))

        return lists.remove(self.me, lst, contact, removed).addErrback(answer_refusal)


    def _remove_pending(self, command):
        """
        C{REM t PL handle}: nobody is ever put on the pending list (the
        reverse-list notice is sent as it happens), so no handle is on it.
        """
        if len(command.args) != 2 or not wire.is_valid_handle(command.args[1]):
            raise CommandError(errors.INVALID_PARAMETER)
        raise CommandError(errors.NOT_ON_LIST)


    def do_SBP(self, command):
        """
        C{SBP t contact-id MFN name}: rename a contact on one's lists.
        """
        args = command.args
        if len(args) != 3:
            raise CommandError(errors.INVALID_PARAMETER)
        if args[1] != "MFN":
            raise CommandError(errors.NOT_EXPECTED)
        user = self.me.user
        contact = dialects.find_contact(user, args[0])
        if contact is None or not any(contact in user.lists[lst] for lst in EDITABLE_LISTS):
            raise CommandError(errors.NOT_ON_LIST)
        name = decode_name(args[2])

        def renamed(edit):
            self.send(wire.format_line("SBP", command.trid, args[0], "MFN", wire.url_encode(name)))

        return self.messenger.lists.rename_contact(self.me, contact, name, renamed).addErrback(answer_refusal)


    def _set_own_name(self, command, token: str):
        """
        C{PRP t MFN name} (MSNP10+): one's own friendly name, which watchers
        then see.
        """
        name = decode_name(token)
        if not name:
            raise CommandError(errors.INVALID_PARAMETER)

        def renamed(edit):
            self.send(wire.format_line("PRP", command.trid, "MFN", wire.url_encode(name)))

        return self.messenger.lists.set_friendly_name(self.me, name, renamed).addErrback(answer_refusal)

    # Privacy settings

    def do_GTC(self, command):
        return self._set_privacy(command, "gtc", ("A", "N"))


    def do_BLP(self, command):
        return self._set_privacy(command, "blp", ("AL", "BL"))


    def _set_privacy(self, command, setting: str, allowed: tuple[str, ...]):
        if len(command.args) != 1 or command.args[0] not in allowed:
            raise CloseConnection(f"bad {setting.upper()} argument")
        value = command.args[0]
        if self.dialect.lists_in_address_book and getattr(self.me.user, setting) == value:
            # MSNP13+ clients send BLP at every login, whatever the address
            # book already says: the setting is echoed, not refused (218).
            self.send(wire.format_line(command.name, command.trid, value))
            return None

        def stored(edit):
            self.send(wire.format_line(command.name, command.trid, *self.dialect.versioned(edit.version), value))

        return self.messenger.lists.set_privacy(self.me, setting, value, stored).addErrback(answer_refusal)

    # Names and properties

    def do_REA(self, command):
        if len(command.args) != 2:
            raise CommandError(errors.INVALID_PARAMETER)
        target = canonical_handle(command.args[0])
        name = decode_name(command.args[1])
        lists = self.messenger.lists
        if target == self.me.handle:

            def renamed_self(edit):
                self.send(wire.format_line("REA", command.trid, edit.version, target, wire.url_encode(name)))

            return lists.set_friendly_name(self.me, name, renamed_self).addErrback(answer_refusal)
        user = self.me.user
        if not any(target in user.lists[lst] for lst in EDITABLE_LISTS):
            raise CommandError(errors.NOT_ON_LIST)

        def renamed_contact(edit):
            self.send(wire.format_line("REA", command.trid, edit.version, target, wire.url_encode(name)))

        return lists.rename_contact(self.me, target, name, renamed_contact).addErrback(answer_refusal)


    def do_PRP(self, command):
        args = command.args
        if not args or len(args) > 2:
            raise CommandError(errors.INVALID_PARAMETER)
        key = args[0]
        if len(key) > 3:
            raise CloseConnection("PRP key too long")
        if key == "MFN" and self.dialect.has_contact_ids:
            return self._set_own_name(command, args[1] if len(args) == 2 else "")
        if key not in dialects.SETTABLE_PHONE_KEYS:
            raise CommandError(errors.NOT_EXPECTED)
        raw = args[1] if len(args) == 2 else ""
        value = decode_name(raw, self.config.max_phone_bytes)
        if key == "MOB" and value not in ("", "Y", "N"):
            raise CommandError(errors.INVALID_PARAMETER)

        def stored(edit):
            self.send(
                wire.format_line(
                    "PRP", command.trid, *self.dialect.versioned(edit.version), key, wire.url_encode(value) if value else None
                )
            )

        return self.messenger.lists.set_property(self.me, key, value, stored).addErrback(answer_refusal)

    # Groups

    def _group_name(self, token: str) -> str:
        if len(token.encode("utf-8")) > self.config.max_group_name_bytes:
            raise CommandError(errors.GROUP_NAME_TOO_LONG)
        return decode_name(token)


    def _group_argument(self, token: str) -> int:
        """
        A group as the client names it: a number until MSNP9, a GUID from
        MSNP10 (224 when it names no group of this user).
        """
        if not self.dialect.has_contact_ids:
            return parse_group_id(token, self.config.max_groups)
        group_id = dialects.find_group(self.me.user, token)
        if group_id is None:
            raise CommandError(errors.INVALID_GROUP)
        return group_id


    def _group_token(self, group_id: int) -> object:
        if self.dialect.has_contact_ids:
            return dialects.group_guid(self.me.handle, group_id)
        return group_id


    def do_ADG(self, command):
        args = command.args
        if len(args) not in (1, 2):
            raise CommandError(errors.INVALID_PARAMETER)
        name = self._group_name(args[0])

        def stored(edit):
            self.send(self.dialect.adg(command.trid, edit.version, wire.url_encode(name), self._group_token(edit.group_id)))

        return self.messenger.lists.add_group(self.me, name, stored).addErrback(answer_refusal)


    def do_REG(self, command):
        args = command.args
        if len(args) not in (2, 3):
            raise CommandError(errors.INVALID_PARAMETER)
        group_id = self._group_argument(args[0])
        name = self._group_name(args[1])

        def stored(edit):
            self.send(self.dialect.reg(command.trid, edit.version, self._group_token(group_id), wire.url_encode(name)))

        return self.messenger.lists.rename_group(self.me, group_id, name, stored).addErrback(answer_refusal)


    def do_RMG(self, command):
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        group_id = self._group_argument(command.args[0])

        def stored(edit):
            self.send(
                wire.format_line("RMG", command.trid, *self.dialect.versioned(edit.version), self._group_token(group_id))
            )

        return self.messenger.lists.remove_group(self.me, group_id, stored).addErrback(answer_refusal)
