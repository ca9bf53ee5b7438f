"""
The one interface between the SIP edge and the messenger's users.

L{IMessengerLink} is what the edge asks of the messenger (accounts,
privacy, presence, delivery to local users); L{ISipFederation} is what the
messenger asks of the edge (tell SIP watchers, watch SIP contacts, deliver
to SIP users).  The edge knows nothing else of the messenger, so it can be
tested with a recording fake and wired to the core in one place
(L{msnp.sip.bridge}).
"""

from __future__ import annotations

from typing import Optional

import attrs
from zope.interface import Interface

# How a local user's privacy treats a federated watcher.
ALLOWED = "allowed"  # may see presence
FILTERED = "filtered"  # not yet authorised by the user (OCS: "presence filtered")
BLOCKED = "blocked"  # on the user's block list


@attrs.frozen
class PresenceView:
    """
    What a watcher may know of a local user: C{access} (ALLOWED,
    FILTERED, BLOCKED) and, when allowed, the MSN state (None: offline or
    hidden).
    """

    access: str
    status: Optional[str] = None


@attrs.frozen
class Text:
    """
    An instant message, as text.
    """

    text: str


@attrs.frozen
class Typing:
    """
    The sender is typing.
    """


@attrs.frozen
class Left:
    """
    The sender closed the conversation.
    """


class DeliveryFailed(Exception):
    """
    A message that could not be delivered; C{status} is the SIP status
    that says why (404 no such user, 480 not reachable, 403 refused, 408
    no answer...).
    """

    def __init__(self, status: int, reason: str = ""):
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason


class IMessengerLink(Interface):
    """
    What the SIP edge needs from the messenger.  Handles are canonical
    C{user@domain}; federated users are named by their address of record.
    """

    def account_exists(handle):
        """
        Deferred: whether C{handle} is a local account.
        """

    def presence_for(owner, watcher):
        """
        Deferred L{PresenceView}: what federated C{watcher} may see of
        local user C{owner}.
        """

    def display_name(handle):
        """
        Deferred: local user C{handle}'s friendly name ("" if none), shown
        to federated users as the display name of what they receive from
        them.
        """

    def watcher_subscribed(owner, watcher, name):
        """
        Federated C{watcher} subscribed to C{owner}'s presence: put them on
        the owner's reverse list (with the usual notice) if not there yet.
        Deferred, fired once stored.
        """

    def contact_presence(owner, contact, status):
        """
        Federated C{contact}'s presence as C{owner}'s subscription sees it
        (an MSN state, or None for offline).
        """

    def deliver(sender, recipient, event):
        """
        Deliver L{Text}, L{Typing} or L{Left} from federated C{sender} to
        local C{recipient}.  Deferred: fires once delivered, fails with
        L{DeliveryFailed} otherwise.
        """


class ISipFederation(Interface):
    """
    What the messenger asks of the SIP edge.
    """

    def is_federated(handle):
        """
        Whether C{handle} belongs to a configured SIP peer domain.
        """

    def presence_changed(owner):
        """
        Local user C{owner}'s presence or privacy changed: tell (or drop)
        every SIP watcher.
        """

    def watch(owner, contact):
        """
        Subscribe to federated C{contact}'s presence on behalf of local
        user C{owner} (kept up until L{unwatch}).
        """

    def unwatch(owner, contact):
        """
        Stop watching C{contact} for C{owner}.
        """

    def send(sender, recipient, event):
        """
        Deliver L{Text}, L{Typing} or L{Left} from local C{sender} to
        federated C{recipient}.  Deferred: fires once the peer accepted it,
        fails with L{DeliveryFailed} otherwise.
        """
