"""
What the RVP front-end needs from the rest of the service, as one small
interface: accounts and their secrets, the privacy lists, the forward list
an RVP user's subscriptions fill, and the other front-ends' users
(presence and message delivery).

L{msnp.rvp.bridge.MessengerHome} implements it over the messenger core.
"""

from __future__ import annotations

from typing import Optional

import attrs
from zope.interface import Interface



@attrs.frozen
class AccountInfo:
    handle: str
    display_name: str
    # (verifier text, MD5 password-equivalent or "")
    digest_secrets: tuple[str, str]


@attrs.frozen
class Privacy:
    """
    An account's privacy rule: BLP ("AL" shows everyone not blocked, "BL"
    only the allowed) and the allow and block lists.
    """

    blp: str
    allowed: frozenset[str]
    blocked: frozenset[str]

    def allows(self, watcher: Optional[str]) -> bool:
        if watcher is not None and watcher in self.blocked:
            return False
        if watcher is not None and watcher in self.allowed:
            return True
        return self.blp == "AL"


@attrs.frozen
class InstantMessage:
    """
    A message between principals: C{mime} is the MIME text of mime-data
    (line ends normalised to LF by XML), C{session_id} its Session-Id.
    """

    sender: str
    recipients: tuple[str, ...]
    mime: str
    session_id: Optional[str] = None


class IRvpHome(Interface):
    def account(handle):
        """
        Deferred L{AccountInfo} of a local account, or None.
        """

    def privacy(handle):
        """
        Deferred L{Privacy} of a local account.
        """

    def reverse_list(handle):
        """
        Deferred list of the handles that have C{handle} on their forward
        list (its reverse list).
        """

    def set_privacy(handle, privacy):
        """
        Replace an account's BLP, allow and block lists (an RVP ACL write);
        Deferred firing once committed.
        """

    def set_display_name(handle, name):
        """
        Deferred firing once the account's friendly name is committed.
        """

    def add_contact(owner, contact, name):
        """
        Put C{contact} on C{owner}'s forward list (an RVP subscription is
        a forward-list entry); Deferred firing once committed.
        """

    def rvp_presence_changed(handle, state):
        """
        An RVP principal's published state changed: the other front-ends'
        watchers are told.  A Deferred firing once it is applied (changes
        of one user are applied in order).
        """

    def other_presence(handle):
        """
        Deferred RVP state of C{handle} as the core publishes it when an
        endpoint of another front-end is the published one ("invisible"
        when it appears offline); None when not online there or when this
        front-end's own endpoint is the one published.
        """

    def deliver_message(recipient, message):
        """
        Deliver C{message} to C{recipient}'s sessions on the other
        front-ends: Deferred True once delivered, False when not online
        there.
        """

    def bind(frontend):
        """
        The RVP front-end the home reports to: C{contact_changed(handle, state)},
        C{has_local_node(handle)}, C{message_from_core(recipient, sender,
        sender_name, mime)}.
        """

    def start():
        """
        Begin following what must be followed at start (federated
        contacts on forward lists); a Deferred.
        """

    def stop():
        """
        Sign every RVP user out of the other front-ends' view and stop
        following federated contacts; a Deferred.
        """

    def watcher_from_peer(owner, watcher):
        """
        C{watcher}, a user of a federated domain, subscribed to C{owner}'s
        presence; Deferred firing once recorded.
        """

    def presence_from_peer(owner, contact, state):
        """
        A federated server told C{owner} that C{contact} is now C{state} (an
        RVP state, None when unreadable); fire-and-forget.
        """
