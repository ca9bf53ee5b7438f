"""
The directory: who is online on which notification session.

Everything that needs to know where a user is asks the directory; the
in-process L{LocalDirectory} is the default, and the interface is what a
networked directory must provide so several processes can share one view.
"""

from __future__ import annotations

from typing import Iterator, Optional

from zope.interface import Interface, implementer


class IDirectory(Interface):
    def register(handle, session):
        """
        Record C{session} as the live session of C{handle}; return the
        session it replaces, if any.
        """

    def unregister(handle, session):
        """
        Forget C{session}, if it is still the live one for C{handle}.
        """

    def find(handle):
        """
        The live session of C{handle}, or None.
        """

    def sessions():
        """
        Every live session.
        """


@implementer(IDirectory)
class LocalDirectory:
    def __init__(self) -> None:
        self._sessions: dict[str, object] = {}

    def register(self, handle: str, session) -> Optional[object]:
        previous = self._sessions.get(handle)
        self._sessions[handle] = session
        return previous

    def unregister(self, handle: str, session) -> None:
        if self._sessions.get(handle) is session:
            del self._sessions[handle]

    def find(self, handle: str):
        return self._sessions.get(handle)

    def sessions(self) -> Iterator[object]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)
