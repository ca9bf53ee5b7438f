"""
Fixtures: a live msnp server on 127.0.0.1 with ephemeral ports and a fresh
database (SQLite, or PostgreSQL where a test asks for C{store_engine}
"postgres"), accounts to log in with, the throwaway PostgreSQL cluster and
redis-server of the engine tests, and a check that every test leaves no
timer or connection behind.
"""

from __future__ import annotations

import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from engines import EngineMissing, PostgresCluster, RedisServer
from msnp.config import ServerConfig
from msnp.service import MessengerService

ACCOUNTS = {
    "alice@example.com": ("pw-alice", "Alice"),
    "bob@example.com": ("pw-bob", "Bob"),
    "carol@example.com": ("pw-carol", "Carol"),
    "dave@example.com": ("pw-dave", "Dave"),
}


class RunningServer:
    """
    A started L{MessengerService} and the ports it listens on.
    """

    def __init__(self, service: MessengerService, db_path: str):
        self.service = service
        self.db_path = db_path

    @property
    def config(self):
        return self.service.config

    @property
    def dispatch_port(self) -> int:
        return self.service.listeners["dispatch"].port.getHost().port

    @property
    def notification_port(self) -> int:
        return self.service.listeners["notification"].port.getHost().port

    @property
    def switchboard_port(self) -> int:
        return self.service.listeners["switchboard"].port.getHost().port

    @property
    def store(self):
        return self.service.store

    def stop(self) -> defer.Deferred:
        return defer.maybeDeferred(self.service.stopService)


ENDPOINTS = {
    "dispatch": "tcp:0:interface=127.0.0.1",
    "notification": "tcp:0:interface=127.0.0.1",
    "switchboard": "tcp:0:interface=127.0.0.1",
}


@defer.inlineCallbacks
def start_server(db_path: str, config: ServerConfig = None, accounts=ACCOUNTS, store=None, directory=None, extra_endpoints=None):
    endpoints = dict(ENDPOINTS, **(extra_endpoints or {}))
    service = MessengerService(config or ServerConfig(), db_path, endpoints, reactor, store=store, directory=directory)
    service.startService()
    yield service._store_ready
    for handle, (password, name) in accounts.items():
        existing = yield service.store.get_account(handle)
        if existing is None:
            yield service.store.create_account(handle, password, name)
    return RunningServer(service, db_path)


@pytest.fixture
def rvp(server):
    """
    An RVP front-end beside the C{server} fixture (tests/rvpserver.py).
    """
    from rvpserver import start_rvp

    service = pytest_twisted.blockon(start_rvp(server))
    yield service
    pytest_twisted.blockon(service.stopService())


@pytest.fixture
def server_config():
    return ServerConfig()


@pytest.fixture(scope="session")
def accounts_database(tmp_path_factory):
    """
    A database file holding the fixture accounts, made once: hashing their
    passwords (scrypt) would otherwise cost most of each test's time.
    """
    from msnp.store.sqlite import Database

    path = tmp_path_factory.mktemp("template") / "accounts.sqlite"
    database = Database(str(path))
    for handle, (password, name) in ACCOUNTS.items():
        database.create_account(handle, password, name)
    database.close()
    return path


@pytest.fixture
def store_engine():
    """
    The store the C{server} fixture runs on; a module overrides this
    fixture with params ["sqlite", "postgres"] to run its transcripts on
    both.
    """
    return "sqlite"


@pytest.fixture
def server(tmp_path, server_config, accounts_database, store_engine, request):
    db_path = tmp_path / "msnp.sqlite"
    store = None
    if store_engine == "postgres":
        from msnp.store.postgres import PostgresStore

        store = PostgresStore(request.getfixturevalue("postgres_accounts"), reactor)
    else:
        shutil.copyfile(accounts_database, db_path)
    running = pytest_twisted.blockon(start_server(str(db_path), server_config, store=store))
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())


# Engines started for real (see engines.py).  Tests using them are marked
# "engines": deselect them with -m "not engines" for a quicker run.  Where
# an engine is not installed they are skipped, except in CI, whose .ci/run
# installs them: there a missing engine fails.


def _engine(make):
    try:
        return make()
    except EngineMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (.ci/run installs it)")
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def postgres_cluster():
    """
    A PostgreSQL cluster of the test run's own, started once.
    """
    cluster = _engine(PostgresCluster)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def postgres_database(postgres_cluster):
    """
    The connection string of a new empty database, dropped afterwards.
    """
    conninfo = postgres_cluster.create_database()
    yield conninfo
    postgres_cluster.drop_database(conninfo)


@pytest.fixture(scope="session")
def postgres_accounts_template(postgres_cluster):
    """
    A database holding the schema and the fixture accounts, made once, to
    copy from (as accounts_database is for SQLite).
    """
    from msnp.store.postgres import PostgresDatabase

    conninfo = postgres_cluster.create_database()
    database = PostgresDatabase.open(conninfo)
    try:
        for handle, (password, name) in ACCOUNTS.items():
            database.create_account(handle, password, name)
    finally:
        database.close()
    return conninfo


@pytest.fixture
def postgres_accounts(postgres_cluster, postgres_accounts_template):
    """
    A new database copied from postgres_accounts_template, dropped
    afterwards; its connection string.
    """
    conninfo = postgres_cluster.create_database(template=postgres_accounts_template)
    yield conninfo
    postgres_cluster.drop_database(conninfo)


@pytest.fixture(scope="session")
def redis_server():
    """
    A redis-server of the test run's own, started once.
    """
    server = _engine(RedisServer)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


_ENGINE_FIXTURES = {"postgres_cluster", "postgres_database", "postgres_accounts", "redis_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("store_engine") == "postgres"
        if on_postgres or _ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def passport_certificate(tmp_path_factory):
    """
    A key and self-signed certificate for 127.0.0.1 (key path, certificate
    path, certificate PEM), made once for the Passport login.
    """
    from msnp.devcert import write_self_signed

    return write_self_signed(tmp_path_factory.mktemp("passport-cert"))


@pytest.fixture
def live_server(tmp_path, server_config, accounts_database, passport_certificate):
    """
    The C{server} fixture with the Passport login on TLS added, for MSNP8+
    logins; C{passport_port} and C{cert_pem} say where it is and what to
    trust.
    """
    key_path, cert_path, cert_pem = passport_certificate
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    passport = f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    running = pytest_twisted.blockon(start_server(str(db_path), server_config, extra_endpoints={"passport": passport}))
    running.cert_pem = cert_pem
    running.passport_port = running.service.listeners["passport"].port.getHost().port
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())


@pytest.fixture(autouse=True)
def no_leftovers():
    """
    Fail a test that leaves timers, connections or sockets (TCP or UDP)
    behind.
    """
    yield
    # Let closing connections finish.
    pytest_twisted.blockon(_settle())
    calls = [c for c in reactor.getDelayedCalls() if c.active()]
    readers = [r for r in reactor.getReaders() if _is_connection(r)]
    writers = [w for w in reactor.getWriters() if _is_connection(w)]
    for call in calls:
        call.cancel()
    for selectable in set(readers + writers):
        selectable.loseConnection()
    assert not calls, f"timers left behind: {calls}"
    assert not readers and not writers, f"connections left behind: {readers + writers}"


def _is_connection(selectable) -> bool:
    from twisted.internet import tcp, udp

    return isinstance(selectable, (tcp.Server, tcp.Client, tcp.Port, udp.Port))


@defer.inlineCallbacks
def _settle():
    """
    Turn the reactor until closing connections have gone (loopback closes
    take a few turns), for at most about a second.
    """
    for turn in range(400):
        if not any(_is_connection(s) for s in reactor.getReaders() + reactor.getWriters()):
            return
        d = defer.Deferred()
        reactor.callLater(0 if turn < 100 else 0.005, d.callback, None)
        yield d
