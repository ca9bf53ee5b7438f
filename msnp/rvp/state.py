"""
The RVP home server's soft state: leased presence with view ids, and
subscriptions with granted lifetimes.  Both expire by the injected clock
(an L{IReactorTime}); nothing here does I/O, the caller is told through
callbacks.
"""

from __future__ import annotations

import secrets
from typing import Callable, Optional

import attrs

# Status elements RVP clients send.  "invisible" (Miranda) is appear-offline:
# watchers are shown offline.
STATES = ("online", "busy", "idle", "back-soon", "away", "on-phone", "at-lunch", "offline", "invisible")
SHARED_STATES = frozenset({"online", "busy", "back-soon", "away", "on-phone", "at-lunch"})
HIDDEN_STATES = frozenset({"offline", "invisible"})

DEFAULT_LEASE = 1200.0
MAX_LEASE = 14400.0
MIN_LEASE = 30.0
MAX_SUBSCRIPTION_LIFETIME = 14400.0
MIN_SUBSCRIPTION_LIFETIME = 30.0
MAX_VIEWS = 16


@attrs.define
class View:
    """
    One presentity of a principal: its leased state.
    """

    view_id: str
    value: str
    default: str
    timeout: Optional[float]
    set_at: float
    timer: object = None


@attrs.define
class PrincipalPresence:
    views: dict[str, View] = attrs.Factory(dict)
    # The last shared state any view set: shared states reach every view.
    shared: str = "online"

    def published(self) -> str:
        """
        The state watchers see: offline unless a view is present; idle when
        every present view is idle; otherwise the shared state.  A view's
        own offline or idle stays private to it.
        """
        present = [v for v in self.views.values() if v.value not in HIDDEN_STATES]
        if not present:
            invisible = any(v.value == "invisible" for v in self.views.values())
            return "invisible" if invisible else "offline"
        if all(v.value == "idle" for v in present):
            return "idle"
        return self.shared


def grant_lease(requested: Optional[float]) -> float:
    if requested is None or requested <= 0:
        return DEFAULT_LEASE
    return max(MIN_LEASE, min(MAX_LEASE, requested))


class PresenceTable:
    """
    Leased states of our principals.  C{on_change(handle, published)} runs
    whenever a principal's published state changes, including at lease
    expiry.
    """

    def __init__(self, clock, on_change: Callable[[str, str], None]):
        self._clock = clock
        self._on_change = on_change
        self._principals: dict[str, PrincipalPresence] = {}
        self._next_view = secrets.randbelow(9000) + 1000

    def published(self, handle: str) -> str:
        presence = self._principals.get(handle)
        return presence.published() if presence else "offline"

    def views(self, handle: str) -> dict[str, View]:
        presence = self._principals.get(handle)
        return dict(presence.views) if presence else {}

    def online(self) -> list[str]:
        return [h for h, p in self._principals.items() if p.published() not in HIDDEN_STATES]

    def set_state(
        self, handle: str, view_id: Optional[str], value: str, default: str, timeout: Optional[float]
    ) -> View:
        """
        Set the state of one view (a new view when C{view_id} is None or
        unknown); C{timeout} None leaves the value unleased.
        """
        presence = self._principals.setdefault(handle, PrincipalPresence())
        before = presence.published()
        view = presence.views.get(view_id) if view_id else None
        if view is None:
            if len(presence.views) >= MAX_VIEWS:
                # The oldest view gives way: a client that never reuses its
                # view id must not grow the table without bound.
                oldest = min(presence.views.values(), key=lambda v: v.set_at)
                self._drop_view(handle, presence, oldest)
            self._next_view += 1
            view = View(str(self._next_view), value, default, timeout, self._clock.seconds())
            presence.views[view.view_id] = view
        if view.timer is not None and view.timer.active():
            view.timer.cancel()
        view.timer = None
        view.value, view.default, view.timeout, view.set_at = value, default, timeout, self._clock.seconds()
        if value in SHARED_STATES:
            presence.shared = value
        if timeout is not None:
            view.timer = self._clock.callLater(timeout, self._expire, handle, view.view_id)
        self._changed(handle, before)
        return view

    def _expire(self, handle: str, view_id: str) -> None:
        presence = self._principals.get(handle)
        view = presence.views.get(view_id) if presence else None
        if view is None:
            return
        view.timer = None
        before = presence.published()
        if view.default in HIDDEN_STATES:
            # A view dies when its leased properties expire.
            del presence.views[view_id]
        else:
            view.value, view.timeout = view.default, None
            if view.default in SHARED_STATES:
                presence.shared = view.default
        self._changed(handle, before)

    def _drop_view(self, handle: str, presence: PrincipalPresence, view: View) -> None:
        if view.timer is not None and view.timer.active():
            view.timer.cancel()
        del presence.views[view.view_id]

    def _changed(self, handle: str, before: str) -> None:
        presence = self._principals.get(handle)
        after = presence.published() if presence else "offline"
        if presence is not None and not presence.views:
            del self._principals[handle]
        if after != before:
            self._on_change(handle, after)

    def stop(self) -> None:
        for presence in self._principals.values():
            for view in presence.views.values():
                if view.timer is not None and view.timer.active():
                    view.timer.cancel()
                view.timer = None


LOGIN = "pragma/notify"
PROPCHANGE = "update/propchange"


@attrs.define
class Subscription:
    """
    C{node}: the handle subscribed to; C{kind}: its Notification-Type;
    C{callback}: where notifications go; C{subscriber}: the principal (or
    server name) that asked.
    """

    sub_id: str
    node: str
    kind: str
    callback: str
    subscriber: str
    expires: float
    timer: object = None

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires - now + 0.5))


def grant_lifetime(requested: Optional[float]) -> float:
    """
    Exchange refuses permanent subscriptions and caps them at four hours.
    """
    if requested is None or requested <= 0:
        return MAX_SUBSCRIPTION_LIFETIME
    return max(MIN_SUBSCRIPTION_LIFETIME, min(MAX_SUBSCRIPTION_LIFETIME, requested))


class SubscriptionTable:
    """
    Active subscriptions by id and by node.  C{on_expire(subscription)}
    runs when one lapses without renewal.
    """

    def __init__(self, clock, on_expire: Callable[[Subscription], None], max_per_node: int = 2000):
        self._clock = clock
        self._on_expire = on_expire
        self._by_id: dict[str, Subscription] = {}
        self._by_node: dict[str, dict[str, Subscription]] = {}
        self.max_per_node = max_per_node

    def _new_id(self) -> str:
        while True:
            sub_id = "%X" % secrets.randbits(32)
            if sub_id not in self._by_id:
                return sub_id

    def add(self, node: str, kind: str, callback: str, subscriber: str, lifetime: float) -> Optional[Subscription]:
        """
        A new subscription; None when the node already has as many as it
        may.
        """
        existing = self._by_node.setdefault(node, {})
        if len(existing) >= self.max_per_node:
            return None
        subscription = Subscription(self._new_id(), node, kind, callback, subscriber, self._clock.seconds() + lifetime)
        subscription.timer = self._clock.callLater(lifetime, self._expire, subscription.sub_id)
        self._by_id[subscription.sub_id] = subscription
        existing[subscription.sub_id] = subscription
        return subscription

    def get(self, sub_id: str) -> Optional[Subscription]:
        return self._by_id.get(sub_id)

    def renew(self, sub_id: str, lifetime: float) -> Optional[Subscription]:
        subscription = self._by_id.get(sub_id)
        if subscription is None:
            return None
        subscription.expires = self._clock.seconds() + lifetime
        if subscription.timer is not None and subscription.timer.active():
            subscription.timer.reset(lifetime)
        else:
            subscription.timer = self._clock.callLater(lifetime, self._expire, sub_id)
        return subscription

    def remove(self, sub_id: str) -> Optional[Subscription]:
        subscription = self._by_id.pop(sub_id, None)
        if subscription is None:
            return None
        if subscription.timer is not None and subscription.timer.active():
            subscription.timer.cancel()
        subscription.timer = None
        node = self._by_node.get(subscription.node)
        if node is not None:
            node.pop(sub_id, None)
            if not node:
                del self._by_node[subscription.node]
        return subscription

    def _expire(self, sub_id: str) -> None:
        subscription = self._by_id.get(sub_id)
        if subscription is None:
            return
        subscription.timer = None
        self.remove(sub_id)
        self._on_expire(subscription)

    def of_node(self, node: str, kind: Optional[str] = None) -> list[Subscription]:
        subscriptions = list(self._by_node.get(node, {}).values())
        if kind is not None:
            subscriptions = [s for s in subscriptions if s.kind.lower() == kind.lower()]
        return subscriptions

    def all(self) -> list[Subscription]:
        return list(self._by_id.values())

    def stop(self) -> None:
        for subscription in self._by_id.values():
            if subscription.timer is not None and subscription.timer.active():
                subscription.timer.cancel()
            subscription.timer = None
