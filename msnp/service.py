"""
The running server: every role on its own endpoint, the store and the
directory they share, and an orderly shutdown.
"""

from __future__ import annotations

import signal
from typing import Optional

from twisted.application.service import MultiService, Service
from twisted.internet import error as internet_error
from twisted.internet.defer import CancelledError, Deferred, DeferredList, TimeoutError, gatherResults, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

import msnp

from msnp.config import ServerConfig
from msnp.control.api import database_identity
from msnp.metrics import TimedStore
from msnp.core.accounts import LoginThrottle, PasswordHashChecker, ThrottledChecker
from msnp.core.messenger import Messenger
from msnp.core.reaped import announce_offline
from msnp.directory.interface import DirectoryUnavailable
from msnp.directory.placement import choose_node, choose_switchboard
from msnp.msn.abservice import AddressBookService, SharingService
from msnp.msn.gateway import Gateway
from msnp.msn.gateway import make_site as make_gateway_site
from msnp.msn.oim import OIMReadService, OIMStoreService
from msnp.msn.storage import StorageService
from msnp.msn.auth import PassportTickets, ServiceTokens, make_portal
from msnp.directory.local import LocalDirectory
from msnp.msn.dispatch import DispatchServer
from msnp.msn.notification import NotificationServer
from msnp.msn.passport import make_site
from msnp.msn.protocol import connections_of
from msnp.store.sqlite import ThreadedStore
from msnp.msn.switchboard import SwitchboardServer

log = Logger()

# Seconds an XFR SB waits for the directory to name the live switchboards
# before it is refused (601).
SWITCHBOARD_LOOKUP_TIMEOUT = 5.0


class StartFailed(Exception):
    """
    A listener could not start; C{option} names the setting at fault and
    C{reason} says why, in words for the operator.
    """

    def __init__(self, option: str, reason: str):
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


def why_not_listening(description: str, error: BaseException) -> str:
    """
    One line on why C{description} could not be listened on.
    """
    if isinstance(error, CannotListenError):
        cause = getattr(error.socketError, "strerror", None) or str(error.socketError)
        return f"cannot listen on {description}: {cause}"
    return f"cannot listen on {description}: {error}"


class ListeningService(Service):
    """
    Listens on an endpoint description while running.  L{bind} raises
    L{StartFailed} when the port cannot be had.
    """

    def __init__(self, reactor, description: str, factory, option: str, on_listening=None):
        self._reactor = reactor
        self.description = description
        self.factory = factory
        self.option = option
        self._on_listening = on_listening
        self.port = None

    def bind(self) -> None:
        if self.port is not None:
            return
        failures = []
        try:
            d = serverFromString(self._reactor, self.description).listen(self.factory)
        except Exception as error:
            raise StartFailed(self.option, why_not_listening(self.description, error))
        d.addCallbacks(self._listening, failures.append)
        if failures:
            raise StartFailed(self.option, why_not_listening(self.description, failures[0].value))

    def unbind(self):
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()

    def hold(self) -> None:
        """
        Leave new connections waiting in the listen queue, not accepted,
        until L{release}: the port is bound but nothing can be served yet.
        """
        stop_reading = getattr(self.port, "stopReading", None)
        if stop_reading is not None:
            stop_reading()

    def release(self) -> None:
        start_reading = getattr(self.port, "startReading", None)
        if start_reading is not None:
            start_reading()

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.bind()

    def _listening(self, port) -> None:
        self.port = port
        if self._on_listening is not None:
            self._on_listening(port)

    def startService(self) -> None:
        self.bind()
        super().startService()

    def stopService(self):
        super().stopService()
        return self.unbind()


def _port_of(port) -> Optional[int]:
    return getattr(port.getHost(), "port", None)


class MessengerService(MultiService):
    """
    One msnp server: dispatch, notification and switchboard roles over one
    store and one directory.
    """

    # Set by the first SIGTERM taken (see _take_sigterm).
    _stopping_on_sigterm = False

    # The SIGTERM handler that was there before this service took it.
    _previous_sigterm = None

    def __init__(
        self,
        config: ServerConfig,
        db_path: str,
        endpoints: dict,
        reactor=None,
        store=None,
        directory=None,
        admin_token: Optional[str] = None,
        sip_settings=None,
    ):
        """
        C{store} (an L{IStore}, such as the PostgreSQL store) replaces the
        SQLite store at C{db_path}; C{directory} (an L{IDirectory}, such as
        the Redis one shared by several processes) the in-process one.
        Either may have C{start}/C{stop}, called with the service's.
        C{admin_token}, when given, is required by the admin endpoint.
        C{sip_settings} (L{msnp.sip.edge.SipSettings}) add the SIP
        federation edge when they enable it.
        """
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        # Which database this is, as msnp-admin names it (to know a server
        # it reaches serves the database it was pointed at).
        self.database = database_identity(db_path, None)
        self.store = store if store is not None else ThreadedStore(db_path, reactor)
        # What the core and the logins use: the same store, every call
        # timed for /metrics.
        timed_store = TimedStore(self.store)
        self.directory = directory if directory is not None else LocalDirectory()
        self.messenger = Messenger(
            timed_store,
            self.directory,
            reactor,
            config.list_limits,
            config.max_groups,
            (config.max_offline_messages, config.max_offline_bytes, config.max_offline_message_bytes),
        )
        self.login_throttle = LoginThrottle(config, reactor.seconds)
        # Passport tickets exist only when the Passport login runs.
        self.tickets = PassportTickets(config.passport_ticket_lifetime, reactor.seconds) if endpoints.get("passport") else None
        self.service_tokens = ServiceTokens(config.service_token_lifetime, reactor.seconds)
        self.portal = make_portal(timed_store, self.messenger, self.tickets, config.md5_login)
        self.notification = NotificationServer(config, self.messenger, self.portal, reactor, self.login_throttle)
        self.dispatch = DispatchServer(config, reactor, self._placement())
        self.switchboard = SwitchboardServer(config, self.messenger, reactor)
        self.listeners = {}
        self._add_listener("dispatch", endpoints.get("dispatch"), self.dispatch, "dispatch_port")
        self._add_listener("notification", endpoints.get("notification"), self.notification, "notification_port")
        self._add_listener("switchboard", endpoints.get("switchboard"), self.switchboard, "switchboard_port")
        self._place_switchboards()
        if self.tickets is not None:
            # Guesses at the HTTPS login count with the account's failed
            # logins at the notification server.
            checker = ThrottledChecker(PasswordHashChecker(timed_store, reactor), self.login_throttle, reactor)
            self.passport = make_site(config, checker, self.tickets, self.service_tokens, self._web_services())
            self._add_listener("passport", endpoints["passport"], self.passport, "passport_port")
        self.gateway = None
        if endpoints.get("gateway"):
            self.gateway = Gateway(config, {"NS": self.notification, "SB": self.switchboard}, reactor)
            self._add_listener("gateway", endpoints["gateway"], make_gateway_site(self.gateway), "gateway_port")
        self.admin = None
        self.admin_token = admin_token
        if endpoints.get("admin"):
            from msnp.control.site import AdminService, AdminState, make_admin_site

            self.admin = AdminState(self, reactor)
            AdminService(self.admin).setServiceParent(self)
            self._add_listener("admin", endpoints["admin"], make_admin_site(self.admin, admin_token), None)
        self.sip = None
        if sip_settings is not None and sip_settings.enabled:
            # Added last, so stopped first: the edge says goodbye to its
            # peers while the store is still open.
            from msnp.sip.bridge import SipFederationService

            self.sip = SipFederationService(reactor, sip_settings, self.messenger, self.switchboard, config.max_sb_payload)
            self.sip.setServiceParent(self)

    def _placement(self):
        """
        With a directory that knows the live notification nodes, logins
        are spread over them; otherwise they go to this process's.
        """
        live_nodes = getattr(self.directory, "live_nodes", None)
        if live_nodes is None:
            return None

        def place(handle: str):
            return live_nodes().addCallback(lambda nodes: (choose_node(handle, nodes) or (None, None))[1])

        return place

    def _place_switchboards(self) -> None:
        """
        A notification server without a switchboard of its own, on a
        directory that knows the live switchboard nodes, refers XFR SB to
        one of them.
        """
        live_switchboards = getattr(self.directory, "live_switchboards", None)
        if live_switchboards is None or "switchboard" in self.listeners:
            return
        reactor = self.reactor

        def place():
            d = live_switchboards().addTimeout(SWITCHBOARD_LOOKUP_TIMEOUT, reactor)

            def unanswered(failure):
                failure.trap(CancelledError, TimeoutError, internet_error.TimeoutError)
                raise DirectoryUnavailable("no answer from the directory for the live switchboards")

            return d.addCallbacks(lambda switchboards: (choose_switchboard(switchboards) or (None, None))[1], unanswered)

        self.notification.place_switchboard = place

    def _hold_lease(self, _=None):
        """
        A notification or switchboard server on a shared directory holds a
        lease there, so that dispatch and notification servers refer
        clients to it only while it lives (and reaps nodes that lost
        theirs, telling their users' watchers).
        """
        hold_lease = getattr(self.directory, "hold_lease", None)
        roles = [role for role in ("notification", "switchboard") if role in self.listeners]
        if hold_lease is None or not roles:
            return _
        self.directory.on_reaped = lambda records: announce_offline(self.store, self.directory, records)
        config = self.config
        notification = (lambda: config.notification_address) if "notification" in roles else None
        switchboard = None
        if "switchboard" in roles:
            participants = connections_of(self.switchboard)
            switchboard = lambda: (config.switchboard_address, len(participants))  # noqa: E731
        return hold_lease(notification, switchboard).addCallback(lambda ignored: _)

    def _web_services(self) -> list:
        """
        The MSNP13+ web services at the paths clients have built in.
        """
        args = (self.service_tokens, self.reactor, self.messenger, self.config)
        return [
            (b"/abservice/SharingService.asmx", SharingService(*args)),
            (b"/abservice/abservice.asmx", AddressBookService(*args)),
            (b"/storageservice/SchematizedStore.asmx", StorageService(*args)),
            (b"/OimWS/oim.asmx", OIMStoreService(*args)),
            (b"/rsi/rsi.asmx", OIMReadService(*args)),
        ]

    def _add_listener(self, role: str, description: Optional[str], factory, port_setting: Optional[str]) -> None:
        if not description:
            return

        def listening(port):
            number = _port_of(port)
            if number is not None and port_setting is not None:
                setattr(self.config, port_setting, number)

        # The start line says it; Twisted's own start/stop lines would only
        # add object addresses.
        factory.noisy = False
        service = ListeningService(self.reactor, description, factory, f"--{role}", listening)
        service.setServiceParent(self)
        self.listeners[role] = service

    def _start_backends(self) -> Deferred:
        starting = [self.store.start()]
        start_directory = getattr(self.directory, "start", None)
        if start_directory is not None:
            starting.append(start_directory())
        return gatherResults(starting, consumeErrors=True).addCallback(self._hold_lease)

    def listener_summary(self) -> dict[str, str]:
        """
        Each listener's endpoint and the port it has, by role.
        """
        summary = {}
        for role, listener in self.listeners.items():
            number = _port_of(listener.port) if listener.port is not None else None
            text = listener.description if number is None else f"{listener.description} (port {number})"
            if role == "admin" and number is not None:
                from msnp.control.site import admin_url

                text = admin_url(listener.description, number)
            summary[role] = text
        return summary

    def start_line(self) -> str:
        """
        One line naming every listener and what it serves.
        """
        summary = self.listener_summary()
        parts = [f"{role} on {summary[role]}" for role in ("dispatch", "notification", "switchboard") if role in summary]
        parts.append(f"Passport login on {summary['passport']}" if "passport" in summary else "Passport login off")
        if "admin" in summary:
            guard = "bearer token required" if self.admin_token else "no token: loopback only"
            parts.append(f"admin (status page, /metrics, /api) on {summary['admin']} ({guard})")
        else:
            parts.append("admin off")
        return "; ".join(parts)

    def _bind_listeners(self) -> None:
        """
        Listen on every endpoint, or on none: when one fails, those already
        bound are let go and L{StartFailed} says which and why.
        """
        bound = []
        try:
            for listener in self.listeners.values():
                listener.bind()
                bound.append(listener)
        except StartFailed:
            for listener in bound:
                listener.unbind()
            raise
        log.info("msnp {version} listening: {listeners}", version=msnp.__version__, listeners=self.start_line())

    def privilegedStartService(self) -> None:
        self._start_once()
        super().privilegedStartService()

    def _start_once(self) -> None:
        # Every port first, so that a failure leaves nothing to undo but
        # them.  Clients arriving while the store opens and the directory
        # connects wait in the listen queue: served then, a login would be
        # refused for want of a directory that is only starting.
        if not hasattr(self, "_store_ready"):
            self._bind_listeners()
            for listener in self.listeners.values():
                listener.hold()
            self._store_ready = self._start_backends()
            self._store_ready.addCallbacks(self._serve, self._backends_failed)

    def _serve(self, _=None) -> None:
        for listener in self.listeners.values():
            listener.release()

    def _backends_failed(self, failure) -> None:
        log.critical("msnp cannot start: {error}", error=failure.getErrorMessage())
        if self.reactor.running:
            self.reactor.stop()
        else:
            self.reactor.callWhenRunning(self.reactor.stop)

    def startService(self) -> None:
        self._start_once()
        super().startService()
        self.reactor.callWhenRunning(self._take_sigterm)

    def _take_sigterm(self) -> None:
        """
        Stop on SIGTERM with a normal exit.  The reactor's own handler
        makes twistd re-raise the signal once the reactor has stopped, so
        even an orderly stop would end with the signal; this handler
        stops the reactor the same way without that.  Only where the
        reactor handles SIGTERM itself (under twistd), and undone at stop.
        """
        if not self.running:
            return
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, signal.SIG_IGN, None):
                return
            signal.signal(signal.SIGTERM, self._stop_on_sigterm)
        except ValueError:
            # Not the main thread: signals are not ours to handle.
            return
        self._previous_sigterm = current

    def _stop_on_sigterm(self, number, frame) -> None:
        # A second SIGTERM (a process manager insisting) while stopping asks
        # for what is under way already.
        if self._stopping_on_sigterm:
            return
        self._stopping_on_sigterm = True
        log.info("Received SIGTERM, shutting down.")
        self.reactor.callFromThread(self.reactor.stop)

    def _give_back_sigterm(self) -> None:
        previous, self._previous_sigterm = self._previous_sigterm, None
        if previous is not None and signal.getsignal(signal.SIGTERM) == self._stop_on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    @inlineCallbacks
    def stopService(self):
        # The Passport and admin sites answer single HTTP requests and have
        # no OUT SSD.
        factories = [
            listener.factory for role, listener in self.listeners.items() if role in ("dispatch", "notification", "switchboard")
        ]
        # Stop listening first so nobody new arrives, then tell every
        # connected client of every role (logged in or not) and wait for
        # them to go, within a grace period.
        yield super().stopService()
        # A node giving up its lease first: the clients told to go log in
        # again elsewhere.
        leave = getattr(self.directory, "leave", None)
        if leave is not None:
            yield leave()
        connections = [c for factory in factories for c in connections_of(factory)]
        closed = []
        for connection in connections:
            d = Deferred()
            connection.on_closed(d)
            closed.append(d)
            connection.shut_down()
        if closed:
            timeout = self.reactor.callLater(self.config.shutdown_grace, self._abort_connections, connections)
            yield DeferredList(closed)
            if timeout.active():
                timeout.cancel()
        if self.gateway is not None:
            # Their connections have ended; their expiry timers go too.
            self.gateway.close_all()
        stop_directory = getattr(self.directory, "stop", None)
        if stop_directory is not None:
            yield stop_directory()
        yield self.store.stop()
        log.info("msnp stopped")
        self._give_back_sigterm()

    @staticmethod
    def _abort_connections(connections) -> None:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abortConnection()
