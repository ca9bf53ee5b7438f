"""
The in-process directory: every endpoint, presence record, cookie and
switchboard session id of a single-process server, in dictionaries.
"""

from __future__ import annotations

from typing import Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from msnp.core import events
from msnp.core.endpoints import EndpointRecord, default_node_id
from msnp.directory.interface import IDirectory

log = Logger()


@implementer(IDirectory)
class LocalDirectory:
    def __init__(self, node: str = "") -> None:
        self.node = node or default_node_id()
        # endpoint id -> (live endpoint, record)
        self._endpoints: dict[str, tuple[object, EndpointRecord]] = {}
        # handle -> the same (live endpoint, record) entries, in attaching
        # order: a tuple rather than a dict, so that one endpoint per user
        # costs one small object, and delivering walks it without a copy.
        self._by_handle: dict[str, tuple[tuple[object, EndpointRecord], ...]] = {}
        self._presence: dict[str, object] = {}
        # Insertion order is expiry order (every cookie lives as long), so
        # expired cookies are swept from the front.
        self._cookies: dict[str, object] = {}
        self._session_ids: dict[str, str] = {}
        # domain -> callable giving the endpoint for a handle of it
        self._domain_routes: dict[str, object] = {}

    # Endpoints

    def attach(self, endpoint, record: EndpointRecord, single: bool = True) -> Deferred:
        replaced = []
        if single:
            for _, other in self._by_handle.get(record.handle, ()):
                if other.endpoint_id != record.endpoint_id and _replaces(record, other):
                    replaced.append(other)
        for old in replaced:
            live = self._endpoints[old.endpoint_id][0]
            self.detach(old.endpoint_id)
            _give(live, events.Kicked(events.REPLACED))
        self.detach(record.endpoint_id)
        entry = self._endpoints[record.endpoint_id] = (endpoint, record)
        self._by_handle[record.handle] = (*self._by_handle.get(record.handle, ()), entry)
        return succeed(replaced)

    def detach(self, endpoint_id: str) -> None:
        entry = self._endpoints.pop(endpoint_id, None)
        if entry is None:
            return
        handle = entry[1].handle
        rest = tuple(other for other in self._by_handle.get(handle, ()) if other is not entry)
        if rest:
            self._by_handle[handle] = rest
        else:
            self._by_handle.pop(handle, None)

    def endpoints_of(self, handle: str) -> Deferred:
        return succeed([record for _, record in self._by_handle.get(handle, ())])

    def all_endpoints(self) -> Deferred:
        return succeed([record for _, record in self._endpoints.values()])

    def deliver(self, handles: Iterable[str], event) -> None:
        by_handle = self._by_handle
        for handle in handles:
            held = by_handle.get(handle)
            if held:
                # A tuple is never changed in place, so an endpoint leaving
                # while it is given the event does not disturb this loop.
                for endpoint, _ in held:
                    # As _give, inline: this loop runs once per watcher.
                    try:
                        endpoint.receive(event)
                    except Exception:
                        _failed(endpoint, event)
            elif self._domain_routes:
                self._deliver_routed(handle, event)

    def _deliver_routed(self, handle: str, event) -> None:
        route = self._domain_routes.get(handle.rpartition("@")[2])
        if route is not None:
            endpoint = route(handle)
            if endpoint is not None:
                _give(endpoint, event)

    def route_domain(self, domain: str, endpoint_for) -> None:
        self._domain_routes[domain.lower()] = endpoint_for

    def unroute_domain(self, domain: str) -> None:
        self._domain_routes.pop(domain.lower(), None)

    def deliver_to(self, endpoint_id: str, event) -> None:
        entry = self._endpoints.get(endpoint_id)
        if entry is not None:
            _give(entry[0], event)

    def __len__(self) -> int:
        return len(self._endpoints)

    # Presence

    def publish_presence(self, record) -> None:
        self._presence[record.handle] = record

    def withdraw_presence(self, handle: str, endpoint_id: str) -> None:
        record = self._presence.get(handle)
        if record is not None and record.endpoint_id == endpoint_id:
            del self._presence[handle]

    def presence_of(self, handles: Iterable[str]) -> Deferred:
        presence = self._presence
        found = {}
        for handle in handles:
            record = presence.get(handle)
            if record is not None:
                found[handle] = record
        return succeed(found)

    # Switchboard cookies and session ids

    def _sweep_cookies(self, now: float) -> None:
        while self._cookies:
            cookie, ticket = next(iter(self._cookies.items()))
            if ticket.expires > now:
                break
            del self._cookies[cookie]

    def add_cookie(self, cookie: str, ticket, now: float) -> Deferred:
        self._sweep_cookies(now)
        self._cookies[cookie] = ticket
        return succeed(None)

    def redeem_cookie(self, cookie: str, now: float) -> Deferred:
        self._sweep_cookies(now)
        ticket = self._cookies.pop(cookie, None)
        if ticket is not None and ticket.expires <= now:
            ticket = None
        return succeed(ticket)

    def pending_cookies(self) -> int:
        return len(self._cookies)

    def claim_session_id(self, session_id: str, address: str) -> Deferred:
        if session_id in self._session_ids:
            return succeed(False)
        self._session_ids[session_id] = address
        return succeed(True)

    def release_session_id(self, session_id: str) -> None:
        self._session_ids.pop(session_id, None)


def _replaces(new: EndpointRecord, old: EndpointRecord) -> bool:
    """
    Whether signing C{new} in ends C{old}: an endpoint of the same protocol,
    unless both are points of presence of different instances (machine
    GUIDs), which stay side by side.  The same instance signing in again
    replaces its old endpoint.
    """
    if new.protocol != old.protocol:
        return False
    if new.instance and old.instance:
        return new.instance.lower() == old.instance.lower()
    return True


def _give(endpoint, event) -> None:
    # One endpoint's failure must not keep the event from the others.
    try:
        endpoint.receive(event)
    except Exception:
        _failed(endpoint, event)


def _failed(endpoint, event) -> None:
    log.failure("endpoint {endpoint} failed on {event}", endpoint=getattr(endpoint, "endpoint_id", "?"), event=type(event).__name__)
