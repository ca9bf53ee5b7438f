"""
The notification server: login, contact lists, privacy and presence.

One L{NotificationSession} per connection.  It receives parsed commands
from L{msnp.msn.protocol.CommandProtocol}, answers through it, and talks to the
other online users' sessions found in the directory.  Line shapes come from
the session's L{msnp.msn.dialects.Dialect}.
"""

from __future__ import annotations

from typing import Optional

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from msnp.msn import dialects, errors, switchboard, wire
from msnp.core import privacy as presence
from msnp.msn.auth import IMessengerUser, LoginThrottle, MD5ChallengeCredentials, new_md5_challenge
from msnp.msn import challenge, passport
from msnp.msn.auth import PassportTicketCredentials
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.protocol import CommandProtocol
from msnp.store.records import StoreError, UserState, canonical_handle

log = Logger()

EDITABLE_LISTS = ("FL", "AL", "BL")

# Commands answered before login; everything else a dialect knows needs it.
_BEFORE_LOGIN = frozenset({"VER", "INF", "CVR", "USR", "PNG", "OUT"})

# URL services and the path they lead to on the operator's web site.
_URL_SERVICES = {
    "INBOX": "inbox",
    "COMPOSE": "compose",
    "PASSWORD": "password",
    "MESSAGE": "message",
    "FOLDERS": "folders",
    "PERSON": "person",
    "MOBILE": "mobile",
    "CHGMOB": "mobile",
    "PROFILE": "profile",
    "N2PACCOUNT": "n2paccount",
    "N2PFUND": "n2pfund",
    "CHAT": "chat",
    "ADDRBOOK": "addressbook",
    "ADVSEARCH": "search",
    "INTSEARCH": "search",
}


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


def _raise(error: Exception):
    raise error


def parse_group_id(token: str, max_groups: int) -> int:
    """
    A group number; one out of range is only sent by a broken client.
    """
    if not token.isdigit() or int(token) >= max_groups:
        raise CloseConnection("group id out of range")
    return int(token)


class NotificationSession:
    """
    The state of one notification-server connection.
    """

    def __init__(self, connection, server: "NotificationServer"):
        self.connection = connection
        self.server = server
        self.config = server.config
        self.dialect: Optional[dialects.Dialect] = None
        self.handle: Optional[str] = None
        self.user: Optional[UserState] = None
        self.status: Optional[str] = None
        self.caps = 0
        self.msnobj = ""
        self.accepts_invitations = True
        self._challenge: Optional[tuple[str, str]] = None
        self._authenticating = False
        self._logout = None
        self._encoded_name = ""
        # MSNP8+: the handle named in USR TWN I; MSNP6+: the open CHL and
        # the timer that hangs up on a client that never answers it;
        # MSNP11+: the personal message shown with UBX.
        self._passport_handle: Optional[str] = None
        self._open_challenge: Optional[str] = None
        self._challenge_timer = None
        self.personal_message = b""
        # GCF is only answered once the lists were synchronised.
        self.synced = False

    @property
    def logged_in(self) -> bool:
        return self.user is not None

    def send(self, data: bytes) -> None:
        # A store write may finish after the client has gone.
        if self.connection is not None:
            self.connection.send(data)

    # Dispatch

    def command_received(self, command: wire.Command):
        name = command.name
        if self.dialect is None:
            if name == "VER":
                return self.do_VER(command)
            if dialects.is_ns_command(name):
                raise CloseConnection(f"{name} before VER")
            raise CommandError(errors.SYNTAX_ERROR)
        if name == "MSG":
            raise CloseConnection("MSG sent to the notification server")
        if not self.dialect.has_command(name):
            answer = self.dialect.answer_when_absent(name)
            if answer == dialects.CLOSE:
                raise CloseConnection(f"{name} is not part of {self.dialect.name}")
            if answer == dialects.UNKNOWN:
                raise CommandError(errors.SYNTAX_ERROR)
            raise CommandError(answer, f"{name} is not part of {self.dialect.name}")
        if name not in _BEFORE_LOGIN and not self.logged_in:
            raise CommandError(errors.NOT_LOGGED_IN)
        handler = getattr(self, "do_" + name, None)
        if handler is None:
            raise CommandError(errors.SYNTAX_ERROR)
        return handler(command)

    # Version and login

    def do_VER(self, command):
        if self.dialect is not None:
            raise CommandError(errors.NOT_EXPECTED, "second VER", close=True)
        dialect = dialects.choose_dialect(command.args, self.config.supported_dialects)
        if dialect is None:
            self.send(wire.format_line("VER", command.trid, 0))
            raise CloseConnection("no common dialect")
        self.dialect = dialect
        self.send(wire.format_line("VER", command.trid, dialect.name))

    def do_INF(self, command):
        self.send(wire.format_line("INF", command.trid, self.dialect.security_packages))

    def do_CVR(self, command):
        args = command.args
        if len(args) < 6:
            raise CommandError(errors.BAD_CVR)
        version = args[5]
        self.send(wire.format_line("CVR", command.trid, version, version, version, self.config.web_base, self.config.web_base))

    def do_USR(self, command):
        if self.logged_in:
            raise CommandError(errors.ALREADY_LOGGED_IN)
        if self._authenticating:
            raise CommandError(errors.NOT_EXPECTED)
        args = command.args
        if len(args) != 3 or args[0] != self.dialect.auth_package or args[1] not in ("I", "S"):
            raise CommandError(errors.AUTHENTICATION_FAILED, "unsupported login", close=True)
        if args[0] == "TWN":
            return self._passport_login(command)
        if not self.config.md5_login:
            raise CommandError(errors.AUTHENTICATION_FAILED, "MD5 login is switched off", close=True)
        if args[1] == "I":
            handle = args[2]
            if not wire.is_valid_handle(handle):
                raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
            challenge = new_md5_challenge()
            self._challenge = (handle, challenge, self.server.clock.seconds())
            self.send(wire.format_line("USR", command.trid, "MD5", "S", challenge))
            return None
        if self._challenge is None:
            raise CommandError(errors.AUTHENTICATION_FAILED, "answer without a challenge", close=True)
        handle, challenge, issued = self._challenge
        self._challenge = None
        credentials = MD5ChallengeCredentials(handle, challenge, args[2])
        expired = self.server.clock.seconds() - issued > self.config.challenge_lifetime
        return self._login(command, credentials, expired)

    def _passport_login(self, command):
        """
        C{USR t TWN I handle} → the policy the client shows Passport;
        C{USR t TWN S ticket} → logged in when the ticket is a live one of
        that handle.
        """
        stage, value = command.args[1], command.args[2]
        if stage == "I":
            if not wire.is_valid_handle(value):
                raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
            self._passport_handle = value
            self.send(wire.format_line("USR", command.trid, "TWN", "S", passport.policy(self.server.clock.seconds())))
            return None
        if self._passport_handle is None:
            raise CommandError(errors.AUTHENTICATION_FAILED, "ticket without USR TWN I", close=True)
        handle, self._passport_handle = self._passport_handle, None
        return self._login(command, PassportTicketCredentials(handle, value))

    def _login(self, command, credentials, expired: bool = False) -> Deferred:
        self._authenticating = True
        if expired:
            d = fail(UnauthorizedLogin("challenge expired"))
        else:
            d = self.server.portal.login(credentials, self, IMessengerUser)

        def logged_in(result):
            _, user, logout = result
            self._authenticating = False
            if self.connection is None:
                logout()
                return
            self._logout = logout
            self.user = user
            self.handle = user.handle
            self._encoded_name = wire.url_encode(user.friendly_name)
            lines = [self.dialect.usr_ok(command.trid, user.handle, self._encoded_name)]
            if self.dialect.sends_sbs:
                lines.append(wire.format_line("SBS", 0, "null"))
            peer = self.connection.transport.getPeer()
            lines.append(
                dialects.profile_message(
                    self.dialect, int(self.server.clock.seconds()), getattr(peer, "host", ""), getattr(peer, "port", 0)
                )
            )
            self.send(b"".join(lines))
            log.info("{handle} logged in with {dialect}", handle=user.handle, dialect=self.dialect.name)

        def failed(failure):
            self._authenticating = False
            failure.trap(UnauthorizedLogin, UnhandledCredentials)
            log.info("login failed for {handle}", handle=credentials.handle)
            address = self.connection.address if self.connection is not None else "?"
            delay = self.server.login_throttle.record_failure(credentials.handle, address)
            refusal = CommandError(errors.AUTHENTICATION_FAILED, "login failed", close=True)
            if not delay:
                raise refusal
            # Repeated failures are answered ever more slowly, and the same
            # way whether or not the account exists.
            return deferLater(self.server.clock, delay, _raise, refusal)

        return d.addCallbacks(logged_in, failed)

    def replaced_by_new_login(self) -> None:
        """
        The same account logged in elsewhere: say so and hang up.
        """
        self.send(wire.format_line("OUT", None, "OTH"))
        self._go_offline()
        if self.connection is not None:
            self.connection.close("logged in elsewhere")

    def shut_down(self) -> None:
        self.send(wire.format_line("OUT", None, "SSD"))
        if self.connection is not None:
            self.connection.close("server shutting down")

    def connection_lost(self) -> None:
        self._cancel_challenge()
        self._go_offline()
        self.connection = None

    def _go_offline(self) -> None:
        if self.user is None:
            return
        if presence.shows_online(self.status):
            self._announce_to_watchers(None)
        self.status = None
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()

    def do_OUT(self, command):
        self.send(wire.format_line("OUT", None))
        raise CloseConnection("client signed out")

    def do_PNG(self, command):
        self.send(self.dialect.qng(self.config.ping_interval))

    # Challenges (MSNP6+)

    def _open_new_challenge(self) -> bytes:
        """
        Start the CHL deadline; returns the line for the caller to send.
        """
        self._open_challenge = challenge.new_challenge()
        self._cancel_challenge_timer()
        self._challenge_timer = self.server.clock.callLater(self.config.challenge_deadline, self._challenge_unanswered)
        return wire.format_line("CHL", 0, self._open_challenge)

    def _challenge_unanswered(self) -> None:
        self._challenge_timer = None
        if self.connection is not None:
            self.connection.close("challenge not answered in time")

    def _cancel_challenge_timer(self) -> None:
        timer, self._challenge_timer = self._challenge_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _cancel_challenge(self) -> None:
        self._open_challenge = None
        self._cancel_challenge_timer()

    def do_QRY(self, command):
        if len(command.args) != 1:
            raise CommandError(errors.CHALLENGE_FAILED, "malformed QRY", close=True)
        pending, self._open_challenge = self._open_challenge, None
        self._cancel_challenge_timer()
        if pending is None or not challenge.answer_is_right(
            self.dialect.uses_msnp11_challenge, pending, command.args[0], command.payload or b""
        ):
            raise CommandError(errors.CHALLENGE_FAILED, "wrong challenge answer", close=True)
        self.send(wire.format_line("QRY", command.trid))

    # Lists

    def do_SYN(self, command):
        if len(command.args) < 1 or not command.args[0].isdigit():
            raise CommandError(errors.INVALID_PARAMETER)
        user = self.user
        self.synced = True
        if int(command.args[0]) == user.version:
            self.send(self.dialect.sync_current(command.trid, user.version))
            return None
        d = self._contact_properties()
        d.addCallback(lambda props: self.send(b"".join(dialects.sync_lines(self.dialect, command.trid, self.user, props))))
        return d

    def _contact_properties(self) -> Deferred:
        if not self.dialect.has_phone_properties or not self.user.lists["FL"]:
            return succeed({})
        return self.server.store.contact_properties(list(self.user.lists["FL"]), self.user.handle)

    def do_LST(self, command):
        if len(command.args) != 1 or command.args[0] not in dialects.LIST_ORDER:
            raise CommandError(errors.INVALID_PARAMETER)
        lst = command.args[0]
        d = self._contact_properties() if lst == "FL" else succeed({})
        d.addCallback(
            lambda props: self.send(b"".join(dialects.list_lines(self.dialect, command.trid, self.user, lst, props)))
        )
        return d

    def do_LSG(self, command):
        self.send(b"".join(dialects.group_lines(self.dialect, command.trid, self.user)))

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
        user = self.user
        group_id = None
        if len(args) == 4:
            if lst != "FL" or not self.dialect.has_groups:
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = parse_group_id(args[3], self.config.max_groups)
            if group_id not in user.groups:
                raise CommandError(errors.INVALID_GROUP)
        elif lst == "FL" and self.dialect.has_groups:
            group_id = 0 if 0 in user.groups else None

        if contact in user.lists[lst]:
            if lst == "FL" and len(args) == 4 and group_id not in user.memberships.get(contact, set()):
                return self._add_to_group(command, contact, group_id)
            raise CommandError(errors.ALREADY_THERE)
        opposite = {"AL": "BL", "BL": "AL"}.get(lst)
        if opposite and contact in user.lists[opposite]:
            raise CommandError(errors.IN_OPPOSITE_LIST)
        if len(user.lists[lst]) >= self.config.list_limits[lst]:
            raise CommandError(errors.LIST_FULL)

        d = self.server.store.add_to_list(user.handle, lst, contact, name, group_id)

        def stored(change):
            seen_before = self._visibility([contact])
            user.lists[lst][contact] = name
            if group_id is not None:
                user.memberships.setdefault(contact, set()).add(group_id)
            user.version = max(user.version, change.version)
            group = (group_id,) if group_id is not None else ()
            self.send(wire.format_line("ADD", command.trid, lst, user.version, contact, wire.url_encode(name), *group))
            other = self.server.directory.find(contact)
            if lst == "FL":
                if other is not None and change.reverse_version is not None:
                    other.reverse_list_added(user.handle, user.friendly_name, change.reverse_version)
                if self.status is not None:
                    self._show_initial_presence(command.trid, [contact])
            else:
                self._privacy_changed(seen_before)

        return d.addCallbacks(stored, self._store_refused)

    def _add_to_group(self, command, contact, group_id):
        user = self.user
        d = self.server.store.add_to_group(user.handle, contact, group_id)

        def stored(version):
            user.memberships.setdefault(contact, set()).add(group_id)
            user.version = max(user.version, version)
            name = user.lists["FL"][contact]
            self.send(wire.format_line("ADD", command.trid, "FL", user.version, contact, wire.url_encode(name), group_id))

        return d.addCallback(stored)

    def _store_refused(self, failure):
        failure.trap(StoreError)
        raise CommandError(failure.value.code, str(failure.value))

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
        user = self.user
        if contact not in user.lists[lst]:
            raise CommandError(errors.NOT_ON_LIST)
        if len(args) == 3:
            if lst != "FL" or not self.dialect.has_groups:
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = parse_group_id(args[2], self.config.max_groups)
            if group_id not in user.groups:
                raise CommandError(errors.INVALID_GROUP)
            if group_id not in user.memberships.get(contact, set()):
                raise CommandError(errors.NOT_IN_GROUP)
            d = self.server.store.remove_from_group(user.handle, contact, group_id)

            def ungrouped(version):
                user.memberships[contact].discard(group_id)
                user.version = max(user.version, version)
                self.send(wire.format_line("REM", command.trid, "FL", user.version, contact, group_id))

            return d.addCallback(ungrouped)

        d = self.server.store.remove_from_list(user.handle, lst, contact)

        def removed(change):
            seen_before = self._visibility([contact])
            del user.lists[lst][contact]
            if lst == "FL":
                user.memberships.pop(contact, None)
            user.version = max(user.version, change.version)
            self.send(wire.format_line("REM", command.trid, lst, user.version, contact))
            if lst == "FL":
                self._reverse_list_dropped(contact, change.reverse_version)
            else:
                self._privacy_changed(seen_before)

        return d.addCallbacks(removed, self._store_refused)

    def _reverse_list_dropped(self, contact: str, reverse_version: Optional[int]) -> None:
        other = self.server.directory.find(contact)
        if other is not None and reverse_version is not None:
            other.reverse_list_removed(self.user.handle, reverse_version)

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
        user = self.user
        group_id = self._group_argument(extra[0]) if extra else None
        if "C" in fields:
            if lst != "FL" or "N" in fields or group_id is None:
                raise CommandError(errors.INVALID_PARAMETER)
            contact = dialects.find_contact(user, fields["C"])
            if contact is None or contact not in user.lists["FL"]:
                raise CommandError(errors.NOT_ON_LIST)
            if group_id in user.memberships.get(contact, set()):
                raise CommandError(errors.ALREADY_THERE)
            d = self.server.store.add_to_group(user.handle, contact, group_id)

            def grouped(version):
                user.memberships.setdefault(contact, set()).add(group_id)
                user.version = max(user.version, version)
                self.send(wire.format_line("ADC", command.trid, "FL", f"C={fields['C']}", extra[0]))

            return d.addCallback(grouped)
        if "N" not in fields:
            raise CommandError(errors.INVALID_PARAMETER)
        contact = self._contact_argument(fields["N"])
        name = decode_name(fields["F"]) if lst == "FL" and "F" in fields else contact
        if lst == "FL" and group_id is None and 0 in user.groups:
            group_id = 0
        if contact in user.lists[lst]:
            raise CommandError(errors.ALREADY_THERE)
        opposite = {"AL": "BL", "BL": "AL"}.get(lst)
        if opposite and contact in user.lists[opposite]:
            raise CommandError(errors.IN_OPPOSITE_LIST)
        if len(user.lists[lst]) >= self.config.list_limits[lst]:
            raise CommandError(errors.LIST_FULL)
        d = self.server.store.add_to_list(user.handle, lst, contact, name, group_id)

        def stored(change):
            seen_before = self._visibility([contact])
            user.lists[lst][contact] = name
            if group_id is not None:
                user.memberships.setdefault(contact, set()).add(group_id)
            user.version = max(user.version, change.version)
            if lst == "FL":
                reply = [f"N={contact}", f"F={wire.url_encode(name)}", f"C={dialects.contact_id(user.handle, contact)}", *extra]
            else:
                reply = [f"N={contact}"]
            self.send(wire.format_line("ADC", command.trid, lst, *reply))
            if lst == "FL":
                other = self.server.directory.find(contact)
                if other is not None and change.reverse_version is not None:
                    other.reverse_list_added(user.handle, user.friendly_name, change.reverse_version)
                if self.status is not None:
                    self._show_initial_presence(command.trid, [contact])
            else:
                self._privacy_changed(seen_before)

        def refused(failure):
            failure.trap(StoreError)
            # MSNP10 answers an unknown account with 208 where ADD used 205.
            code = errors.INVALID_USERNAME if failure.value.code == errors.INVALID_USER else failure.value.code
            raise CommandError(code, str(failure.value))

        return d.addCallbacks(stored, refused)

    def _remove_by_contact_id(self, command):
        """
        C{REM t FL contact-id {group}} or C{REM t AL|BL handle}.
        """
        args = command.args
        if args[0] == "PL":
            return self._remove_pending(command)
        lst = self._list_argument(args[0])
        user = self.user
        if lst == "FL":
            contact = dialects.find_contact(user, args[1])
        else:
            contact = canonical_handle(args[1])
        if contact is None or contact not in user.lists[lst]:
            raise CommandError(errors.NOT_ON_LIST)
        if len(args) == 3:
            if lst != "FL":
                raise CommandError(errors.INVALID_PARAMETER)
            group_id = self._group_argument(args[2])
            if group_id not in user.memberships.get(contact, set()):
                raise CommandError(errors.NOT_IN_GROUP)
            d = self.server.store.remove_from_group(user.handle, contact, group_id)

            def ungrouped(version):
                user.memberships[contact].discard(group_id)
                user.version = max(user.version, version)
                self.send(wire.format_line("REM", command.trid, "FL", args[1], args[2]))

            return d.addCallback(ungrouped)
        d = self.server.store.remove_from_list(user.handle, lst, contact)

        def removed(change):
            seen_before = self._visibility([contact])
            del user.lists[lst][contact]
            if lst == "FL":
                user.memberships.pop(contact, None)
            user.version = max(user.version, change.version)
            self.send(wire.format_line("REM", command.trid, lst, args[1]))
            if lst == "FL":
                self._reverse_list_dropped(contact, change.reverse_version)
            else:
                self._privacy_changed(seen_before)

        return d.addCallbacks(removed, self._store_refused)

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
        user = self.user
        contact = dialects.find_contact(user, args[0])
        if contact is None or not any(contact in user.lists[lst] for lst in EDITABLE_LISTS):
            raise CommandError(errors.NOT_ON_LIST)
        name = decode_name(args[2])
        d = self.server.store.rename_contact(user.handle, contact, name)

        def renamed(version):
            for lst in EDITABLE_LISTS:
                if contact in user.lists[lst]:
                    user.lists[lst][contact] = name
            user.version = max(user.version, version)
            self.send(wire.format_line("SBP", command.trid, args[0], "MFN", wire.url_encode(name)))

        return d.addCallback(renamed)

    def _set_own_name(self, command, token: str):
        """
        C{PRP t MFN name} (MSNP10+): one's own friendly name, which watchers
        then see.
        """
        name = decode_name(token)
        if not name:
            raise CommandError(errors.INVALID_PARAMETER)
        user = self.user
        d = self.server.store.set_friendly_name(user.handle, name)

        def renamed(version):
            user.friendly_name = name
            self._encoded_name = wire.url_encode(name)
            user.version = max(user.version, version)
            self.send(wire.format_line("PRP", command.trid, "MFN", self._encoded_name))
            if presence.shows_online(self.status):
                self._announce_to_watchers(self.status)

        return d.addCallback(renamed)

    # Events from other sessions

    def reverse_list_added(self, watcher: str, name: str, version: int) -> None:
        if self.user is None:
            return
        self.user.lists["RL"][watcher] = name
        self.user.version = max(self.user.version, version)
        self.send(self.dialect.reverse_list_added(self.user.version, watcher, wire.url_encode(name)))

    def reverse_list_removed(self, watcher: str, version: int) -> None:
        if self.user is None:
            return
        self.user.lists["RL"].pop(watcher, None)
        self.user.version = max(self.user.version, version)
        self.send(self.dialect.reverse_list_removed(self.user.version, watcher))

    # Privacy settings

    def do_GTC(self, command):
        return self._set_privacy(command, "gtc", ("A", "N"))

    def do_BLP(self, command):
        return self._set_privacy(command, "blp", ("AL", "BL"))

    def _set_privacy(self, command, setting: str, allowed: tuple[str, ...]):
        if len(command.args) != 1 or command.args[0] not in allowed:
            raise CloseConnection(f"bad {setting.upper()} argument")
        value = command.args[0]
        user = self.user
        if getattr(user, setting) == value:
            raise CommandError(errors.ALREADY_IN_MODE)
        d = self.server.store.set_privacy(user.handle, setting, value)

        def stored(version):
            seen_before = self._visibility(user.lists["RL"]) if setting == "blp" else {}
            setattr(user, setting, value)
            user.version = max(user.version, version)
            self.send(wire.format_line(command.name, command.trid, *self.dialect.versioned(user.version), value))
            self._privacy_changed(seen_before)

        return d.addCallback(stored)

    # Names and properties

    def do_REA(self, command):
        if len(command.args) != 2:
            raise CommandError(errors.INVALID_PARAMETER)
        target = canonical_handle(command.args[0])
        name = decode_name(command.args[1])
        user = self.user
        if target == user.handle:
            d = self.server.store.set_friendly_name(user.handle, name)

            def renamed_self(version):
                user.friendly_name = name
                self._encoded_name = wire.url_encode(name)
                user.version = max(user.version, version)
                self.send(wire.format_line("REA", command.trid, user.version, user.handle, self._encoded_name))
                if presence.shows_online(self.status):
                    self._announce_to_watchers(self.status)

            return d.addCallback(renamed_self)
        if not any(target in user.lists[lst] for lst in EDITABLE_LISTS):
            raise CommandError(errors.NOT_ON_LIST)
        d = self.server.store.rename_contact(user.handle, target, name)

        def renamed_contact(version):
            for lst in EDITABLE_LISTS:
                if target in user.lists[lst]:
                    user.lists[lst][target] = name
            user.version = max(user.version, version)
            self.send(wire.format_line("REA", command.trid, user.version, target, wire.url_encode(name)))

        return d.addCallback(renamed_contact)

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
        user = self.user
        d = self.server.store.set_property(user.handle, key, value)

        def stored(version):
            if value:
                user.properties[key] = value
            else:
                user.properties.pop(key, None)
            user.version = max(user.version, version)
            self._phone_changed(key, value)
            self.send(
                wire.format_line(
                    "PRP", command.trid, *self.dialect.versioned(user.version), key, wire.url_encode(value) if value else None
                )
            )

        return d.addCallback(stored)

    def _phone_changed(self, key: str, value: str) -> None:
        """
        Push a changed phone property to the online watchers this user's
        privacy rules let see it, as BPR with the watcher's list version.
        """
        encoded = wire.url_encode(value)
        directory = self.server.directory
        for watcher_handle in self.user.lists["RL"]:
            watcher = directory.find(watcher_handle)
            if watcher is None or watcher.user is None or watcher is self:
                continue
            if not presence.allows(self.user, watcher_handle):
                continue
            line = watcher.dialect.bpr_update(watcher.user.version, self.handle, key, encoded)
            if line is not None:
                watcher.send(line)

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
        group_id = dialects.find_group(self.user, token)
        if group_id is None:
            raise CommandError(errors.INVALID_GROUP)
        return group_id

    def _group_token(self, group_id: int) -> object:
        if self.dialect.has_contact_ids:
            return dialects.group_guid(self.user.handle, group_id)
        return group_id

    def do_ADG(self, command):
        args = command.args
        if len(args) not in (1, 2):
            raise CommandError(errors.INVALID_PARAMETER)
        name = self._group_name(args[0])
        user = self.user
        free = [g for g in range(self.config.max_groups) if g not in user.groups]
        if not free:
            raise CommandError(errors.TOO_MANY_GROUPS)
        group_id = free[0]
        d = self.server.store.add_group(user.handle, group_id, name)

        def stored(version):
            user.groups[group_id] = name
            user.version = max(user.version, version)
            self.send(self.dialect.adg(command.trid, user.version, wire.url_encode(name), self._group_token(group_id)))

        return d.addCallbacks(stored, self._store_refused)

    def do_REG(self, command):
        args = command.args
        if len(args) not in (2, 3):
            raise CommandError(errors.INVALID_PARAMETER)
        group_id = self._group_argument(args[0])
        name = self._group_name(args[1])
        user = self.user
        if group_id not in user.groups:
            raise CommandError(errors.INVALID_GROUP)
        d = self.server.store.rename_group(user.handle, group_id, name)

        def stored(version):
            user.groups[group_id] = name
            user.version = max(user.version, version)
            self.send(self.dialect.reg(command.trid, user.version, self._group_token(group_id), wire.url_encode(name)))

        return d.addCallback(stored)

    def do_RMG(self, command):
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        group_id = self._group_argument(command.args[0])
        user = self.user
        if group_id == 0:
            raise CommandError(errors.CANNOT_REMOVE_GROUP_ZERO)
        if group_id not in user.groups:
            raise CommandError(errors.INVALID_GROUP)
        only_here = [c for c, groups in user.memberships.items() if groups == {group_id}]
        d = self.server.store.remove_group(user.handle, group_id, only_here)

        def stored(removal):
            del user.groups[group_id]
            for groups in user.memberships.values():
                groups.discard(group_id)
            for contact in only_here:
                user.lists["FL"].pop(contact, None)
                user.memberships.pop(contact, None)
            user.version = max(user.version, removal.version)
            self.send(wire.format_line("RMG", command.trid, *self.dialect.versioned(user.version), self._group_token(group_id)))
            for contact, reverse_version in removal.dropped:
                self._reverse_list_dropped(contact, reverse_version)

        return d.addCallback(stored)

    # Presence

    def do_CHG(self, command):
        if not command.args:
            raise CommandError(errors.INVALID_PARAMETER)
        state = command.args[0]
        if state == "FLN":
            raise CommandError(errors.INVALID_PARAMETER, "CHG FLN")
        if state not in presence.SETTABLE_STATES:
            raise CloseConnection(f"unknown status {state!r}")
        caps, msnobj = self._client_details(command.args[1:])
        first = self.status is None
        previous = self.status
        details_changed = (caps, msnobj) != (self.caps, self.msnobj)
        self.status = state
        self.caps, self.msnobj = caps, msnobj
        # Everything this client is sent goes out in one write, in order.
        lines = [wire.format_line("CHG", command.trid, *command.args)]
        if first:
            lines.extend(self._initial_presence_lines(command.trid, list(self.user.lists["FL"])))
        if (state != previous or details_changed) and (presence.shows_online(state) or presence.shows_online(previous)):
            self._announce_to_watchers(
                state if presence.shows_online(state) else None, details_only=state == previous
            )
        if self.personal_message and presence.shows_online(state) and not presence.shows_online(previous):
            # A personal message set while offline or hidden follows the NLN.
            self._announce_personal_message()
        if first and self.dialect.has_challenges:
            lines.append(self._open_new_challenge())
        self.send(b"".join(lines))

    def _client_details(self, extra) -> tuple[int, str]:
        """
        The client capabilities (MSNP8+) and URL-encoded MSN object (MSNP9+,
        only after capabilities) given with CHG.
        """
        details = self.dialect.chg_details
        if not details or not extra:
            # Before MSNP8 anything after the state is ignored, not refused:
            # a client that sent capabilities anyway would be left offline.
            return 0, ""
        if len(extra) > details:
            raise CommandError(errors.INVALID_PARAMETER, "too many CHG parameters")
        try:
            caps = wire.parse_trid(extra[0])
        except ValueError:
            raise CommandError(errors.INVALID_PARAMETER, "capabilities are not a number")
        return caps, extra[1] if len(extra) == 2 else ""

    def _show_initial_presence(self, trid: int, contacts: list[str]) -> None:
        lines = self._initial_presence_lines(trid, contacts)
        if lines:
            self.send(b"".join(lines))

    def _initial_presence_lines(self, trid: int, contacts: list[str]) -> list[bytes]:
        """
        ILN for each of C{contacts} that is online and lets this user see
        them.
        """
        directory = self.server.directory
        lines = []
        for contact in contacts:
            other = directory.find(contact)
            if other is None or other.user is None or not presence.shows_online(other.status):
                continue
            if presence.allows(other.user, self.handle):
                lines.append(self.dialect.iln(trid, other.status, other.handle, other._encoded_name, other.caps, other.msnobj))
                if self.dialect.has_personal_messages and other.personal_message:
                    lines.append(self.dialect.ubx(other.handle, other.personal_message))
        return lines

    def _announce_to_watchers(
        self, status: Optional[str], only: Optional[list[str]] = None, details_only: bool = False
    ) -> None:
        """
        Tell every online watcher allowed to see this user its new state
        (C{None}: offline).  With C{details_only} (only capabilities or MSN
        object changed) watchers whose dialect shows neither are skipped.
        """
        directory = self.server.directory
        rendered: dict = {}
        for watcher_handle in only if only is not None else self.user.lists["RL"]:
            watcher = directory.find(watcher_handle)
            if watcher is None or watcher.status is None or watcher is self:
                continue
            if not presence.allows(self.user, watcher_handle):
                continue
            if details_only and not watcher.dialect.merges_lists:
                continue
            watcher.send(self._presence_line(watcher.dialect, status, rendered))

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
        self.personal_message = payload
        self.send(wire.format_line("UUX", command.trid, 0))
        if presence.shows_online(self.status):
            self._announce_personal_message()

    def _announce_personal_message(self) -> None:
        payload = self.personal_message
        directory = self.server.directory
        for watcher_handle in self.user.lists["RL"]:
            watcher = directory.find(watcher_handle)
            if watcher is None or watcher is self or watcher.status is None or watcher.dialect is None:
                continue
            if watcher.dialect.has_personal_messages and presence.allows(self.user, watcher_handle):
                watcher.send(watcher.dialect.ubx(self.handle, payload))

    def _presence_line(self, dialect, status, rendered: dict) -> bytes:
        line = rendered.get(dialect)
        if line is None:
            if status is None:
                line = dialect.fln(self.handle)
            else:
                line = dialect.nln(status, self.handle, self._encoded_name, self.caps, self.msnobj)
            rendered[dialect] = line
        return line

    def _visibility(self, watchers) -> dict[str, bool]:
        """
        Whether each of C{watchers} may see this user, taken before a
        privacy change so that only changed views are sent afterwards.
        """
        return {handle: presence.allows(self.user, handle) for handle in watchers}

    def _privacy_changed(self, seen_before: dict[str, bool]) -> None:
        """
        After an AL/BL/BLP change, show or hide this user from the online
        watchers whose view it changed (C{seen_before}: the view before).
        """
        if not presence.shows_online(self.status):
            return
        directory = self.server.directory
        rendered_online: dict = {}
        rendered_offline: dict = {}
        for watcher_handle, was_visible in seen_before.items():
            if watcher_handle not in self.user.lists["RL"]:
                continue
            visible = presence.allows(self.user, watcher_handle)
            if visible == was_visible:
                continue
            watcher = directory.find(watcher_handle)
            if watcher is None or watcher.status is None:
                continue
            if visible:
                watcher.send(self._presence_line(watcher.dialect, self.status, rendered_online))
            else:
                watcher.send(self._presence_line(watcher.dialect, None, rendered_offline))

    # Other services

    def do_URL(self, command):
        if not command.args:
            raise CommandError(errors.INVALID_PARAMETER)
        path = _URL_SERVICES.get(command.args[0].upper())
        if path is None:
            raise CommandError(errors.INVALID_PARAMETER)
        site = (2,) if self.dialect.has_url_site_id else ()
        self.send(wire.format_line("URL", command.trid, "/" + path, self.config.web_base, *site))

    def do_FND(self, command):
        # The member directory was switched off in April 2003; this is what
        # the service answered from then on.
        raise CommandError(errors.COMMAND_DISABLED)

    def do_SND(self, command):
        # The target is an e-mail address or an FND result's index.
        args = command.args
        if not args or len(args) > 4 or not ("@" in args[0] or args[0].isdigit()):
            raise CommandError(errors.GENERIC_FAILURE)
        # Invitations by e-mail need a mail relay this server does not have.
        raise CommandError(errors.COMMAND_DISABLED)

    def do_IMS(self, command):
        if len(command.args) != 1 or command.args[0] not in ("ON", "OFF"):
            raise CommandError(errors.INVALID_PARAMETER)
        self.accepts_invitations = command.args[0] == "ON"
        self.send(wire.format_line("IMS", command.trid, 0, command.args[0]))

    def do_SDC(self, command):
        """
        C{SDC t target lcid library client-id X X name length} + text: an
        invitation e-mail.  As with SND, there is no mail relay to send it.
        """
        if len(command.args) != dialects.SDC_PARAMETERS:
            raise CommandError(errors.GENERIC_FAILURE, "malformed SDC", close=True)
        raise CommandError(errors.COMMAND_DISABLED)

    def do_PAG(self, command):
        """
        C{PAG t handle length} + page (MSNP5-8): a text to a contact's
        mobile device.  There is no mobile gateway, so nobody accepts pages.
        """
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        return self._page(command.args[0])

    def do_PGD(self, command):
        """
        C{PGD t handle device length} + page (MSNP9+): as PAG, to a mobile
        device (1) or a Web Watch (2).
        """
        if len(command.args) != 2:
            raise CommandError(errors.INVALID_PARAMETER)
        handle, device = command.args
        if not device.isdigit():
            raise CloseConnection("PGD device type is not a number")
        if device not in dialects.PAGE_DEVICES:
            raise CommandError(errors.INVALID_PARAMETER)
        return self._page(handle)

    def _page(self, handle: str):
        if not wire.is_valid_handle(handle):
            raise CommandError(errors.INVALID_PARAMETER)
        raise CommandError(errors.NOT_ACCEPTING_PAGES)

    def do_GCF(self, command):
        """
        C{GCF t Shields.xml} (MSNP11-12) → the shields configuration, once
        the client has sent SYN.
        """
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        if not self.synced:
            raise CommandError(errors.NOT_EXPECTED, "GCF before SYN")
        if command.args[0] != dialects.SHIELDS_FILE:
            raise CommandError(errors.INVALID_PARAMETER)
        self.send(self.dialect.config_file(command.trid, dialects.SHIELDS_FILE, dialects.SHIELDS_CONFIG))

    # Switchboard

    def do_XFR(self, command):
        if command.args != ("SB",):
            raise CommandError(errors.INVALID_PARAMETER)
        if not presence.shows_online(self.status):
            raise CommandError(errors.NOT_ALLOWED_WHEN_OFFLINE)
        server = self.server
        d = switchboard.grant_switchboard(server.directory, server.clock, self.config, self)
        d.addCallback(
            lambda cookie: self.send(
                wire.format_line("XFR", command.trid, "SB", self.config.switchboard_address, "CKI", cookie)
            )
        )
        return d

    def accepts_invitation_from(self, caller: str) -> bool:
        """
        Whether a switchboard may ring this user for C{caller}: shown online
        (not hidden), IMS ON, and the privacy rules let C{caller} see them.
        """
        return (
            self.user is not None
            and presence.shows_online(self.status)
            and self.accepts_invitations
            and presence.allows(self.user, caller)
        )

    def ring(self, session_id: str, address: str, cookie: str, caller: str, caller_encoded_name: str) -> None:
        """
        Invite this user into switchboard session C{session_id}.
        """
        self.send(wire.format_line("RNG", None, session_id, address, "CKI", cookie, caller, caller_encoded_name))


class NotificationProtocol(CommandProtocol):
    role = "notification"
    payload_commands = dialects.NS_PAYLOAD_COMMANDS


class NotificationServer(Factory):
    """
    Everything notification sessions share: configuration, store,
    directory, the cred portal and the clock.
    """

    protocol = NotificationProtocol

    def __init__(self, config, store, directory, portal, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.store = store
        self.directory = directory
        self.portal = portal
        self.clock = clock
        self.login_throttle = LoginThrottle(config, clock.seconds)

    def make_session(self, connection) -> NotificationSession:
        return NotificationSession(connection, self)
