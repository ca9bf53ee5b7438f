"""
What the status page shows of the recent past: logins and messages per
minute over the last hour, and the latest refused logins and
disconnections.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

MINUTES = 60


class MinuteSeries:
    """
    Per-minute increases of a few running totals over the last hour.

    C{sample()} runs once a minute (L{start} arranges it on a clock) and
    records how much each total grew since the previous sample;
    L{per_minute} adds the minute in progress.
    """

    def __init__(self, totals: dict[str, Callable[[], float]], clock):
        self._totals = totals
        self._clock = clock
        self._last = {name: read() for name, read in totals.items()}
        self._minutes: dict[str, deque] = {name: deque(maxlen=MINUTES - 1) for name in totals}
        self._loop = None

    def start(self) -> None:
        self._loop = LoopingCall(self.sample)
        self._loop.clock = self._clock
        self._loop.start(60.0, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def sample(self) -> None:
        for name, read in self._totals.items():
            value = read()
            self._minutes[name].append(max(0.0, value - self._last[name]))
            self._last[name] = value

    def per_minute(self, name: str) -> list[float]:
        """
        The oldest minute first, the one in progress last; at most an
        hour, shorter while the server is younger than that.
        """
        current = max(0.0, self._totals[name]() - self._last[name])
        return list(self._minutes[name]) + [current]


@implementer(ILogObserver)
class RecentEvents:
    """
    A log observer keeping the latest refused logins and the latest
    notification connections of signed-in users that closed, as the log
    told them (events carrying C{msnp_event}).
    """

    def __init__(self, now: Callable[[], float], keep: int = 20):
        self._now = now
        self.refused_logins: deque = deque(maxlen=keep)
        self.disconnections: deque = deque(maxlen=keep)

    def __call__(self, event: dict) -> None:
        kind = event.get("msnp_event")
        if kind == "login_refused":
            self.refused_logins.appendleft(
                {
                    "time": event.get("log_time", self._now()),
                    "handle": event.get("handle", ""),
                    "method": event.get("method", ""),
                    "address": event.get("address", ""),
                    # The Passport site's refusal line carries the reason
                    # apart from its own text.
                    "reason": event.get("refused_because", event.get("reason", "") + event.get("throttled", "")),
                    "text": formatEvent(event),
                }
            )
        elif kind == "disconnection" and event.get("account") and event.get("role") == "notification":
            self.disconnections.appendleft(
                {
                    "time": event.get("log_time", self._now()),
                    "handle": event.get("account"),
                    "role": event.get("role", ""),
                    "address": event.get("peer", ""),
                    "reason": event.get("reason") or "closed by the client",
                    "text": formatEvent(event),
                }
            )
