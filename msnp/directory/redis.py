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

Values are JSON (L{msnp.directory.codec}).  The client is txredisapi, which
imports Twisted's global reactor when it is imported: import this module
only once the reactor is chosen (not from the twistd plugin file).
"""

from __future__ import annotations

from typing import Iterable, Optional

import txredisapi
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import events
from msnp.core.endpoints import EndpointRecord, default_node_id
from msnp.directory import codec
from msnp.directory.interface import IDirectory
from msnp.directory.local import _give
from msnp.directory.redisurl import parse_redis_url

log = Logger()

# Seconds a blocking inbox read waits for messages, and the reply timeout
# of every command (above the blocking wait).
INBOX_BLOCK_MS = 1000
REPLY_TIMEOUT = 5
INBOX_LENGTH = 10000

# Put a new endpoint's record in place; with ARGV[3] "1", first take out
# the user's other endpoints of the same protocol and return their records.
_ATTACH = """
local replaced = {}
if ARGV[3] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local id, rec = all[i], all[i + 1]
    if id ~= ARGV[1] then
      local decoded = cjson.decode(rec)
      if decoded['f']['protocol'] == ARGV[4] then
        redis.call('HDEL', KEYS[1], id)
        table.insert(replaced, rec)
      end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[5] .. ' ' .. ARGV[1])
return replaced
"""

_DETACH = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2] .. ' ' .. ARGV[1])
return 1
"""

# The endpoint ids of each of KEYS (ep:H), in order.
_ENDPOINT_IDS = """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HKEYS', key)
end
return found
"""

_WITHDRAW = """
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_PRESENCE_OF = """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HGET', key, 'rec') or ''
end
return found
"""

# Forget what a previous run of this node left: its endpoints, and the
# presence they published.
_FORGET_NODE = """
local members = redis.call('SMEMBERS', KEYS[1])
for _, member in ipairs(members) do
  local space = string.find(member, ' ', 1, true)
  local handle, id = string.sub(member, 1, space - 1), string.sub(member, space + 1)
  redis.call('HDEL', 'ep:' .. handle, id)
  if redis.call('HGET', 'pres:' .. handle, 'id') == id then
    redis.call('DEL', 'pres:' .. handle)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return #members
"""


def node_of(endpoint_id: str) -> str:
    return endpoint_id.rsplit("/", 1)[0]


@implementer(IDirectory)
class RedisDirectory:
    """
    The directory of one node of a cluster sharing one Redis.
    """

    def __init__(self, url: str, node: str = "", reactor=None):
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
        self._reading: Optional[Deferred] = None
        self._running = False

    # Starting and stopping

    def _connect(self) -> Deferred:
        settings = self._settings
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
        )

    @inlineCallbacks
    def start(self):
        """
        Connect, forget what an earlier run of this node left behind, and
        start reading the inbox.
        """
        self._redis = yield self._connect()
        self._reader = yield self._connect()
        forgotten = yield self._redis.eval(_FORGET_NODE, [self._index, self._inbox])
        if forgotten:
            log.info("directory: forgot {count} endpoints an earlier run of node {node} left", count=forgotten, node=self.node)
        self._running = True
        self._reading = self._read_inbox()

    @inlineCallbacks
    def stop(self):
        self._running = False
        for endpoint_id, (_, record) in list(self._endpoints.items()):
            self.detach(endpoint_id)
        connections, self._redis, self._reader = [self._redis, self._reader], None, None
        if connections[0] is not None:
            # What this node published goes, and the last writes are done.
            yield connections[0].delete(self._inbox)
        for connection in connections:
            if connection is not None:
                yield connection.disconnect()
        if self._reading is not None:
            yield self._reading

    # Endpoints

    def attach(self, endpoint, record: EndpointRecord, single: bool = True) -> Deferred:
        self._endpoints[record.endpoint_id] = (endpoint, record)
        self._by_handle.setdefault(record.handle, {})[record.endpoint_id] = endpoint
        d = self._redis.eval(
            _ATTACH,
            [f"ep:{record.handle}", self._index],
            [record.endpoint_id, codec.dumps(record), "1" if single else "0", record.protocol, record.handle],
        )

        def replaced(encoded):
            records = [codec.loads(text) for text in encoded or ()]
            for old in records:
                self._kick(old.endpoint_id)
            return records

        return d.addCallback(replaced)

    def _kick(self, endpoint_id: str) -> None:
        if node_of(endpoint_id) == self.node:
            entry = self._endpoints.get(endpoint_id)
            if entry is not None:
                self._forget_local(endpoint_id)
                _give(entry[0], events.Kicked(events.REPLACED))
        else:
            self._send(node_of(endpoint_id), {"k": "kick", "id": endpoint_id})

    def _forget_local(self, endpoint_id: str) -> Optional[EndpointRecord]:
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
        if record is not None and self._redis is not None:
            d = self._redis.eval(_DETACH, [f"ep:{record.handle}", self._index], [endpoint_id, record.handle])
            d.addErrback(self._failed, "detach")

    def endpoints_of(self, handle: str) -> Deferred:
        d = self._redis.hvals(f"ep:{handle}")
        return d.addCallback(lambda values: [codec.loads(text) for text in values or ()])

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
        self._deliver_local(handles, event)
        if not handles or self._redis is None:
            return
        # Which other nodes hold endpoints of these users: one round trip,
        # then one inbox message per node.
        d = self._redis.eval(_ENDPOINT_IDS, [f"ep:{handle}" for handle in handles], [])

        def route(found):
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
        d = self._redis.hmset(f"pres:{record.handle}", {"id": record.endpoint_id, "rec": codec.dumps(record)})
        d.addErrback(self._failed, "publish presence")

    def withdraw_presence(self, handle: str, endpoint_id: str) -> None:
        if self._redis is None:
            return
        self._redis.eval(_WITHDRAW, [f"pres:{handle}"], [endpoint_id]).addErrback(self._failed, "withdraw presence")

    def presence_of(self, handles: Iterable[str]) -> Deferred:
        handles = list(handles)
        if not handles:
            return succeed({})
        d = self._redis.eval(_PRESENCE_OF, [f"pres:{handle}" for handle in handles], [])

        def found(values):
            return {handle: codec.loads(text) for handle, text in zip(handles, values or ()) if text}

        return d.addCallback(found)

    # Switchboard cookies and session ids

    def add_cookie(self, cookie: str, ticket, now: float) -> Deferred:
        lifetime_ms = max(1, int((ticket.expires - now) * 1000))
        d = self._redis.execute_command("SET", f"sbck:{cookie}", codec.dumps(ticket), "PX", lifetime_ms)
        return d.addCallback(lambda _: None)

    def redeem_cookie(self, cookie: str, now: float) -> Deferred:
        d = self._redis.execute_command("GETDEL", f"sbck:{cookie}")

        def redeemed(text):
            if not text:
                return None
            ticket = codec.loads(text)
            return ticket if ticket.expires > now else None

        return d.addCallback(redeemed)

    def claim_session_id(self, session_id: str, address: str) -> Deferred:
        d = self._redis.execute_command("SET", f"sbsid:{session_id}", address, "NX")
        return d.addCallback(lambda reply: reply is not None)

    def release_session_id(self, session_id: str) -> None:
        if self._redis is not None:
            self._redis.delete(f"sbsid:{session_id}").addErrback(self._failed, "release session id")

    # The inbox

    def _send(self, node: str, message: dict) -> None:
        d = self._redis.execute_command(
            "XADD", f"inbox:{node}", "MAXLEN", "~", INBOX_LENGTH, "*", "m", codec.dumps(message)
        )
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
        log.warn("directory: {what} failed: {error}", what=what, error=failure.getErrorMessage())
