"""
A directory shared by several msnp processes (nodes) through Redis.

Each node keeps its own live endpoints in memory and publishes their
records to Redis; events for endpoints on another node travel through that
node's inbox, a Redis stream it reads with a blocking XREAD on a connection
of its own.  Presence records, switchboard cookies and session ids live in
Redis, so any node answers for any user.  Every check-and-set is one Lua
script, so concurrent logins of one account on two nodes end with one
winner and the loser told it was replaced.

Keys (NODE is the node id, H a handle):
  ep:H            hash endpoint id -> EndpointRecord      (who is signed in where)
  nodeeps:NODE    set of "H endpoint-id" of that node      (cleared when it starts again)
  pres:H          hash id -> endpoint id, rec -> PresenceRecord
  inbox:NODE      stream of messages for that node's endpoints
  sbck:COOKIE     switchboard ticket, expiring with it
  sbsid:ID        the switchboard address holding session ID
  node:NODE       a node's lease, "incarnation|ns-address|ns-load|sb-address|sb-load",
                  expiring (an address is empty for a role the node does not have)
  nodes           zset of the nodes holding (or lately holding) a lease
  nodeinc         hash node -> incarnation holding its lease
  dead:NODE       the incarnation the reaper declared dead (fences it)

Liveness: a process serving notification or switchboard clients holds a
lease, renewed every third of it.  Any live node reaps a node whose lease expired: it
removes its endpoints and the presence they published, and the
notification service tells their watchers they went offline.  The
reaped incarnation is fenced: every script writing for it refuses
(FENCED), and when it notices it drops its clients and starts again as a
new incarnation.  Dispatch servers refer logins to the live nodes with a
notification address, notification servers refer XFR SB to the live nodes
with a switchboard address.

Repair: a kick (OUT OTH) sent through an inbox can be lost (the node was
out of reach, or a Redis failover dropped it).  Every sweep period each
node checks that the records of its endpoints are still in Redis; one that
is gone while the lease is in place was replaced by a login elsewhere, and
its client is told so.  With a Sentinel set, each beat asks the Sentinels
which server is the primary: after a failover the node moves its
connections there and puts back what the promoted replica had not yet
received.

Values are JSON (L{msnp.directory.codec}).  The client is txredisapi, which
imports Twisted's global reactor when it is imported: import this module
only once the reactor is chosen (not from the twistd plugin file).
"""

from __future__ import annotations

import secrets
from typing import Callable, Iterable, Optional

import txredisapi
from twisted.internet.defer import CancelledError, Deferred, TimeoutError as NoAnswer, fail, inlineCallbacks, succeed
from twisted.python.failure import Failure
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import events
from msnp.core.endpoints import EndpointRecord, default_node_id
from msnp.directory import codec, redis_scripts as scripts
from msnp.directory.interface import DirectoryUnavailable, IDirectory
from msnp.directory.local import _give
from msnp.directory.redis_connections import REPLY_TIMEOUT, PrimaryConnections, PrimaryEndpoint, SentinelSet, tune_reconnecting
from msnp.directory.redisurl import parse_redis_url

log = Logger()


def _connected(method):
    """
    An asking call made before L{RedisDirectory.start} has connected (a
    client can arrive as soon as the ports listen) or after stop fails
    with L{DirectoryUnavailable}, which clients are told as such, rather
    than with an AttributeError.
    """

    def checked(self, *args, **kwargs):
        if self._redis is None:
            return fail(DirectoryUnavailable("not connected to Redis"))
        return method(self, *args, **kwargs)

    checked.__name__ = method.__name__
    checked.__doc__ = method.__doc__
    return checked


# Milliseconds a blocking inbox read waits for messages (below the reply
# timeout of every command, REPLY_TIMEOUT).
INBOX_BLOCK_MS = 1000
INBOX_LENGTH = 10000
# Seconds a login waits for Redis to record its endpoint before it is
# refused (601): the client may try again, through a dispatch server.
ATTACH_TIMEOUT = 5.0
# Seconds a notification node's lease lasts unless renewed.
DEFAULT_LEASE = 10.0


class Fenced(DirectoryUnavailable):
    """
    This node's incarnation was declared dead by another node (or its
    lease is held by another incarnation): it must not write or deliver.
    """



# Seconds between sweeps for endpoints replaced elsewhere whose kick was
# lost (each sweep asks Redis about every local endpoint).
DEFAULT_SWEEP = 30.0
# Endpoints asked about in one sweep script.
SWEEP_BATCH = 1000


def node_of(endpoint_id: str) -> str:
    return endpoint_id.rsplit("/", 1)[0]


@implementer(IDirectory)
class RedisDirectory:
    """
    The directory of one node of a cluster sharing one Redis.
    """

    def __init__(self, url: str, node: str = "", reactor=None, lease: float = DEFAULT_LEASE, sweep: float = DEFAULT_SWEEP):
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self._settings = parse_redis_url(url)
        self.node = node or default_node_id()
        self._inbox = f"inbox:{self.node}"
        self._index = f"nodeeps:{self.node}"
        # endpoint id -> (live endpoint, record), handle -> {id: endpoint}
        self._endpoints: dict[str, tuple[object, EndpointRecord]] = {}
        self._by_handle: dict[str, dict[str, object]] = {}
        # domain -> callable giving the endpoint for a handle of it (route_domain)
        self._domain_routes: dict[str, object] = {}
        self._redis = None
        self._reader = None
        # With a Sentinel set: the Sentinels, the endpoint of each
        # connection, and the primary the last beat found.
        self._sentinels: Optional[SentinelSet] = None
        self._primary_endpoints: list[PrimaryEndpoint] = []
        self._primary: Optional[tuple[str, int]] = None
        self._following: Optional[LoopingCall] = None
        self._reading: Optional[Deferred] = None
        self._running = False
        self.lease = lease
        # Set by hold_lease: the incarnation holding the lease ("" while
        # none), what the lease says of this node, the beat renewing it.
        self._incarnation = ""
        # Fenced: nothing is written or delivered until the next beat
        # starts a new incarnation (the dropped clients' sign-outs are
        # stale too).
        self._fenced = False
        self._advertised: Optional[Callable[[], str]] = None
        self._switchboard: Optional[Callable[[], tuple[str, int]]] = None
        # Endpoints whose record Redis holds (their attach answered), and
        # those attached alone (replacing others of their protocol).
        self._confirmed: set[str] = set()
        self._single: set[str] = set()
        self.sweep = sweep
        self._last_sweep: Optional[float] = None
        # How many local endpoints the sweep found replaced elsewhere.
        self.swept_count = 0
        self._beating: Optional[LoopingCall] = None
        self._last_renewed: Optional[float] = None
        self._healthy_since: Optional[float] = None
        # Presence records published by this node's endpoints, by handle,
        # to publish again if Redis loses them.
        self._published: dict[str, object] = {}
        # Called with the presence records of a reaped node's users.
        self.on_reaped: Optional[Callable[[list], None]] = None
        # How many clients were dropped because this node was fenced.
        self.fenced_count = 0

    # Starting and stopping

    def _connect(self) -> Deferred:
        settings = self._settings
        if settings["sentinels"]:
            return self._connect_to_primary()
        return txredisapi.Connection(
            settings["host"],
            settings["port"],
            dbid=settings["dbid"],
            password=settings["password"],
            username=settings["username"],
            reconnect=True,
            replyTimeout=REPLY_TIMEOUT,
            connectTimeout=REPLY_TIMEOUT,
            convertNumbers=False,
        ).addCallback(tune_reconnecting)

    def _connect_to_primary(self) -> Deferred:
        """
        A connection to the primary the Sentinels name, that follows it
        to another server when they name another.
        """
        settings = self._settings
        if self._sentinels is None:
            self._sentinels = SentinelSet(settings["sentinels"], self._reactor)
        factory = PrimaryConnections(
            sentinel_manager=self._sentinels,
            service_name=settings["service"],
            is_master=True,
            uuid=None,
            dbid=settings["dbid"],
            poolsize=1,
            password=settings["password"],
            username=settings["username"],
            replyTimeout=REPLY_TIMEOUT,
            convertNumbers=False,
        )
        endpoint = PrimaryEndpoint(self._sentinels, settings["service"], self._reactor)
        self._primary_endpoints.append(endpoint)
        factory.startConnecting(endpoint)
        return factory.deferred

    @inlineCallbacks
    def _follow_primary(self):
        """
        Ask the Sentinels which server is the primary; connections to
        another one are closed (they reconnect to it).  True when the
        primary is not the one of the last beat (a failover), None when
        no Sentinel answered.
        """
        try:
            primary = yield self._sentinels.discover_master(self._settings["service"])
        except Exception as error:
            log.warn("directory: no Sentinel named the primary of {service} ({error})",
                     service=self._settings["service"], error=error)
            return None
        for endpoint, connection in zip(self._primary_endpoints, (self._redis, self._reader)):
            if connection is not None and endpoint.address is not None and endpoint.address != primary:
                for protocol in list(connection._factory.pool):
                    protocol.transport.loseConnection()
        previous, self._primary = self._primary, primary
        if previous is not None and previous != primary:
            log.info("directory: the Redis primary moved from {old} to {new}", old=_address(previous), new=_address(primary))
            return True
        return False

    @inlineCallbacks
    def start(self):
        """
        Connect, forget what an earlier run of this node left behind, and
        start reading the inbox.
        """
        self._redis = yield self._connect()
        self._reader = yield self._connect()
        if self._sentinels is not None and self._primary is None:
            # The primary connected to is the one a failover moves from,
            # even when it happens before the first beat asks again.
            self._primary = self._primary_endpoints[0].address
        forgotten = yield self._redis.eval(scripts.FORGET_NODE, [self._index, self._inbox])
        if forgotten:
            log.info("directory: forgot {count} endpoints an earlier run of node {node} left", count=forgotten, node=self.node)
        self._running = True
        self._reading = self._read_inbox()
        if self._sentinels is not None:
            # A process holding no lease (a dispatch server) has no beat
            # to notice a failover: it asks the Sentinels as often.
            self._following = LoopingCall(self._follow_without_lease)
            self._following.clock = self._reactor
            self._following.start(self.lease / 3, now=False).addErrback(
                lambda failure: log.failure("directory: following the Redis primary stopped", failure)
            )

    def _follow_without_lease(self):
        if self._beating is None and self._running:
            return self._follow_primary()

    # The lease, the reaper and fencing

    def hold_lease(
        self, advertised: Optional[Callable[[], str]] = None, switchboard: Optional[Callable[[], tuple[str, int]]] = None
    ) -> Deferred:
        """
        Hold a lease as a node: C{advertised()} is the address notification
        clients are referred to (a notification node), C{switchboard()}
        the address and load (participants) of its switchboard (a
        switchboard node).  Renewed every third of the lease; each beat
        also reaps nodes whose lease expired and, every sweep period,
        sweeps.  Fires after the first beat.
        """
        self._advertised = advertised
        self._switchboard = switchboard
        self._incarnation = secrets.token_hex(8)
        self._beating = LoopingCall(self._beat)
        self._beating.clock = self._reactor
        started = Deferred()
        first = self._beating.start(self.lease / 3, now=True)
        first.addErrback(lambda failure: log.failure("directory: the lease beat stopped", failure))
        self._first_beat = started
        return started

    def _fence_args(self) -> list:
        return [self.node, self._incarnation]

    def _lease_value(self) -> str:
        address = self._advertised() if self._advertised is not None else ""
        load = len(self._endpoints) if address else 0
        switchboard, participants = self._switchboard() if self._switchboard is not None else ("", 0)
        return f"{self._incarnation}|{address}|{load}|{switchboard}|{participants}"

    @inlineCallbacks
    def _beat(self):
        now = self._reactor.seconds()
        if self._fenced:
            self._incarnation = secrets.token_hex(8)
            self._fenced = False
        moved = False
        if self._sentinels is not None:
            moved = yield self._follow_primary()
            if moved:
                # Other nodes follow within a beat: judge nobody for a
                # lease, as after an outage.
                self._healthy_since = None
        try:
            missing = yield self._redis.eval(
                scripts.HEARTBEAT,
                [f"node:{self.node}", f"dead:{self.node}", "nodes", "nodeinc"],
                [self.node, self._incarnation, self._lease_value(), int(self.lease * 1000)],
            )
        except Exception as error:
            if _is_fenced(error):
                self._fence()
            else:
                if self._healthy_since is not None:
                    log.warn("directory: renewing the lease of {node} failed ({error})", node=self.node, error=error)
                self._healthy_since = None
            self._fire_first_beat()
            return
        self._last_renewed = now
        if self._healthy_since is None:
            self._healthy_since = now
        if (str(missing) == "1" or moved) and self._endpoints:
            # Not reaped, yet the lease was gone (Redis lost its data), or
            # a replica was promoted, which may lack the last writes.
            yield self._reassert()
        self._fire_first_beat()
        if moved is not None and (self._last_sweep is None or now - self._last_sweep >= self.sweep):
            self._last_sweep = now
            try:
                yield self._sweep()
            except Exception as error:
                self._failed_with(error, "sweep")
        # Reap only after renewing for a whole lease: after an outage of
        # Redis every lease has expired, and each node gets that long to
        # renew before anyone is declared dead.
        if now - self._healthy_since >= self.lease:
            try:
                yield self._reap()
            except Exception as error:
                # The next beat tries again; the beat itself must go on.
                log.warn("directory: reaping failed ({error})", error=error)

    def _fire_first_beat(self) -> None:
        first, self._first_beat = getattr(self, "_first_beat", None), None
        if first is not None:
            first.callback(None)

    @inlineCallbacks
    def _reassert(self):
        log.info("directory: Redis may have lost records of {node}; putting back {count} endpoints", node=self.node, count=len(self._endpoints))
        for endpoint_id, (_, record) in list(self._endpoints.items()):
            published = self._published.get(record.handle)
            presence = codec.dumps(published) if published is not None and published.endpoint_id == endpoint_id else ""
            alone = record.protocol if endpoint_id in self._single else ""
            try:
                kept = yield self._redis.eval(
                    scripts.REASSERT,
                    [f"ep:{record.handle}", self._index, f"pres:{record.handle}"],
                    [*self._fence_args(), endpoint_id, codec.dumps(record), presence, record.handle, alone, record.instance.lower()],
                )
            except Exception as error:
                self._failed_with(error, "put back an endpoint")
                return
            if str(kept) == "0":
                self._replaced_elsewhere(endpoint_id)
            elif endpoint_id in self._endpoints:
                self._confirmed.add(endpoint_id)

    @inlineCallbacks
    def _sweep(self):
        """
        Close, as replaced (OUT OTH), the local endpoints whose record is
        gone from Redis: another login took their place and its kick did
        not arrive.  Only endpoints whose attach Redis has answered are
        asked about.
        """
        confirmed = [(endpoint_id, entry[1].handle) for endpoint_id, entry in self._endpoints.items() if endpoint_id in self._confirmed]
        for start in range(0, len(confirmed), SWEEP_BATCH):
            batch = confirmed[start:start + SWEEP_BATCH]
            gone = yield self._redis.eval(
                scripts.SWEEP,
                [f"node:{self.node}", *(f"ep:{handle}" for _, handle in batch)],
                [*self._fence_args(), *(endpoint_id for endpoint_id, _ in batch)],
            )
            if gone is None:
                return
            for endpoint_id in gone or ():
                self._replaced_elsewhere(endpoint_id)

    def _replaced_elsewhere(self, endpoint_id: str) -> None:
        entry = self._endpoints.get(endpoint_id)
        if entry is None or endpoint_id not in self._confirmed:
            return
        log.info("directory: {id} ({handle}) was replaced by a login elsewhere; closing it", id=endpoint_id, handle=entry[1].handle)
        self.swept_count += 1
        self._kick(endpoint_id)

    @inlineCallbacks
    def _reap(self):
        expired = yield self._redis.eval(scripts.EXPIRED, ["nodes"], [])
        for node in expired or ():
            if node == self.node:
                continue
            keys = [f"node:{node}", f"nodeeps:{node}", f"inbox:{node}", "nodes", f"dead:{node}", "nodeinc"]
            gone = yield self._redis.eval(scripts.REAP, keys, [node])
            if gone is None:
                continue
            records = [codec.loads(text) for text in gone or ()]
            log.info("directory: node {dead} stopped renewing its lease; reaped, {count} users offline", dead=node, count=len(records))
            if self.on_reaped is not None and records:
                try:
                    self.on_reaped(records)
                except Exception:
                    log.failure("directory: telling watchers of node {dead}'s users failed", dead=node)

    def _fence(self) -> None:
        """
        Another node declared this incarnation dead: its users were told
        it went offline.  Drop every local client (told to log in again)
        without writing anything for them, and carry on as a new
        incarnation.
        """
        if not self._incarnation or self._fenced:
            return
        self._fenced = True
        log.warn("directory: node {node} was declared dead while it could not renew its lease; dropping its {count} clients",
                 node=self.node, count=len(self._endpoints))
        self._healthy_since = None
        self._published.clear()
        dropped = list(self._endpoints.items())
        self._endpoints.clear()
        self._by_handle.clear()
        self._confirmed.clear()
        self._single.clear()
        for endpoint_id, (endpoint, _) in dropped:
            self.fenced_count += 1
            _give(endpoint, events.Kicked(events.SHUTDOWN))

    def _stale(self) -> bool:
        """
        Whether this node has gone a lease without renewing (frozen, or cut
        off): it may have been reaped, so even local deliveries wait for
        Redis to say it was not.
        """
        return self._incarnation != "" and (
            self._last_renewed is None or self._reactor.seconds() - self._last_renewed > self.lease
        )

    @_connected
    def live_nodes(self) -> Deferred:
        """
        The notification nodes holding a lease: a list of (node id,
        address, load).
        """
        d = self._redis.eval(scripts.LIVE, ["nodes"], [])

        def parsed(flat):
            nodes = []
            for node, fields in _leases(flat):
                if fields[1]:
                    nodes.append((node, fields[1], int(fields[2])))
            return nodes

        # Callers may time the answer out; txredisapi's Deferred must not be
        # cancelled.
        return _uncancellable(d.addCallback(parsed))

    @_connected
    def live_switchboards(self) -> Deferred:
        """
        The switchboard nodes holding a lease: a list of (node id,
        address, participants).
        """
        d = self._redis.eval(scripts.LIVE, ["nodes"], [])

        def parsed(flat):
            return [(node, fields[3], int(fields[4])) for node, fields in _leases(flat) if len(fields) >= 5 and fields[3]]

        return _uncancellable(d.addCallback(parsed))

    @inlineCallbacks
    def leave(self):
        """
        Give up the lease (a graceful stop): dispatch servers stop
        referring logins here at once.  The endpoints stay until their
        clients go.
        """
        beating, self._beating = self._beating, None
        if beating is not None and beating.running:
            beating.stop()
        self._fire_first_beat()
        if self._incarnation and self._redis is not None:
            try:
                yield self._redis.eval(scripts.LEAVE, [f"node:{self.node}", "nodes", "nodeinc"], [self.node, self._incarnation])
            except Exception as error:
                log.warn("directory: giving up the lease of {node} failed ({error})", node=self.node, error=error)

    @inlineCallbacks
    def stop(self):
        yield self.leave()
        self._running = False
        following, self._following = self._following, None
        if following is not None and following.running:
            following.stop()
        for endpoint_id, (_, record) in list(self._endpoints.items()):
            self.detach(endpoint_id)
        connections, self._redis, self._reader = [self._redis, self._reader], None, None
        if connections[0] is not None:
            # What this node published goes, and the last writes are done.
            yield connections[0].delete(self._inbox)
        for connection in connections:
            if connection is not None:
                yield connection.disconnect()
        reading, self._reading = self._reading, None
        if reading is not None:
            # A read issued while Redis was away waits for a connection
            # that will never come now: cancelled, it ends the loop.
            reading.addErrback(lambda failure: failure.trap(CancelledError))
            reading.cancel()
            yield reading
        sentinels, self._sentinels = self._sentinels, None
        if sentinels is not None:
            yield sentinels.disconnect()

    # Endpoints

    @_connected
    def attach(self, endpoint, record: EndpointRecord, single: bool = True) -> Deferred:
        if self._fenced:
            from twisted.internet.defer import fail

            return fail(Fenced(self.node))
        self._endpoints[record.endpoint_id] = (endpoint, record)
        self._by_handle.setdefault(record.handle, {})[record.endpoint_id] = endpoint
        d = self._redis.eval(
            scripts.ATTACH,
            [f"ep:{record.handle}", self._index],
            [*self._fence_args(), record.endpoint_id, codec.dumps(record), "1" if single else "0", record.protocol, record.handle, record.instance.lower()],
        )

        def refused(failure):
            # Not signed in after all: the caller's login fails.
            self._forget_local(record.endpoint_id)
            if _is_fenced(failure.value):
                self._fence()
                raise Fenced(self.node)
            if failure.check(NoAnswer, CancelledError, txredisapi.ConnectionError):
                raise DirectoryUnavailable(f"Redis did not answer: {failure.getErrorMessage()}")
            return failure

        def late(result):
            # Redis answered after the login was refused: undo the attach.
            if not isinstance(result, Failure):
                undo = self._redis.eval(scripts.DETACH, [f"ep:{record.handle}", self._index], [record.endpoint_id, record.handle])
                undo.addErrback(lambda _: None)

        if single:
            self._single.add(record.endpoint_id)

        def replaced(encoded):
            if record.endpoint_id in self._endpoints:
                self._confirmed.add(record.endpoint_id)
            records = [codec.loads(text) for text in encoded or ()]
            for old in records:
                self._kick(old.endpoint_id)
            return records

        # The timeout cancels only a Deferred of ours: cancelling one of
        # txredisapi's would lose its pooled connection.
        d = _uncancellable(d, late).addTimeout(ATTACH_TIMEOUT, self._reactor)
        return d.addCallbacks(replaced, refused)

    def _kick(self, endpoint_id: str) -> None:
        if node_of(endpoint_id) == self.node:
            entry = self._endpoints.get(endpoint_id)
            if entry is not None:
                self._forget_local(endpoint_id)
                _give(entry[0], events.Kicked(events.REPLACED))
        else:
            self._send(node_of(endpoint_id), {"k": "kick", "id": endpoint_id})

    def _forget_local(self, endpoint_id: str) -> Optional[EndpointRecord]:
        self._confirmed.discard(endpoint_id)
        self._single.discard(endpoint_id)
        entry = self._endpoints.pop(endpoint_id, None)
        if entry is None:
            return None
        record = entry[1]
        held = self._by_handle.get(record.handle)
        if held is not None:
            held.pop(endpoint_id, None)
            if not held:
                del self._by_handle[record.handle]
        return record

    def detach(self, endpoint_id: str) -> None:
        record = self._forget_local(endpoint_id)
        if record is not None:
            published = self._published.get(record.handle)
            if published is not None and published.endpoint_id == endpoint_id:
                del self._published[record.handle]
        if record is not None and self._redis is not None:
            d = self._redis.eval(scripts.DETACH, [f"ep:{record.handle}", self._index], [endpoint_id, record.handle])
            d.addErrback(self._failed, "detach")

    @_connected
    def endpoints_of(self, handle: str) -> Deferred:
        d = self._redis.hvals(f"ep:{handle}")
        return d.addCallback(lambda values: [codec.loads(text) for text in values or ()])

    @_connected
    @inlineCallbacks
    def all_endpoints(self):
        records = []
        cursor = "0"
        while True:
            cursor, keys = yield self._redis.scan(cursor, "ep:*", 1000)
            for key in keys:
                for text in (yield self._redis.hvals(key)) or ():
                    records.append(codec.loads(text))
            if str(cursor) == "0":
                return records

    def deliver(self, handles: Iterable[str], event) -> None:
        handles = list(handles)
        if not handles or self._fenced:
            return
        stale = self._stale()
        if not stale:
            self._deliver_local(handles, event)
        if self._redis is None:
            return
        # Which other nodes hold endpoints of these users: one round trip,
        # then one inbox message per node.  The script refuses a fenced
        # node; a stale one delivers even locally only once it has not.
        d = self._redis.eval(scripts.ENDPOINT_IDS, [f"ep:{handle}" for handle in handles], self._fence_args())

        def route(found):
            if stale:
                self._deliver_local(handles, event)
            by_node: dict[str, list[str]] = {}
            for handle, endpoint_ids in zip(handles, found or ()):
                for node in {node_of(endpoint_id) for endpoint_id in endpoint_ids or ()}:
                    if node != self.node:
                        by_node.setdefault(node, []).append(handle)
            for node, targets in by_node.items():
                self._send(node, {"k": "deliver", "h": targets, "e": event})

        d.addCallback(route).addErrback(self._failed, "deliver")

    def _deliver_local(self, handles, event) -> None:
        by_handle = self._by_handle
        for handle in handles:
            held = by_handle.get(handle)
            if held:
                for endpoint in list(held.values()):
                    _give(endpoint, event)
            elif self._domain_routes:
                route = self._domain_routes.get(handle.rpartition("@")[2])
                endpoint = route(handle) if route is not None else None
                if endpoint is not None:
                    _give(endpoint, event)

    def route_domain(self, domain: str, endpoint_for) -> None:
        """
        Routes are this node's: events raised on this node (or sent to it)
        for the domain's handles reach C{endpoint_for}.
        """
        self._domain_routes[domain.lower()] = endpoint_for

    def unroute_domain(self, domain: str) -> None:
        self._domain_routes.pop(domain.lower(), None)

    def deliver_to(self, endpoint_id: str, event) -> None:
        node = node_of(endpoint_id)
        if node == self.node:
            entry = self._endpoints.get(endpoint_id)
            if entry is not None:
                _give(entry[0], event)
        else:
            self._send(node, {"k": "to", "id": endpoint_id, "e": event})

    def __len__(self) -> int:
        return len(self._endpoints)

    # Presence

    def publish_presence(self, record) -> None:
        if self._fenced or self._redis is None:
            return
        if record.endpoint_id in self._endpoints:
            self._published[record.handle] = record
        d = self._redis.eval(
            scripts.PUBLISH, [f"pres:{record.handle}"], [*self._fence_args(), record.endpoint_id, codec.dumps(record)]
        )
        d.addErrback(self._failed, "publish presence")

    def withdraw_presence(self, handle: str, endpoint_id: str) -> None:
        if self._redis is None or self._fenced:
            return
        self._redis.eval(scripts.WITHDRAW, [f"pres:{handle}"], [endpoint_id]).addErrback(self._failed, "withdraw presence")

    @_connected
    def presence_of(self, handles: Iterable[str]) -> Deferred:
        handles = list(handles)
        if not handles:
            return succeed({})
        d = self._redis.eval(scripts.PRESENCE_OF, [f"pres:{handle}" for handle in handles], [])

        def found(values):
            return {handle: codec.loads(text) for handle, text in zip(handles, values or ()) if text}

        return d.addCallback(found)

    # Switchboard cookies and session ids

    @_connected
    def add_cookie(self, cookie: str, ticket, now: float) -> Deferred:
        lifetime_ms = max(1, int((ticket.expires - now) * 1000))
        d = self._redis.execute_command("SET", f"sbck:{cookie}", codec.dumps(ticket), "PX", lifetime_ms)
        return d.addCallback(lambda _: None)

    @_connected
    def redeem_cookie(self, cookie: str, now: float) -> Deferred:
        d = self._redis.execute_command("GETDEL", f"sbck:{cookie}")

        def redeemed(text):
            if not text:
                return None
            ticket = codec.loads(text)
            return ticket if ticket.expires > now else None

        return d.addCallback(redeemed)

    @_connected
    def claim_session_id(self, session_id: str, address: str) -> Deferred:
        d = self._redis.execute_command("SET", f"sbsid:{session_id}", address, "NX")
        return d.addCallback(lambda reply: reply is not None)

    def release_session_id(self, session_id: str) -> None:
        if self._redis is not None:
            self._redis.delete(f"sbsid:{session_id}").addErrback(self._failed, "release session id")

    # The inbox

    def _send(self, node: str, message: dict) -> None:
        if self._fenced or self._redis is None:
            return
        d = self._redis.eval(scripts.SEND, [f"inbox:{node}"], [*self._fence_args(), INBOX_LENGTH, codec.dumps(message)])
        d.addErrback(self._failed, f"send to node {node}")

    @inlineCallbacks
    def _read_inbox(self):
        last = "0-0"
        while self._running:
            reader = self._reader
            try:
                reply = yield reader.execute_command(
                    "XREAD", "COUNT", 500, "BLOCK", INBOX_BLOCK_MS, "STREAMS", self._inbox, last
                )
            except Exception as error:
                if not self._running:
                    break
                log.warn("directory: reading the inbox of {node} failed ({error}); trying again", node=self.node, error=error)
                yield deferLater(self._reactor, 0.5, lambda: None)
                continue
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    self._received(dict(zip(fields[0::2], fields[1::2])).get("m"))

    def _received(self, text) -> None:
        try:
            message = codec.loads(text)
            kind = message["k"]
            if kind == "deliver":
                self._deliver_local(message["h"], message["e"])
            elif kind == "to":
                self.deliver_to(message["id"], message["e"])
            elif kind == "kick":
                self._kick(message["id"])
        except Exception:
            log.failure("directory: message for node {node} not understood: {text!r}", node=self.node, text=text)

    def _failed(self, failure, what: str) -> None:
        self._failed_with(failure.value, what)

    def _failed_with(self, error, what: str) -> None:
        if _is_fenced(error):
            self._fence()
            return
        log.warn("directory: {what} failed: {error}", what=what, error=error)


def _leases(flat) -> list:
    """
    The (node, lease fields) pairs of L{scripts.LIVE}'s answer.
    """
    flat = list(flat or ())
    return [(node, value.split("|")) for node, value in zip(flat[0::2], flat[1::2])]


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _uncancellable(d: Deferred, late: Optional[Callable] = None) -> Deferred:
    """
    A Deferred firing with C{d}'s result that can be cancelled (timed out)
    without cancelling C{d}; C{late} gets C{d}'s result if it comes after.
    """
    outer = Deferred()

    def passed(result):
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        elif late is not None:
            late(result)

    d.addBoth(passed)
    return outer


def _is_fenced(error) -> bool:
    return isinstance(error, Fenced) or (isinstance(error, txredisapi.ResponseError) and "FENCED" in str(error))
