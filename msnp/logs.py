"""
A leaner text log observer, the one C{twistd msnp} logs through unless
told otherwise (see L{msnp.tap.text_log_observer}); also usable as

    twistd --logger msnp.logs.observer -n msnp ... >> msnp.log

It writes the same lines as twistd's default observer
(C{TIMESTAMP [namespace#level] text}, tracebacks included), to standard
output, but formats the timestamp once a second instead of for every
event; at a few hundred logins a second, with five connection lines per
login, twistd's per-event formatting is a fifth of the reactor's time.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from twisted.logger import ILogObserver, eventAsText, formatEvent
from zope.interface import implementer


@implementer(ILogObserver)
class TextLineObserver:
    """
    One line per event on C{stream} (continuation lines of a traceback
    indented with a tab, as twistd does).
    """

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._second = None
        self._stamp = ""

    def _timestamp(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))
        return self._stamp

    def __call__(self, event: dict) -> None:
        when = event.get("log_time")
        stamp = self._timestamp(time.time() if when is None else when)
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}"
        if "log_failure" in event:
            text = eventAsText(event, includeTimestamp=False, includeSystem=False)
        else:
            text = format_text(event)
        self._stream.write(f"{stamp} [{system}] {text.replace(chr(10), chr(10) + chr(9))}\n")
        self._stream.flush()


def format_text(event: dict) -> str:
    """
    The event's text, as twisted.logger's C{formatEvent} gives it: by
    C{str.format_map} (in C) when the format is plain, else by Twisted's
    own formatter (calls like C{{f()}}, flattened events, bytes formats and
    formats that do not format fall back to it).  Twisted's pure-Python
    formatter was most of what a log line cost.
    """
    fmt = event.get("log_format")
    if type(fmt) is str and "log_flattened" not in event:
        try:
            return fmt.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


def observer() -> TextLineObserver:
    """
    The factory C{twistd --logger msnp.logs.observer} calls: lines to
    standard output.
    """
    return TextLineObserver(sys.stdout)
