"""
The server's Prometheus counters, counted where things happen.

Front-ends, the store wrapper and the login code increment these; the admin
endpoint's C{/metrics} exposes them with the process metrics and the figures
read from live state at scrape time (see L{msnp.control.site}).  Names follow
the Prometheus conventions: C{msnp_} prefix, C{_total} on counters, units in
the name.  Every label takes values from a small fixed set, never from what
a client sends, so a hostile client cannot grow the series without bound.
"""

from __future__ import annotations

import time

from typing import Iterator

from prometheus_client import REGISTRY, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from twisted.internet.defer import Deferred

# The text format would add a *_created gauge beside every counter; the
# process start time already says when counting began.
disable_created_metrics()

class _Count:
    """
    One counter value.  Incremented only on the reactor thread, so a plain
    integer does: prometheus_client's own counters take a lock and check
    their state on every increment, which cost more than relaying the
    switchboard message they counted.  The hottest paths add to C{value}
    directly: a method call per byte count or presence line showed up in a
    login's profile.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Counter:
    """
    A counter with optional labels, read by Prometheus at scrape time (it
    is registered as a collector); C{labels(...)} gives the child to keep
    and increment.
    """

    def __init__(self, name: str, documentation: str, labelnames=(), registry=REGISTRY):
        self._name = name[: -len("_total")] if name.endswith("_total") else name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple, _Count] = {}
        if not self._labelnames:
            self._children[()] = _Count()
        if registry is not None:
            registry.register(self)

    def labels(self, *values) -> _Count:
        # Labels are nearly always strings already: found without a copy.
        child = self._children.get(values)
        if child is not None:
            return child
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self._labelnames):
                raise ValueError(f"{self._name} takes labels {self._labelnames}")
            child = self._children[key] = _Count()
        return child

    def inc(self, amount: float = 1) -> None:
        self._children[()].value += amount

    def describe(self) -> list:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for key, child in list(self._children.items()):
            family.add_metric(list(key), child.value)
        yield family


LOGINS_ACCEPTED = Counter(
    "msnp_logins_accepted_total",
    "Logins accepted, by method (md5, passport_ticket at the notification server; passport_http, passport_soap at the Passport login).",
    ["method"],
)
LOGINS_REFUSED = Counter(
    "msnp_logins_refused_total",
    "Logins refused, by method and reason (bad_password, unknown_account, locked, throttled, bad_ticket, method_disabled).",
    ["method", "reason"],
)
COMMANDS = Counter("msnp_commands_total", "Commands received from clients, by role and command name.", ["role", "command"])
ERRORS_SENT = Counter("msnp_errors_sent_total", "Numeric error replies sent to clients, by role and code.", ["role", "code"])
RECEIVED_BYTES = Counter("msnp_received_bytes_total", "Bytes received from clients, by role.", ["role"])
SENT_BYTES = Counter("msnp_sent_bytes_total", "Bytes sent to clients, by role.", ["role"])
DISCONNECTIONS = Counter(
    "msnp_forced_disconnections_total",
    "Connections the server dropped to protect itself, by role and reason (slow_reader, flood, line_too_long).",
    ["role", "reason"],
)
SWITCHBOARD_SESSIONS = Counter("msnp_switchboard_sessions_total", "Switchboard sessions opened.")
SWITCHBOARD_MESSAGES = Counter("msnp_switchboard_messages_total", "Switchboard messages relayed (one per MSG, whatever the number of recipients).")
PRESENCE_NOTIFICATIONS = Counter(
    "msnp_presence_notifications_total",
    "Presence lines sent to watchers, by kind (online: NLN, offline: FLN, initial: ILN, personal_message: UBX).",
    ["kind"],
)
RVP_OUTBOUND_REQUESTS = Counter(
    "msnp_rvp_outbound_requests_total",
    "RVP requests this server sent (NOTIFYs to local nodes and peers, federation), by connection (new, reused: kept alive).",
    ["connection"],
)
RVP_OUTBOUND_COALESCED = Counter(
    "msnp_rvp_outbound_coalesced_total",
    "RVP property notifications replaced while queued by a later one for the same subscription (only the latest state is sent).",
)
RVP_OUTBOUND_DROPPED = Counter(
    "msnp_rvp_outbound_dropped_total",
    "RVP requests given up without an answer, by reason (queue_full, unreachable, timeout, connection_lost, stopped).",
    ["reason"],
)
RVP_OUTBOUND_RETRIED = Counter(
    "msnp_rvp_outbound_retried_total",
    "RVP requests sent again on a new connection after the peer closed a kept-alive one under them.",
)
RVP_OUTBOUND_CONNECTIONS = Counter(
    "msnp_rvp_outbound_connections_total",
    "Outbound RVP connections, by event (opened, closed).",
    ["event"],
)
STORE_LATENCY = Histogram(
    "msnp_store_operation_duration_seconds",
    "Time from a store call to its answer on the reactor thread, by operation.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# The command label takes a known name or "other".
OTHER_COMMAND = "other"

# Children looked up once: the labelled lookup takes a lock, and these are
# counted for every line a watcher is sent.
PRESENCE_ONLINE = PRESENCE_NOTIFICATIONS.labels("online")
PRESENCE_OFFLINE = PRESENCE_NOTIFICATIONS.labels("offline")
PRESENCE_INITIAL = PRESENCE_NOTIFICATIONS.labels("initial")
PRESENCE_PERSONAL_MESSAGE = PRESENCE_NOTIFICATIONS.labels("personal_message")
RVP_OUTBOUND_FRESH = RVP_OUTBOUND_REQUESTS.labels("new")
RVP_OUTBOUND_REUSED = RVP_OUTBOUND_REQUESTS.labels("reused")
RVP_OUTBOUND_CONNECTIONS_OPENED = RVP_OUTBOUND_CONNECTIONS.labels("opened")
RVP_OUTBOUND_CONNECTIONS_CLOSED = RVP_OUTBOUND_CONNECTIONS.labels("closed")

_commands: dict = {}


def command_counter(role: str, name: str):
    """
    The C{msnp_commands_total} child of (C{role}, C{name}); C{name} must
    come from a fixed set (see L{msnp.msn.protocol.counted_command}).
    """
    child = _commands.get((role, name))
    if child is None:
        child = _commands[(role, name)] = COMMANDS.labels(role, name)
    return child


def total(counter) -> float:
    """
    The sum of a counter over all its label values.
    """
    return sum(
        sample.value for metric in counter.collect() for sample in metric.samples if sample.name.endswith("_total")
    )


class TimedStore:
    """
    A store whose every call is timed into L{STORE_LATENCY}: the latency an
    operator sees is measured at the interface, whatever the store behind.
    """

    # Lifecycle calls, not operations.
    _UNTIMED = frozenset({"start", "stop"})

    def __init__(self, store, now=time.perf_counter):
        self._store = store
        self._now = now

    def __getattr__(self, name: str):
        attribute = getattr(self._store, name)
        if name in self._UNTIMED or name.startswith("_") or not callable(attribute):
            return attribute
        histogram = STORE_LATENCY.labels(name)
        now = self._now

        def timed(*args, **kwargs):
            started = now()
            result = attribute(*args, **kwargs)
            if isinstance(result, Deferred):
                result.addBoth(_observe, histogram, started, now)
            return result

        # Kept on the instance: the next call finds it without coming here.
        setattr(self, name, timed)
        return timed


def _observe(result, histogram, started: float, now):
    histogram.observe(now() - started)
    return result
