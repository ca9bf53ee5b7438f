"""
The dispatch server: version negotiation, then a referral to a
notification server (C{XFR t NS}), then the server hangs up.  Alone it
refers to its own process's notification server; in a cluster a
placement (handle -> Deferred address) picks a live node.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.protocol import Factory
from twisted.logger import Logger

from msnp.msn import dialects, errors, negotiation, phases, wire
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.phases import Phase
from msnp.msn.protocol import CommandProtocol

log = Logger()

# Seconds a login waits for the cluster's directory to name a node.
PLACEMENT_TIMEOUT = 5.0


class DispatchSession:
    """
    Speaks the pre-login commands; a login attempt (C{USR t MD5 I} until
    MSNP7, C{USR t TWN I} from MSNP8) is answered with the notification
    server's address.
    """

    role = "dispatch"

    def __init__(self, connection, server: "DispatchServer"):
        self.connection = connection
        self.config = server.config
        self.placement = server.placement
        self.clock = server.clock
        self.phase = Phase.CONNECTED
        self.dialect: Optional[dialects.Dialect] = None

    def send(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.send(data)

    def command_received(self, command: wire.Command):
        name = command.name
        if self.dialect is None:
            phases.check(self.role, phases.DISPATCH, name, self.phase, dialects.is_ns_command(name))
        elif name == "MSG":
            raise CloseConnection("MSG sent to the dispatch server")
        elif not self.dialect.has_command(name):
            answer = self.dialect.answer_when_absent(name)
            if answer == dialects.CLOSE:
                raise CloseConnection(f"{name} is not part of {self.dialect.name}")
            if answer == dialects.UNKNOWN:
                raise CommandError(errors.SYNTAX_ERROR)
            raise CommandError(answer, f"{name} is not part of {self.dialect.name}")
        else:
            # Nothing after login exists here: every other command of the
            # dialect is answered as from a client not logged in.
            phases.check(self.role, phases.DISPATCH, name, self.phase)
        return getattr(self, "do_" + name)(command)

    def do_VER(self, command):
        self.dialect = negotiation.agree_dialect(self, command)
        self.phase = Phase.NEGOTIATED

    def do_INF(self, command):
        negotiation.answer_inf(self, command)

    def do_CVR(self, command):
        negotiation.answer_cvr(self, command)

    def do_PNG(self, command):
        self.send(self.dialect.qng(self.config.ping_interval))

    def do_OUT(self, command):
        self.send(wire.format_line("OUT", None))
        raise CloseConnection("client signed out")

    def do_USR(self, command):
        args = command.args
        if len(args) != 3 or args[0] != self.dialect.auth_package or args[1] != "I":
            raise CommandError(errors.AUTHENTICATION_FAILED, "unsupported login", close=True)
        if not wire.is_valid_handle(args[2]):
            raise CommandError(errors.AUTHENTICATION_FAILED, "malformed handle", close=True)
        if self.placement is None:
            self._refer(command.trid, self.config.notification_address)
        # A directory that does not answer (Redis away) holds a login only
        # so long, then the client is told to come back.
        d = self.placement(args[2]).addTimeout(PLACEMENT_TIMEOUT, self.clock)

        def placed(address):
            if address is None:
                raise CommandError(errors.SERVER_UNAVAILABLE, "no notification node is live", close=True)
            self._refer(command.trid, address)

        def unplaced(failure):
            if failure.check(CommandError, CloseConnection):
                return failure
            log.warn("dispatch: cannot choose a notification node ({error})", error=failure.getErrorMessage())
            raise CommandError(errors.SERVER_UNAVAILABLE, "cluster directory unreachable", close=True)

        return d.addCallback(placed).addErrback(unplaced)

    def _refer(self, trid, address: str):
        self.send(self.dialect.xfr_ns(trid, address, self.config.dispatch_address))
        raise CloseConnection("referred to the notification server")

    def shut_down(self) -> None:
        self.send(wire.format_line("OUT", None, "SSD"))
        if self.connection is not None:
            self.connection.close("server shutting down")

    def connection_lost(self) -> None:
        self.connection = None


class DispatchProtocol(CommandProtocol):
    role = "dispatch"


class DispatchServer(Factory):
    protocol = DispatchProtocol

    def __init__(self, config, clock=None, placement=None):
        """
        C{placement}, when given, maps a handle to a Deferred firing with
        the address of the notification server to refer it to (None: no
        server can take it, answered 601).
        """
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config
        self.clock = clock
        self.placement = placement

    def make_session(self, connection) -> DispatchSession:
        return DispatchSession(connection, self)
