"""
The messenger core as one object: the services every front-end calls, over
one store and one directory.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from msnp.core import events
from msnp.core.conversations import Conversations
from msnp.core.endpoints import EndpointIds
from msnp.core.lists import ContactLists
from msnp.core.presence import Presence, SignedInUser


class Messenger:
    """
    C{presence}, C{lists} and C{conversations} are the services; signing in
    and out, and ending sessions, are here.
    """

    def __init__(self, store, directory, clock, list_limits: dict, max_groups: int):
        self.store = store
        self.directory = directory
        self.clock = clock
        self.presence = Presence(directory)
        self.lists = ContactLists(store, directory, self.presence, list_limits, max_groups)
        self.conversations = Conversations(directory, clock)
        self.endpoint_ids = EndpointIds(directory.node)

    def sign_in(self, endpoint, user) -> Deferred:
        """
        Make C{endpoint} (an L{IEndpoint} that can describe itself with
        C{endpoint_record(handle, since)}) the user's endpoint; fires with the
        L{SignedInUser}.
        """
        record = endpoint.endpoint_record(user.handle, self.clock.seconds())
        me = SignedInUser(user, record.endpoint_id)
        return self.directory.attach(endpoint, record).addCallback(lambda replaced: me)

    def sign_out(self, me: SignedInUser) -> None:
        self.presence.signed_out(me)
        self.directory.detach(me.endpoint_id)

    def lock(self, handle: str) -> Deferred:
        """
        Lock an account (committed first: its logins are refused from now
        on) and end its endpoints; fires with how many there were.
        """
        return self.store.set_locked(handle, True).addCallback(lambda _: self.kick(handle, events.LOCKED))

    def unlock(self, handle: str) -> Deferred:
        """
        Let a locked account log in again; fires with 0 (no endpoint ends).
        """
        return self.store.set_locked(handle, False).addCallback(lambda _: 0)

    def delete_account(self, handle: str) -> Deferred:
        """
        Delete an account (committed first), end its endpoints, and tell
        every user who had it on a list that their lists changed.  Fires
        with the number of endpoints ended.
        """

        def deleted(versions: dict):
            ended = self.kick(handle, events.DELETED)
            for owner in versions:
                self.directory.deliver([owner], events.ListsChanged(owner))
            return ended

        return self.store.delete_account(handle).addCallback(deleted)

    def kick(self, handle: str, reason: str = events.KICKED) -> Deferred:
        """
        End every endpoint of C{handle}; fires with how many there were.
        """
        d = self.directory.endpoints_of(handle)

        def found(records):
            for record in records:
                self.directory.deliver_to(record.endpoint_id, events.Kicked(reason))
            return len(records)

        return d.addCallback(found)
