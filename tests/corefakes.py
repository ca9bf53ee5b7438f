"""
Recording fakes for testing the core without sockets or a reactor: a store
over an in-memory SQLite database that answers at once and notes every
call, and endpoints that note every event they are given.
"""

from __future__ import annotations

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.messenger import Messenger
from msnp.directory.local import LocalDirectory
from msnp.store.sqlite import Database

LIMITS = {"FL": 600, "AL": 1000, "BL": 1000}


class RecordingStore:
    """
    The store's operations, answered synchronously from an in-memory
    database; C{calls} lists (name, args) in order, C{log} is shared with
    the endpoints so a test sees one sequence of everything that happened.
    """

    def __init__(self, log: list):
        self.database = Database(":memory:")
        self.log = log

    def __getattr__(self, name):
        method = getattr(self.database, name)

        def call(*args, **kwargs):
            self.log.append(("store", name) + args)
            try:
                return succeed(method(*args, **kwargs))
            except Exception:
                return fail()

        return call


@implementer(IEndpoint)
class RecordingEndpoint:
    """
    A signed-in endpoint that keeps what it is given.
    """

    def __init__(self, handle: str, log: list, protocol: str = "msn"):
        self.handle = handle
        self.endpoint_id = f"test/{handle}/{protocol}"
        self.protocol = protocol
        self.log = log
        self.me = None

    def endpoint_record(self, handle: str, since: float) -> EndpointRecord:
        return EndpointRecord(self.endpoint_id, handle, "test", self.protocol, "", "", "127.0.0.1", since)

    def receive(self, event) -> None:
        self.log.append((self.handle, event))


class World:
    """
    A messenger core over a recording store and the local directory, with
    accounts made on demand.
    """

    def __init__(self, accounts=("alice@example.com", "bob@example.com", "carol@example.com")):
        self.log: list = []
        self.clock = Clock()
        self.store = RecordingStore(self.log)
        for handle in accounts:
            self.store.database.create_account(handle, "pw", handle.split("@")[0].title())
        self.directory = LocalDirectory("test")
        self.messenger = Messenger(self.store, self.directory, self.clock, dict(LIMITS), 30)

    def sign_in(self, handle: str, status=None):
        """
        Sign C{handle} in as a recording endpoint; returns the endpoint, its
        L{SignedInUser} on C{endpoint.me}.
        """
        endpoint = RecordingEndpoint(handle, self.log)
        user = self.store.database.load_user(handle)
        self.messenger.sign_in(endpoint, user).addCallback(lambda me: setattr(endpoint, "me", me))
        if status is not None:
            self.messenger.presence.set_status(endpoint.me, status)
        return endpoint

    def events(self) -> list:
        """
        What happened since the last call, leaving out store calls.
        """
        happened = [entry for entry in self.log if entry[0] != "store"]
        self.log.clear()
        return happened

    def result(self, d):
        results = []
        d.addBoth(results.append)
        assert results, "the Deferred did not fire"
        return results[0]
