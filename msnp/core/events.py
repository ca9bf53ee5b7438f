"""
What the core tells an endpoint: small values, delivered through the
directory to every endpoint that should see them.

Each front-end renders an event in its own protocol and dialect.  An event
delivered to many endpoints in one process is one object: C{rendered} lets
a front-end keep what it made of the event for one dialect so that the
next endpoint speaking that dialect reuses it.
"""

from __future__ import annotations

from typing import Optional

import attrs


def _render_cache():
    return attrs.field(factory=dict, eq=False, repr=False, hash=False)


@attrs.frozen
class PresenceChanged:
    """
    C{handle} is now C{status} (None: offline), shown as C{name}.  With
    C{details_only} only the client capabilities or MSN object changed.
    """

    handle: str
    status: Optional[str]
    name: str = ""
    client_caps: int = 0
    msn_object: str = ""
    details_only: bool = False
    rendered: dict = _render_cache()
    # The second capability word of clients that have one (MSNP16+).
    client_caps_ex: int = 0


@attrs.frozen
class PersonalMessageChanged:
    """
    C{handle}'s personal message (an opaque UTF-8 document) changed.
    """

    handle: str
    payload: bytes
    rendered: dict = _render_cache()


@attrs.frozen
class UserNotification:
    """
    C{sender} relays an opaque notification of C{kind} to C{target}'s
    endpoints (all of them, or only the point of presence C{instance}).
    C{sender_instance} names the sender's own point of presence, if any.
    """

    sender: str
    target: str
    kind: str
    payload: bytes
    instance: str = ""
    sender_instance: str = ""


@attrs.frozen
class PropertyChanged:
    """
    One of C{handle}'s published properties (a phone number) changed;
    C{value} "" means removed.
    """

    handle: str
    key: str
    value: str


@attrs.frozen
class ReverseListChanged:
    """
    C{watcher} added C{owner} to their forward list (C{added}) or took them
    off it; C{version} is the owner's list version after the change.
    """

    owner: str
    watcher: str
    name: str
    added: bool
    version: int


@attrs.frozen
class PrivacyChanged:
    """
    C{owner} edited their allow or block list or their privacy mode.  Told
    to the federated handles the edit may concern (the contact edited; for
    a mode change, every federated reverse-list entry) whatever the
    owner's status, so that a front-end deciding a federated watcher's
    view by its own rule learns of edits that change no MSN watcher's.
    """

    owner: str


@attrs.frozen
class Ring:
    """
    C{caller} invites C{callee} into conversation C{session_id}, held at
    C{address}.
    """

    callee: str
    session_id: str
    address: str
    caller: str
    caller_name: str
    # The callee's point of presence not to ring (the caller's own).
    except_instance: str = ""


@attrs.frozen
class Kicked:
    """
    The endpoint must end: C{reason} is one of L{KICK_REASONS}.
    """

    reason: str


REPLACED = "replaced"  # the account signed in elsewhere
SHUTDOWN = "shutdown"  # the server is stopping
KICKED = "kicked"  # an operator ended the session
LOCKED = "locked"  # an operator locked the account
DELETED = "deleted"  # the account was deleted
KICK_REASONS = frozenset({REPLACED, SHUTDOWN, KICKED, LOCKED, DELETED})


@attrs.frozen
class MaintenanceNotice:
    """
    The operator warns that the service goes down for maintenance in
    C{minutes}.
    """

    minutes: int
    rendered: dict = _render_cache()


@attrs.frozen
class ListsChanged:
    """
    C{owner}'s lists were changed from outside their sessions (an operator
    deleted a contact's account): what the endpoint holds is stale.
    """

    owner: str


@attrs.frozen
class OfflineMessageArrived:
    """
    A message (an L{msnp.store.records.OfflineMessage}) was kept for
    C{owner}.
    """

    owner: str
    message: object


@attrs.frozen
class OfflineMessagesDeleted:
    """
    C{count} of C{owner}'s offline messages were read and deleted.
    """

    owner: str
    count: int
