"""
The dispatch server: version negotiation, then a referral to a
notification server (C{XFR t NS}), then the server hangs up.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory

from msnp.msn import errors, wire
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.notification import NotificationSession
from msnp.msn.protocol import CommandProtocol


class DispatchSession(NotificationSession):
    """
    Speaks the notification server's pre-login commands; a login attempt
    (C{USR t MD5 I} until MSNP7, C{USR t TWN I} from MSNP8) is answered
    with the notification server's address.
    """

    def do_USR(self, command):
        args = command.args
        if len(args) != 3 or args[0] != self.dialect.auth_package or args[1] != "I":
            raise CommandError(errors.AUTHENTICATION_FAILED, "unsupported login", close=True)
        if not wire.is_valid_handle(args[2]):
            raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
        self.send(self.dialect.xfr_ns(command.trid, self.config.notification_address, self.config.dispatch_address))
        raise CloseConnection("referred to the notification server")


class DispatchProtocol(CommandProtocol):
    role = "dispatch"


class DispatchServer(Factory):
    protocol = DispatchProtocol

    def __init__(self, config, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.clock = clock

    def make_session(self, connection) -> DispatchSession:
        return DispatchSession(connection, self)
