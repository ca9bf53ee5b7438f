"""
Why the core refuses a request.  Each front-end maps these onto its own
codes (MSNP error numbers, HTTP and SIP statuses).
"""

from __future__ import annotations


class MessengerError(Exception):
    """
    A request the core refuses; the message says why, for the log.
    """


class NoSuchUser(MessengerError):
    """The contact has no account here and is not of a federated domain."""


class AlreadyListed(MessengerError):
    """The contact is on that list (or in that group) already."""


class NotListed(MessengerError):
    """The contact is not on that list."""


class InOppositeList(MessengerError):
    """Allow and block lists exclude each other."""


class ListFull(MessengerError):
    """The list holds as many contacts as allowed."""


class NoSuchGroup(MessengerError):
    """The group does not exist."""


class NotInGroup(MessengerError):
    """The contact is not in that group."""


class TooManyGroups(MessengerError):
    """Every group number is taken."""


class CannotRemoveGroupZero(MessengerError):
    """Group 0 holds ungrouped contacts and stays."""


class AlreadyInMode(MessengerError):
    """The privacy setting already has that value."""


class UserOffline(MessengerError):
    """The user cannot be reached now (offline, hidden, or refusing)."""


class NotAccepted(MessengerError):
    """The recipient's privacy settings refuse messages from the sender."""


class MessageTooLarge(MessengerError):
    """The message is longer than a kept message may be."""


class MailboxFull(MessengerError):
    """The recipient holds as many offline messages as allowed."""
