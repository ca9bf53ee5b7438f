"""
The running server: every role on its own endpoint, the store and the
directory they share, and an orderly shutdown.
"""

from __future__ import annotations

from typing import Optional

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from msnp.auth import make_portal
from msnp.config import ServerConfig
from msnp.directory import LocalDirectory
from msnp.dispatch import DispatchServer
from msnp.notification import NotificationServer
from msnp.store import ThreadedStore

log = Logger()


class ListeningService(Service):
    """
    Listens on an endpoint description while running; a port that cannot
    be bound stops C{twistd} at start.
    """

    def __init__(self, reactor, description: str, factory, on_listening=None):
        self._reactor = reactor
        self.description = description
        self.factory = factory
        self._on_listening = on_listening
        self.port = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        d = serverFromString(self._reactor, self.description).listen(self.factory)
        failures = []
        d.addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()

    def _listening(self, port) -> None:
        self.port = port
        if self._on_listening is not None:
            self._on_listening(port)

    def startService(self) -> None:
        if self.port is None:
            self.privilegedStartService()
        super().startService()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()


def _port_of(port) -> Optional[int]:
    return getattr(port.getHost(), "port", None)


class MessengerService(MultiService):
    """
    One msnp server: dispatch, notification and switchboard roles over one
    store and one directory.
    """

    def __init__(self, config: ServerConfig, db_path: str, endpoints: dict, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.store = ThreadedStore(db_path, reactor)
        self.directory = LocalDirectory()
        self.portal = make_portal(self.store, self.directory)
        self.notification = NotificationServer(config, self.store, self.directory, self.portal, reactor)
        self.dispatch = DispatchServer(config, reactor)
        self.listeners = {}
        self._add_listener("dispatch", endpoints.get("dispatch"), self.dispatch, "dispatch_port")
        self._add_listener("notification", endpoints.get("notification"), self.notification, "notification_port")

    def _add_listener(self, role: str, description: Optional[str], factory, port_setting: str) -> None:
        if not description:
            return

        def listening(port):
            number = _port_of(port)
            if number is not None:
                setattr(self.config, port_setting, number)
            log.info("{role} listening on {description}", role=role, description=description)

        service = ListeningService(self.reactor, description, factory, listening)
        service.setServiceParent(self)
        self.listeners[role] = service

    def privilegedStartService(self) -> None:
        # The store opens first so that no connection is accepted before it
        # can answer.
        self._store_ready = self.store.start()
        super().privilegedStartService()

    def startService(self) -> None:
        if not hasattr(self, "_store_ready"):
            self._store_ready = self.store.start()
        super().startService()

    @inlineCallbacks
    def stopService(self):
        yield super().stopService()
        sessions = list(self.directory.sessions())
        closed = []
        for session in sessions:
            connection = session.connection
            if connection is not None:
                d = Deferred()
                connection.on_closed(d)
                closed.append(d)
            session.shut_down()
        if closed:
            timeout = self.reactor.callLater(5, lambda: [c.transport.abortConnection() for c in self._open_connections()])
            yield DeferredList(closed)
            if timeout.active():
                timeout.cancel()
        yield self.store.stop()
        log.info("msnp stopped")

    def _open_connections(self):
        return [s.connection for s in self.directory.sessions() if s.connection is not None]
