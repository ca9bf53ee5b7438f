"""
The notification server: MSNP login, contact lists, privacy and presence as
thin adapters over the core.

One L{NotificationSession} per connection.  It receives parsed commands
from L{msnp.msn.protocol.CommandProtocol}, checks them against the phase
table (L{msnp.msn.phases}), turns each into a call on the core's services
(L{msnp.core.messenger.Messenger}) and answers in the session's
L{msnp.msn.dialects.Dialect}.  As an endpoint it receives the core's events
and renders them in that dialect; it never calls another session.

Here are dispatch, login, sign-out, event delivery, CHG, challenges and XFR;
the other commands come from mixins: L{msnp.msn.ns_lists} (MSNP2–MSNP12
lists), L{msnp.msn.ns_address_book} (MSNP13+) and L{msnp.msn.ns_services}.
"""

from __future__ import annotations

from typing import Optional

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from msnp import metrics
from msnp.core import events
from msnp.core.accounts import CHALLENGE_EXPIRED, MD5_OFF, IMessengerUser, LoginRefused, LoginThrottle, refusal_of
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.presence import SignedInUser
from msnp.msn import challenge, dialects, errors, negotiation, passport, phases, switchboard, wire
from msnp.msn import oim, sso
from msnp.msn.auth import MD5ChallengeCredentials, PassportTicketCredentials, SSOCredentials, new_md5_challenge
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.ns_address_book import AddressBookCommands
from msnp.msn.ns_lists import ContactListCommands
from msnp.msn.ns_services import ServiceCommands
from msnp.msn.phases import Phase
from msnp.msn.protocol import CommandProtocol

log = Logger()

def _raise(error: Exception):
    raise error


@implementer(IEndpoint)
class NotificationSession(ContactListCommands, AddressBookCommands, ServiceCommands):
    """
    The state of one notification-server connection, and its endpoint once
    logged in.
    """

    role = "notification"
    phase_table = phases.NOTIFICATION

    def __init__(self, connection, server: "NotificationServer"):
        self.connection = connection
        self.server = server
        self.config = server.config
        self.messenger = server.messenger
        self.phase = Phase.CONNECTED
        self.dialect: Optional[dialects.Dialect] = None
        self.me: Optional[SignedInUser] = None
        self.endpoint_id = self.messenger.endpoint_ids.next()
        self.client_version = ""
        self._challenge: Optional[tuple[str, str, float]] = None
        self._logout = None
        # MSNP8+: the handle named in USR TWN I; MSNP6+: the open CHL and
        # the timer that hangs up on a client that never answers it.
        self._passport_handle: Optional[str] = None
        # MSNP15+: the nonce sent with USR SSO S; MSNP16+: the machine
        # GUID naming this endpoint among the account's others.
        self._sso_nonce: Optional[str] = None
        self.machine_guid = ""
        self._open_challenge: Optional[str] = None
        self._challenge_timer = None
        # GCF is only answered once the lists were synchronised.
        self.synced = False
        # MSNP16+: what the client said of this endpoint in UUX.
        self.endpoint_data: dict[str, bytes] = {}

    @property
    def handle(self) -> Optional[str]:
        return self.me.handle if self.me is not None else None

    @property
    def logged_in(self) -> bool:
        return self.me is not None

    def send(self, data: bytes) -> None:
        # A store write may finish after the client has gone.
        if self.connection is not None:
            self.connection.send(data)

    def endpoint_record(self, handle: str, since: float) -> EndpointRecord:
        address = self.connection.address if self.connection is not None else ""
        return EndpointRecord(
            self.endpoint_id,
            handle,
            self.messenger.directory.node,
            "msn",
            self.dialect.name,
            self.client_version,
            address,
            since,
            self.machine_guid if self.dialect.has_multiple_points_of_presence else "",
        )

    # Dispatch

    def command_received(self, command: wire.Command):
        name = command.name
        if self.dialect is None:
            phases.check(self.role, self.phase_table, name, self.phase, dialects.is_ns_command(name))
        elif name == "MSG":
            raise CloseConnection("MSG sent to the notification server")
        elif not self.dialect.has_command(name):
            answer = self.dialect.answer_when_absent(name)
            if answer == dialects.CLOSE:
                raise CloseConnection(f"{name} is not part of {self.dialect.name}")
            if answer == dialects.UNKNOWN:
                raise CommandError(errors.SYNTAX_ERROR)
            raise CommandError(answer, f"{name} is not part of {self.dialect.name}")
        else:
            phases.check(self.role, self.phase_table, name, self.phase)
        handler = getattr(self, "do_" + name, None)
        if handler is None:
            raise CommandError(errors.SYNTAX_ERROR)
        return handler(command)

    # Version and login

    def do_VER(self, command):
        self.dialect = negotiation.agree_dialect(self, command)
        self.phase = Phase.NEGOTIATED

    def do_INF(self, command):
        negotiation.answer_inf(self, command)

    def do_CVR(self, command):
        self.client_version = negotiation.answer_cvr(self, command)

    def do_USR(self, command):
        args = command.args
        if len(args) < 3 or args[0] != self.dialect.auth_package or args[1] not in ("I", "S"):
            raise CommandError(errors.AUTHENTICATION_FAILED, "unsupported login", close=True)
        if args[0] == "SSO":
            return self._sso_login(command)
        if len(args) != 3:
            raise CommandError(errors.AUTHENTICATION_FAILED, "unsupported login", close=True)
        if args[0] == "TWN":
            return self._passport_login(command)
        if not self.config.md5_login:
            self._log_refusal("md5", args[2], LoginRefused(*MD5_OFF))
            raise CommandError(errors.AUTHENTICATION_FAILED, "MD5 login is switched off", close=True)
        if args[1] == "I":
            handle = args[2]
            if not wire.is_valid_handle(handle):
                raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
            challenge = new_md5_challenge()
            self._challenge = (handle, challenge, self.server.clock.seconds())
            self.phase = Phase.CHALLENGED
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
            self.phase = Phase.CHALLENGED
            self.send(
                self._login_policies()
                + wire.format_line("USR", command.trid, "TWN", "S", passport.policy(self.server.clock.seconds()))
            )
            return None
        if self._passport_handle is None:
            raise CommandError(errors.AUTHENTICATION_FAILED, "ticket without USR TWN I", close=True)
        handle, self._passport_handle = self._passport_handle, None
        return self._login(command, PassportTicketCredentials(handle, value))

    def _login_policies(self) -> bytes:
        """
        MSNP13+: the policies (C{GCF 0}) sent before C{USR ... S}.
        """
        if not self.dialect.sends_login_policies:
            return b""
        return self.dialect.config_file(0, None, dialects.LOGIN_POLICIES)

    def _sso_login(self, command):
        """
        MSNP15+: C{USR t SSO I handle} → C{USR t SSO S MBI_KEY_OLD nonce};
        C{USR t SSO S ticket blob [machine-guid]} → logged in when the
        ticket is a live messengerclear ticket of that handle and the blob
        answers the nonce with the BinarySecret issued with it (the GUID is
        required from MSNP16).
        """
        args = command.args
        if args[1] == "I":
            if len(args) != 3 or not wire.is_valid_handle(args[2]):
                raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
            self._passport_handle = args[2]
            self._sso_nonce = sso.new_nonce()
            self.phase = Phase.CHALLENGED
            self.send(self._login_policies() + wire.format_line("USR", command.trid, "SSO", "S", sso.POLICY, self._sso_nonce))
            return None
        handle, nonce = self._passport_handle, self._sso_nonce
        self._passport_handle = self._sso_nonce = None
        if handle is None or nonce is None:
            raise CommandError(errors.AUTHENTICATION_FAILED, "ticket without USR SSO I", close=True)
        wanted = 5 if self.dialect.requires_machine_guid else 4
        if len(args) != wanted:
            raise CommandError(errors.AUTHENTICATION_FAILED, "USR SSO S without the proof or machine GUID", close=True)
        if wanted == 5:
            guid = sso.machine_guid(args[4])
            if guid is None:
                raise CommandError(errors.AUTHENTICATION_FAILED, "malformed machine GUID", close=True)
            self.machine_guid = guid
        return self._login(command, SSOCredentials(handle, args[2], nonce, args[3]))

    def _login(self, command, credentials, expired: bool = False) -> Deferred:
        self.phase = Phase.CHECKING
        method = "passport_ticket" if isinstance(credentials, PassportTicketCredentials) else "md5"
        if expired:
            d = fail(LoginRefused(*CHALLENGE_EXPIRED))
        else:
            d = self.server.portal.login(credentials, self, IMessengerUser)

        def logged_in(result):
            _, me, logout = result
            if self.connection is None:
                logout()
                return
            self._logout = logout
            self.me = me
            self.phase = Phase.LOGGED_IN
            metrics.LOGINS_ACCEPTED.labels(method).inc()
            lines = [self.dialect.usr_ok(command.trid, me.handle, wire.url_encode(me.name))]
            if self.dialect.sends_sbs:
                lines.append(wire.format_line("SBS", 0, "null"))
            peer = self.connection.transport.getPeer()
            lines.append(
                dialects.profile_message(
                    self.dialect, int(self.server.clock.seconds()), getattr(peer, "host", ""), getattr(peer, "port", 0)
                )
            )
            if self.dialect.echoes_own_presence:
                # MSNP16+: the user's own extended presence, empty until the
                # first CHG (then it names the points of presence).
                lines.append(self.dialect.ubx(me.handle, b""))
            self.send(b"".join(lines))
            log.info("{handle} logged in with {dialect}", handle=me.handle, dialect=self.dialect.name)

        def failed(failure):
            self.phase = Phase.NEGOTIATED
            failure.trap(UnauthorizedLogin, UnhandledCredentials)
            address = self.connection.address if self.connection is not None else "?"
            delay = self.server.login_throttle.record_failure(credentials.handle, address)
            refused = refusal_of(failure)
            refused.delayed = delay
            self._log_refusal(method, credentials.handle, refused)
            refusal = CommandError(errors.AUTHENTICATION_FAILED, "login failed", close=True)
            if not delay:
                raise refusal
            # Repeated failures are answered ever more slowly, and the same
            # way whether or not the account exists.
            return deferLater(self.server.clock, delay, _raise, refusal)

        return d.addCallbacks(logged_in, failed)

    def _log_refusal(self, method: str, handle: str, refused: LoginRefused) -> None:
        """
        Tell the operator why a login was refused (the client only gets 911)
        and count it; one answered after the throttle's delay counts as
        throttled.
        """
        label = "throttled" if refused.delayed else refused.label
        metrics.LOGINS_REFUSED.labels(method, label).inc()
        address = self.connection.address if self.connection is not None else "?"
        log.info(
            "login refused for {handle} ({method}) from {address}: {reason}{throttled}",
            handle=handle[: wire.MAX_HANDLE_BYTES],
            method=method,
            address=address,
            reason=refused.reason,
            throttled=f" (throttled: answered after {refused.delayed:g} s)" if refused.delayed else "",
            msnp_event="login_refused",
        )

    def shut_down(self) -> None:
        self.send(wire.format_line("OUT", None, "SSD"))
        if self.connection is not None:
            self.connection.close("server shutting down")

    def connection_lost(self) -> None:
        self._cancel_challenge()
        self._go_offline()
        self.connection = None

    def _go_offline(self) -> None:
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()

    def do_OUT(self, command):
        if self.dialect is None or self.dialect.echoes_out:
            self.send(wire.format_line("OUT", None))
        raise CloseConnection("client signed out")

    def do_PNG(self, command):
        self.send(self.dialect.qng(self.config.ping_interval))

    # Events from the core

    def receive(self, event) -> None:
        me = self.me
        connection = self.connection
        if me is None or connection is None:
            return
        kind = type(event)
        if kind is events.PresenceChanged:
            # Once per watcher of every change: the line rendered for this
            # dialect by the first watcher that speaks it, sent straight.
            if me.status is None or (event.details_only and not self.dialect.merges_lists):
                return
            (metrics.PRESENCE_OFFLINE if event.status is None else metrics.PRESENCE_ONLINE).value += 1
            line = event.rendered.get(self.dialect)
            connection.send(line if line is not None else self._presence_line(event))
        elif kind is events.PersonalMessageChanged:
            if me.status is not None and self.dialect.has_personal_messages:
                metrics.PRESENCE_PERSONAL_MESSAGE.inc()
                if event.handle == me.handle:
                    # About oneself (MSNP16+ points of presence): with the
                    # private data of each endpoint, so not shared.
                    self.send(self.dialect.ubx(event.handle, self._extended_presence(event.handle, event.payload)))
                    return
                line = event.rendered.get(self.dialect)
                if line is None:
                    payload = self._extended_presence(event.handle, event.payload)
                    line = event.rendered[self.dialect] = self.dialect.ubx(event.handle, payload)
                self.send(line)
        elif kind is events.PropertyChanged:
            line = self.dialect.bpr_update(me.user.version, event.handle, event.key, wire.url_encode(event.value))
            if line is not None:
                self.send(line)
        elif kind is events.ReverseListChanged:
            self.messenger.lists.apply_reverse_change(me, event)
            if self.dialect.lists_in_address_book:
                self.send(self._reverse_list_notice(event))
            elif event.added:
                self.send(self.dialect.reverse_list_added(me.user.version, event.watcher, wire.url_encode(event.name)))
            else:
                self.send(self.dialect.reverse_list_removed(me.user.version, event.watcher))
        elif kind is events.UserNotification:
            self._user_notification(event)
        elif kind is events.OfflineMessageArrived:
            if self.dialect.lists_in_address_book:
                self.send(oim.arrival_notice(event.message, me.handle))
        elif kind is events.OfflineMessagesDeleted:
            if self.dialect.lists_in_address_book:
                self.send(oim.deletion_notice(event.count))
        elif kind is events.Ring:
            self._ring(event)
        elif kind is events.Kicked:
            self._kicked(event.reason)
        elif kind is events.ListsChanged:
            self._reload_lists()
        elif kind is events.MaintenanceNotice:
            line = event.rendered.get("msn")
            if line is None:
                line = event.rendered["msn"] = dialects.maintenance_notice(event.minutes)
            self.send(line)

    def _extended_presence(self, handle: str, payload: bytes) -> bytes:
        """
        MSNP16+: the UBX document of C{handle} with one C{EndpointData} per
        point of presence signed in here (and, about this user, each one's
        C{PrivateEndpointData}); earlier dialects get C{payload} as it is.
        """
        if not self.dialect.has_multiple_points_of_presence:
            return payload
        endpoints = [me for me in self.messenger.signed_in(handle) if me.instance]
        if not endpoints:
            return payload
        extra = []
        for me in endpoints:
            caps = self.dialect.capabilities(me.client_caps, me.client_caps_ex)
            extra.append(f'<EndpointData id="{{{me.instance}}}"><Capabilities>{caps}</Capabilities></EndpointData>'.encode())
        if handle == self.handle:
            for me in endpoints:
                private = _inner_xml(me.endpoint_details.get("PrivateEndpointData", b""))
                extra.append(b'<PrivateEndpointData id="{%s}">%s</PrivateEndpointData>' % (me.instance.encode(), private))
        if b"</Data>" in payload:
            head, _, tail = payload.rpartition(b"</Data>")
            return head + b"".join(extra) + b"</Data>" + tail
        return b"<Data><PSM></PSM><CurrentMedia></CurrentMedia>" + b"".join(extra) + b"</Data>"

    def _echo_own_presence(self) -> None:
        """
        MSNP16+: the user's endpoints hear their own extended presence
        (which endpoints are signed in, with what) after a change.
        """
        if self.dialect.has_multiple_points_of_presence:
            me = self.me
            self.messenger.directory.deliver([me.handle], events.PersonalMessageChanged(me.handle, me.personal_message))

    def _presence_line(self, event: events.PresenceChanged) -> bytes:
        dialect = self.dialect
        line = event.rendered.get(dialect)
        if line is None:
            if event.status is None:
                line = dialect.fln(event.handle)
            else:
                line = dialect.nln(
                    dialects.CODE_OF_STATUS[event.status],
                    event.handle,
                    dialects.encoded_name(event.name),
                    event.client_caps,
                    event.msn_object,
                    event.client_caps_ex,
                )
            event.rendered[dialect] = line
        return line

    def _kicked(self, reason: str) -> None:
        self.send(wire.format_line("OUT", None, "SSD" if reason == events.SHUTDOWN else "OTH"))
        self._go_offline()
        if self.connection is not None:
            self.connection.close("logged in elsewhere" if reason == events.REPLACED else f"ended: {reason}")

    def _reload_lists(self) -> None:
        """
        The lists were changed from outside this session (an operator
        deleted an account on them): read them again, and tell the client
        with C{REM 0} what left them.
        """
        me = self.me

        def reloaded(user):
            if user is None or self.me is not me or self.connection is None:
                return
            held = me.user
            held.version = max(held.version, user.version)
            lines = []
            for lst, entries in held.lists.items():
                for contact in [c for c in entries if c not in user.lists.get(lst, {})]:
                    del entries[contact]
                    lines.append(self.dialect.list_removed(held.handle, held.version, lst, contact))
            held.memberships = user.memberships
            me.privacy_edited()
            if lines:
                self.send(b"".join(lines))

        d = self.messenger.store.load_user(me.handle).addCallback(reloaded)
        d.addErrback(lambda failure: log.failure("reloading the lists of {handle} failed", failure, handle=me.handle))

    def _ring(self, event: events.Ring) -> None:
        """
        Invite this user into switchboard session C{event.session_id} with a
        cookie of their own.
        """
        me = self.me
        if not (me.shown and me.accepts_invitations):
            return
        if event.except_instance and event.except_instance.lower() == self.machine_guid.lower():
            return
        clock = self.server.clock
        now = clock.seconds()
        ticket = switchboard.ticket_for(self, now + self.config.cookie_lifetime, event.session_id)
        cookie = switchboard.new_cookie()
        caller_name = wire.url_encode(event.caller_name)

        def stored(_):
            self.send(self.dialect.rng(event.session_id, event.address, cookie, event.caller, caller_name))

        self.messenger.directory.add_cookie(cookie, ticket, now).addCallback(stored)

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
            self.dialect.uses_msnp11_challenge,
            pending,
            command.args[0],
            command.payload or b"",
            challenge.products_for(self.dialect.version),
        ):
            raise CommandError(errors.CHALLENGE_FAILED, "wrong challenge answer", close=True)
        self.send(wire.format_line("QRY", command.trid))

    # Presence

    def _show_initial_presence(self, trid: int, contacts: list[str]) -> Optional[Deferred]:
        """
        ILN (and UBX) for those of C{contacts} shown online to this user,
        once this user has a status.
        """
        if self.me.status is None:
            return None
        d = self._initial_presence_lines(trid, contacts)
        d.addCallback(lambda lines: self.send(b"".join(lines)) if lines else None)
        return d

    def _initial_presence_lines(self, trid: int, contacts: list[str]) -> Deferred:
        dialect = self.dialect

        def render(records):
            metrics.PRESENCE_INITIAL.inc(len(records))
            lines = []
            for record in records:
                lines.append(
                    dialect.iln(
                        trid,
                        dialects.CODE_OF_STATUS[record.status],
                        record.handle,
                        dialects.encoded_name(record.name),
                        record.client_caps,
                        record.msn_object,
                        record.client_caps_ex,
                    )
                )
                if dialect.has_personal_messages and record.personal_message:
                    lines.append(dialect.ubx(record.handle, self._extended_presence(record.handle, record.personal_message)))
            return lines

        return self.messenger.presence.visible_contacts(self.me, contacts).addCallback(render)

    def do_CHG(self, command):
        if not command.args:
            raise CommandError(errors.INVALID_PARAMETER)
        code = command.args[0]
        if code == "FLN":
            raise CommandError(errors.INVALID_PARAMETER, "CHG FLN")
        status = dialects.STATUS_OF_CODE.get(code)
        if status is None:
            raise CloseConnection(f"unknown status {code!r}")
        caps, msnobj, caps_ex = self._client_details(command.args[1:])
        first = self.messenger.presence.set_status(self.me, status, caps, msnobj, caps_ex)
        self.phase = Phase.ONLINE
        # Everything this client is sent goes out in one write, in order.
        reply = self.dialect.chg(command.trid, code, caps, msnobj, command.args[1:], caps_ex)
        if not first:
            self.send(reply)
            self._echo_own_presence()
            return None
        d = self._initial_presence_lines(command.trid, list(self.me.user.lists["FL"]))
        if self.dialect.lists_in_address_book:
            # MSNP13+: the offline messages waiting, as a Mail-Data notice.
            d.addCallback(self._with_mail_data)

        def initial(lines):
            lines.insert(0, reply)
            if self.dialect.has_challenges:
                lines.append(self._open_new_challenge())
            self.send(b"".join(lines))
            self._echo_own_presence()

        return d.addCallback(initial)

    def _with_mail_data(self, lines: list) -> Deferred:
        handle = self.me.handle

        def add(messages):
            lines.append(oim.initial_notice(messages, handle))
            return lines

        return self.messenger.offline.messages(handle).addCallback(add)

    def _client_details(self, extra) -> tuple[int, str, int]:
        """
        The client capabilities (MSNP8+; C{caps:capsex} from MSNP16) and
        URL-encoded MSN object (MSNP9+, only after capabilities; C{0} for
        none from MSNP13) given with CHG.
        """
        details = self.dialect.chg_details
        if not details or not extra:
            # Before MSNP8 anything after the state is ignored, not refused:
            # a client that sent capabilities anyway would be left offline.
            return 0, "", 0
        if len(extra) > details:
            raise CommandError(errors.INVALID_PARAMETER, "too many CHG parameters")
        caps_text, _, ex_text = extra[0].partition(":")
        # papyon sends caps:capsex at MSNP15 too: taken from MSNP13 on, and
        # shown to each watcher in its own dialect's form.
        if ex_text and not self.dialect.lists_in_address_book:
            raise CommandError(errors.INVALID_PARAMETER, "capabilities are not a number")
        try:
            caps = wire.parse_trid(caps_text)
            caps_ex = wire.parse_trid(ex_text) if ex_text else 0
        except ValueError:
            raise CommandError(errors.INVALID_PARAMETER, "capabilities are not a number")
        msnobj = extra[1] if len(extra) == 2 else ""
        if msnobj == "0" and self.dialect.lists_in_address_book:
            msnobj = ""
        return caps, msnobj, caps_ex

    # Switchboard

    def do_XFR(self, command):
        if command.args != ("SB",):
            raise CommandError(errors.INVALID_PARAMETER)
        if not self.me.shown:
            raise CommandError(errors.NOT_ALLOWED_WHEN_OFFLINE)

        def granted(address):
            if address is None:
                raise CommandError(errors.SWITCHBOARD_FAILED, "no live switchboard")
            d = switchboard.grant_switchboard(self.messenger.directory, self.server.clock, self.config, self)
            return d.addCallback(lambda cookie: self.send(self.dialect.xfr_sb(command.trid, address, cookie)))

        return self.server.switchboard_address().addCallback(granted)



def _inner_xml(document: bytes) -> bytes:
    """
    What is inside a document's root element (a client's
    C{<PrivateEndpointData>…</PrivateEndpointData>}), as it was sent.
    """
    start = document.find(b">")
    end = document.rfind(b"</")
    if start < 0 or end <= start or document[start - 1 : start] == b"/":
        return b""
    return document[start + 1 : end]


class NotificationProtocol(CommandProtocol):
    role = "notification"
    payload_commands = dialects.NS_PAYLOAD_COMMANDS


class NotificationServer(Factory):
    """
    Everything notification sessions share: configuration, the messenger
    core, the cred portal, the login throttle and the clock.
    """

    protocol = NotificationProtocol

    def __init__(self, config, messenger, portal, clock=None, login_throttle=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.messenger = messenger
        self.portal = portal
        self.clock = clock
        self.login_throttle = login_throttle if login_throttle is not None else LoginThrottle(config, clock.seconds)

    # Set on a cluster whose switchboards are other processes: a Deferred
    # firing with the address of a live switchboard, or None for none.
    place_switchboard = None

    def switchboard_address(self) -> Deferred:
        """
        Where an XFR SB sends the client: this process's switchboard, or
        the one L{place_switchboard} picks.
        """
        if self.place_switchboard is not None:
            return self.place_switchboard()
        return succeed(self.config.switchboard_address)

    def make_session(self, connection) -> NotificationSession:
        return NotificationSession(connection, self)
