"""
The one place the operator's interface reaches live sessions: who is
online, and ending, locking and deleting accounts with their sessions.

Everything else in L{msnp.control} asks L{LiveSessions}, whose answers are
Deferreds of plain values.  It reads the directory's endpoint records and
published presence, and acts through the core's L{Messenger}, so it works
the same whichever front-end or node a session lives on.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.logger import Logger

from msnp.core import events
from msnp.msn.protocol import connections_of
from msnp.store.records import NoSuchAccount, canonical_handle

log = Logger()

# Why the operator ended a session, as the log names it.
KICKED = "kicked"
PASSWORD_CHANGED = "password changed"

# The role an endpoint of each protocol plays.
_ROLE_OF_PROTOCOL = {"msn": "notification"}


@attrs.frozen
class SessionView:
    """
    One signed-in client as the operator sees it.
    """

    handle: str
    name: str
    status: Optional[str]
    protocol: str
    dialect: str
    client_version: str
    address: str
    since: float
    role: str
    node: str


def _role(record) -> str:
    return _ROLE_OF_PROTOCOL.get(record.protocol, record.protocol)


class LiveSessions:
    """
    The live sessions of one L{msnp.service.MessengerService}.
    """

    def __init__(self, service):
        self._service = service

    @property
    def node(self) -> str:
        return self._directory.node

    @property
    def _directory(self):
        return self._service.directory

    @property
    def _messenger(self):
        return self._service.messenger

    @property
    def _store(self):
        return self._service.store

    @inlineCallbacks
    def online(self):
        """
        Every signed-in endpoint, as L{SessionView}s sorted by handle.
        """
        records = yield self._directory.all_endpoints()
        presence = yield self._directory.presence_of({record.handle for record in records})
        names = {handle: record.name for handle, record in presence.items()}
        # Who has set no status yet has published no presence: the name is
        # the stored one.
        missing = sorted({record.handle for record in records} - set(names))
        accounts = yield gatherResults([self._store.get_account(handle) for handle in missing])
        for handle, account in zip(missing, accounts):
            names[handle] = account.friendly_name if account is not None else ""
        views = [
            SessionView(
                handle=record.handle,
                name=names.get(record.handle, ""),
                status=presence[record.handle].status if record.handle in presence else None,
                protocol=record.protocol,
                dialect=record.dialect,
                client_version=record.client_version,
                address=record.address,
                since=record.since,
                role=_role(record),
                node=record.node,
            )
            for record in records
        ]
        return sorted(views, key=lambda view: (view.handle, view.since))

    @inlineCallbacks
    def counts(self):
        """
        Open connections per role of this node, signed-in endpoints per
        (role, dialect) and per status, and this node's switchboard
        conversations: a Deferred dict.
        """
        service = self._service
        connections = {
            role: len(connections_of(listener.factory))
            for role, listener in service.listeners.items()
            if role in ("dispatch", "notification", "switchboard")
        }
        records = yield self._directory.all_endpoints()
        presence = yield self._directory.presence_of({record.handle for record in records})
        sessions: dict[tuple[str, str], int] = {}
        statuses: dict[str, int] = {}
        for record in records:
            key = (_role(record), record.dialect)
            sessions[key] = sessions.get(key, 0) + 1
            published = presence.get(record.handle)
            status = published.status if published is not None and published.status else "no status yet"
            statuses[status] = statuses.get(status, 0) + 1
        conversations = service.switchboard.conversations.values()
        for conversation in conversations:
            for participant in conversation.participants.values():
                key = ("switchboard", participant.dialect.name)
                sessions[key] = sessions.get(key, 0) + 1
        return {"connections": connections, "sessions": sessions, "statuses": statuses, "conversations": len(conversations)}

    @inlineCallbacks
    def kick(self, handle: str, reason: str = KICKED):
        """
        End every session of C{handle}; fires with how many there were.
        L{NoSuchAccount} when there is no such account.
        """
        handle = canonical_handle(handle)
        account = yield self._store.get_account(handle)
        if account is None:
            raise NoSuchAccount(handle)
        log.info("ending the sessions of {handle}: {reason}", handle=handle, reason=reason)
        ended = yield self._messenger.kick(handle, events.KICKED)
        return ended

    def set_locked(self, handle: str, locked: bool) -> Deferred:
        """
        Lock (and end its sessions) or unlock an account; fires with the
        number of sessions ended.  L{NoSuchAccount} when there is none.
        """
        handle = canonical_handle(handle)
        d = self._messenger.lock(handle) if locked else self._messenger.unlock(handle)

        def done(ended):
            log.info("{handle} {what}", handle=handle, what="locked" if locked else "unlocked")
            return ended

        return d.addCallback(done)

    def delete_account(self, handle: str) -> Deferred:
        """
        Delete an account: committed, its sessions ended, and the online
        users who had it on their lists told.  Fires with the number of
        sessions ended.
        """
        handle = canonical_handle(handle)

        def done(ended):
            log.info("{handle} deleted", handle=handle)
            return ended

        return self._messenger.delete_account(handle).addCallback(done)

    @inlineCallbacks
    def broadcast(self, minutes: int):
        """
        Warn every signed-in client that the server goes down for
        maintenance in C{minutes}; fires with how many endpoints were told.
        """
        records = yield self._directory.all_endpoints()
        notice = events.MaintenanceNotice(minutes)
        for record in records:
            self._directory.deliver_to(record.endpoint_id, notice)
        log.info("maintenance notice ({minutes} min) sent to {told} sessions", minutes=minutes, told=len(records))
        return len(records)

    @inlineCallbacks
    def account(self, handle: str):
        """
        One account's stored lists and groups, and whether it is locked and
        online: a dict, or L{NoSuchAccount}.
        """
        handle = canonical_handle(handle)
        account = yield self._store.get_account(handle)
        user = (yield self._store.load_user(handle)) if account is not None else None
        if user is None:
            raise NoSuchAccount(handle)
        endpoints = yield self._directory.endpoints_of(handle)
        lists = {}
        for lst, entries in user.lists.items():
            lists[lst] = [
                {"handle": contact, "name": name, **({"groups": sorted(user.memberships.get(contact, ()))} if lst == "FL" else {})}
                for contact, name in entries.items()
            ]
        return {
            "handle": user.handle,
            "name": user.friendly_name,
            "locked": account.locked,
            "online": bool(endpoints),
            "list_version": user.version,
            "privacy": {"blp": user.blp, "gtc": user.gtc},
            "groups": [{"id": group_id, "name": name} for group_id, name in sorted(user.groups.items())],
            "lists": lists,
        }
