"""
The directory: who is online on which notification session, which
switchboard sessions exist and who is in them, and the cookies that admit
users to them.

Everything that needs to know where a user is asks the directory; the
in-process L{LocalDirectory} is the default, and the interface is what a
networked directory must provide so several processes can share one view.
Cookie calls return Deferreds because a shared directory must answer them
over the network.
"""

from __future__ import annotations

from typing import Iterator, Optional

from twisted.internet.defer import Deferred, succeed
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

    def add_cookie(cookie, ticket, now):
        """
        Remember a switchboard C{cookie} admitting C{ticket.handle} until
        C{ticket.expires}; a Deferred that fires once it is stored.
        C{now} lets the directory forget cookies that expired unused.
        """

    def redeem_cookie(cookie, now):
        """
        Take C{cookie} out of the directory: a Deferred firing with its
        ticket, or None when it is unknown, already used or expired at
        C{now}.  A cookie can be redeemed once.
        """

    def add_conversation(conversation):
        """
        Record a switchboard session under C{conversation.session_id};
        False if that id is taken.
        """

    def find_conversation(session_id):
        """
        The switchboard session with C{session_id}, or None.
        """

    def remove_conversation(conversation):
        """
        Forget a switchboard session that has ended.
        """

    def conversations():
        """
        Every switchboard session; each knows its C{participants}.
        """


@implementer(IDirectory)
class LocalDirectory:
    def __init__(self) -> None:
        self._sessions: dict[str, object] = {}
        # Insertion order is expiry order (every cookie lives as long), so
        # expired cookies are swept from the front.
        self._cookies: dict[str, object] = {}
        self._conversations: dict[str, object] = {}

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

    # Switchboard cookies and sessions

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

    def add_conversation(self, conversation) -> bool:
        if conversation.session_id in self._conversations:
            return False
        self._conversations[conversation.session_id] = conversation
        return True

    def find_conversation(self, session_id: str):
        return self._conversations.get(session_id)

    def remove_conversation(self, conversation) -> None:
        if self._conversations.get(conversation.session_id) is conversation:
            del self._conversations[conversation.session_id]

    def conversations(self) -> Iterator[object]:
        return iter(list(self._conversations.values()))
