"""
What the RVP front-end needs from the rest of the service, as one small
interface: accounts and their secrets, the privacy lists, the forward list
an RVP user's subscriptions fill, and the other front-ends' users
(presence and message delivery).

L{StoreHome} implements it over the store alone: accounts, lists and
privacy are the store's, shared with every other front-end.  Reaching
users of the other front-ends live (their presence, messages through
switchboards, list notices) is the bridge to the messenger core
(protocol-notes/rvp.md, "Bridge"); without it other front-ends' users
are shown offline to RVP users and a message to them is answered 412.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from zope.interface import Interface, implementer

from msnp.store.records import StoreError


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
        An RVP principal's published state changed (fire-and-forget): the
        other front-ends' watchers are told.
        """

    def other_presence(handle):
        """
        Deferred RVP state of C{handle} as the other front-ends know it
        (None: not online there).
        """

    def deliver_message(recipient, message):
        """
        Deliver C{message} to C{recipient}'s sessions on the other
        front-ends: Deferred True once delivered, False when not online
        there.
        """


@implementer(IRvpHome)
class StoreHome:
    """
    L{IRvpHome} over the store alone (no other front-end reachable live).
    """

    def __init__(self, store):
        self.store = store

    @inlineCallbacks
    def account(self, handle: str):
        account = yield self.store.get_account(handle)
        if account is None:
            return None
        return AccountInfo(account.handle, account.friendly_name, (account.digest_verifier, account.md5_password))

    @inlineCallbacks
    def privacy(self, handle: str):
        user = yield self.store.load_user(handle)
        if user is None:
            return Privacy("AL", frozenset(), frozenset())
        return Privacy(user.blp, frozenset(user.lists["AL"]), frozenset(user.lists["BL"]))

    @inlineCallbacks
    def set_privacy(self, handle: str, privacy: Privacy):
        current = yield self.privacy(handle)
        for lst, now, wanted in (("AL", current.allowed, privacy.allowed), ("BL", current.blocked, privacy.blocked)):
            for contact in sorted(now - wanted):
                yield self.store.remove_from_list(handle, lst, contact)
            for contact in sorted(wanted - now):
                yield self.store.add_to_list(handle, lst, contact, contact)
        if privacy.blp != current.blp:
            yield self.store.set_privacy(handle, "blp", privacy.blp)

    def set_display_name(self, handle: str, name: str) -> Deferred:
        return self.store.set_friendly_name(handle, name)

    @inlineCallbacks
    def add_contact(self, owner: str, contact: str, name: str):
        user = yield self.store.load_user(owner)
        if user is None or contact in user.lists["FL"]:
            return
        try:
            yield self.store.add_to_list(owner, "FL", contact, name, 0)
        except StoreError:
            # Not an account of ours: federated contacts are kept by the
            # subscription alone until the store takes foreign handles.
            pass

    def rvp_presence_changed(self, handle: str, state: str) -> None:
        pass  # no other front-end is reachable from here (module docstring)

    def other_presence(self, handle: str) -> Deferred:
        return succeed(None)

    def deliver_message(self, recipient: str, message: InstantMessage) -> Deferred:
        return succeed(False)
