"""
The messenger core as one object: the services every front-end calls, over
one store and one directory.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from msnp.core import events
from msnp.core.conversations import Conversations
from msnp.core.endpoints import EndpointIds
from msnp.core.lists import ContactLists
from msnp.core.offline import OfflineMessages
from msnp.core.presence import SignedInUser
from msnp.core.shared_presence import OnePresencePerUser


class Messenger:
    """
    C{presence}, C{lists} and C{conversations} are the services; signing in
    and out, and ending sessions, are here.
    """

    def __init__(self, store, directory, clock, list_limits: dict, max_groups: int, offline_limits: tuple = (100, 256 * 1024, 8192)):
        self.store = store
        self.directory = directory
        self.clock = clock
        self.presence = OnePresencePerUser(directory)
        self.lists = ContactLists(store, directory, self.presence, list_limits, max_groups)
        self.conversations = Conversations(directory, clock)
        self.endpoint_ids = EndpointIds(directory.node)
        # handle -> the endpoints signed in here, in signing-in order (a
        # tuple: one small object per user for the usual single endpoint)
        self._signed_in: dict[str, tuple[SignedInUser, ...]] = {}
        # (messages, bytes of text) per recipient, bytes per message
        self.offline = OfflineMessages(store, directory, clock, self.service_user, *offline_limits)

    def sign_in(self, endpoint, user) -> Deferred:
        """
        Make C{endpoint} (an L{IEndpoint} that can describe itself with
        C{endpoint_record(handle, since)}) the user's endpoint; fires with the
        L{SignedInUser}.  Endpoints of one user in this process (points of
        presence) share one copy of the lists, so an edit through any of
        them is seen by all.
        """
        record = endpoint.endpoint_record(user.handle, self.clock.seconds())

        def attached(replaced):
            live = tuple(other for other in self._signed_in.get(user.handle, ()) if other.endpoint_id != record.endpoint_id)
            shared = live[0].user if live else user
            me = SignedInUser(shared, record.endpoint_id)
            me.instance = record.instance
            self._signed_in[user.handle] = (*live, me)
            return me

        return self.directory.attach(endpoint, record).addCallback(attached)

    def sign_out(self, me: SignedInUser) -> None:
        held = tuple(other for other in self._signed_in.get(me.handle, ()) if other is not me)
        if held:
            self._signed_in[me.handle] = held
            # Another point of presence stays: the user is shown as it is.
            self.presence.endpoint_left(me, self._presence_holder(held))
        else:
            self._signed_in.pop(me.handle, None)
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

    def signed_in(self, handle: str) -> list[SignedInUser]:
        """
        The user's endpoints signed in through this process.
        """
        return list(self._signed_in.get(handle, ()))

    def service_user(self, handle: str) -> Deferred:
        """
        The user for a request from outside a session (a web service):
        the lists of their endpoints here when signed in, so that an edit
        reaches those endpoints at once; else loaded from the store, not
        signed in.  Fires with None for an unknown account.
        """
        live = self.signed_in(handle)
        if live:
            return succeed(live[0])
        return self.store.load_user(handle).addCallback(lambda user: None if user is None else SignedInUser(user, ""))

    @staticmethod
    def _presence_holder(held: tuple) -> SignedInUser:
        # The endpoint whose status the user shows: the latest one shown.
        shown = [me for me in held if me.shown]
        return (shown or held)[-1]

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
