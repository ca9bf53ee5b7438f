"""
Contact lists as a service: every edit of the forward, allow and block
lists, groups and privacy settings goes through L{ContactLists}.

An edit is validated against the user's lists in memory, committed to the
store, applied in memory, confirmed to the caller (who answers its client),
and only then told to whoever else it concerns: the contact's reverse list,
and the watchers whose view of the user the privacy rule now decides
differently.  Refusals are L{msnp.core.errors} exceptions.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
from twisted.internet.defer import Deferred, fail

from msnp.core import errors, events
from msnp.core.presence import Presence, SignedInUser
from msnp.store.records import UnknownAccount

FORWARD, ALLOW, BLOCK, REVERSE = "FL", "AL", "BL", "RL"
EDITABLE = (FORWARD, ALLOW, BLOCK)
_OPPOSITE = {ALLOW: BLOCK, BLOCK: ALLOW}
PRIVACY_SETTINGS = ("blp", "gtc")


@attrs.frozen
class ListEdit:
    """
    A committed edit: the owner's list version after it, and for a group
    created, its number.
    """

    version: int
    group_id: Optional[int] = None


Confirm = Callable[[ListEdit], None]


def _nothing(edit: ListEdit) -> None:
    pass


class ContactLists:
    """
    C{federated_domains}: domains whose users live on federated servers
    (SIP or RVP peers).  Their handles may be listed without an account
    here; putting one on or taking one off a forward list is told to that
    handle (a L{events.ReverseListChanged} with version 0), so the
    front-end that federates with its domain can subscribe or
    unsubscribe.  Front-ends add their peers' domains when they start.
    """

    def __init__(self, store, directory, presence: Presence, list_limits: dict, max_groups: int, federated_domains=()):
        self._store = store
        self._directory = directory
        self._presence = presence
        self._limits = list_limits
        self.max_groups = max_groups
        self.federated_domains: set[str] = set(federated_domains)

    def is_federated(self, handle: str) -> bool:
        return handle.rpartition("@")[2].lower() in self.federated_domains

    # Contacts

    def add(
        self, me: SignedInUser, lst: str, contact: str, name: str, group_id: Optional[int] = None, confirm: Confirm = _nothing
    ) -> Deferred:
        """
        Put C{contact} on C{lst} (in group C{group_id} for the forward list).
        """
        user = me.user
        try:
            if lst not in EDITABLE:
                raise errors.MessengerError(f"{lst} is not editable")
            if contact in user.lists[lst]:
                raise errors.AlreadyListed(f"{contact} is on {lst}")
            opposite = _OPPOSITE.get(lst)
            if opposite and contact in user.lists[opposite]:
                raise errors.InOppositeList(f"{contact} is on {opposite}")
            if len(user.lists[lst]) >= self._limits[lst]:
                raise errors.ListFull(f"{lst} is full")
            if group_id is not None and group_id not in user.groups:
                raise errors.NoSuchGroup(str(group_id))
        except errors.MessengerError:
            return fail()
        federated = self.is_federated(contact)
        d = self._store.add_to_list(user.handle, lst, contact, name, group_id, federated=federated)

        def stored(change):
            seen_before = self._presence.visibility(me, [contact]) if lst != FORWARD else {}
            user.lists[lst][contact] = name
            if group_id is not None:
                user.memberships.setdefault(contact, set()).add(group_id)
            edit = self._bump(me, change.version)
            confirm(edit)
            if lst == FORWARD:
                reverse_version = change.reverse_version
                if reverse_version is None and federated:
                    reverse_version = 0
                if reverse_version is not None:
                    self._directory.deliver(
                        [contact], events.ReverseListChanged(contact, user.handle, user.friendly_name, True, reverse_version)
                    )
            else:
                self._presence.privacy_changed(me, seen_before)
                self._tell_federated(me, [contact])
            return edit

        return d.addCallbacks(stored, _unknown_account)

    def remove(self, me: SignedInUser, lst: str, contact: str, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        if lst not in EDITABLE or contact not in user.lists[lst]:
            return fail(errors.NotListed(f"{contact} is not on {lst}"))
        d = self._store.remove_from_list(user.handle, lst, contact)

        def removed(change):
            seen_before = self._presence.visibility(me, [contact]) if lst != FORWARD else {}
            del user.lists[lst][contact]
            if lst == FORWARD:
                user.memberships.pop(contact, None)
            edit = self._bump(me, change.version)
            confirm(edit)
            if lst == FORWARD:
                self._reverse_dropped(me, contact, change.reverse_version)
            else:
                self._presence.privacy_changed(me, seen_before)
                self._tell_federated(me, [contact])
            return edit

        return d.addCallback(removed)

    def _tell_federated(self, me: SignedInUser, handles) -> None:
        """
        A privacy edit, told to the federated C{handles} among those it
        may concern: their front-end applies its own consent rule besides
        the MSN one, and presence events are only sent while the user is
        shown and only when the MSN view changed.
        """
        federated = [handle for handle in handles if self.is_federated(handle)]
        if federated:
            self._directory.deliver(federated, events.PrivacyChanged(me.handle))

    def _reverse_dropped(self, me: SignedInUser, contact: str, reverse_version: Optional[int]) -> None:
        if reverse_version is None and self.is_federated(contact):
            reverse_version = 0
        if reverse_version is not None:
            self._directory.deliver([contact], events.ReverseListChanged(contact, me.handle, "", False, reverse_version))

    def add_to_group(self, me: SignedInUser, contact: str, group_id: int, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        if contact not in user.lists[FORWARD]:
            return fail(errors.NotListed(f"{contact} is not on FL"))
        if group_id not in user.groups:
            return fail(errors.NoSuchGroup(str(group_id)))
        if group_id in user.memberships.get(contact, set()):
            return fail(errors.AlreadyListed(f"{contact} is in group {group_id}"))
        d = self._store.add_to_group(user.handle, contact, group_id)

        def stored(version):
            user.memberships.setdefault(contact, set()).add(group_id)
            return self._confirmed(me, version, confirm)

        return d.addCallback(stored)

    def remove_from_group(self, me: SignedInUser, contact: str, group_id: int, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        if contact not in user.lists[FORWARD]:
            return fail(errors.NotListed(f"{contact} is not on FL"))
        if group_id not in user.groups:
            return fail(errors.NoSuchGroup(str(group_id)))
        if group_id not in user.memberships.get(contact, set()):
            return fail(errors.NotInGroup(f"{contact} is not in group {group_id}"))
        d = self._store.remove_from_group(user.handle, contact, group_id)

        def stored(version):
            user.memberships[contact].discard(group_id)
            return self._confirmed(me, version, confirm)

        return d.addCallback(stored)

    def rename_contact(self, me: SignedInUser, contact: str, name: str, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        if not any(contact in user.lists[lst] for lst in EDITABLE):
            return fail(errors.NotListed(f"{contact} is on no list"))
        d = self._store.rename_contact(user.handle, contact, name)

        def stored(version):
            for lst in EDITABLE:
                if contact in user.lists[lst]:
                    user.lists[lst][contact] = name
            return self._confirmed(me, version, confirm)

        return d.addCallback(stored)

    def federated_watcher_added(self, owner: str, watcher: str, name: str) -> Deferred:
        """
        C{watcher}, of a federated domain, asked to see C{owner}: they go
        on the owner's reverse list (committed, then told to the owner's
        endpoints as if they had added the owner).  The owner need not be
        signed in.  Fires once stored.
        """
        if not self.is_federated(watcher):
            return fail(errors.NoSuchUser(f"{watcher} is not of a federated domain"))
        d = self._store.add_federated_watcher(owner, watcher, name)

        def stored(version):
            if version is not None:
                self._directory.deliver([owner], events.ReverseListChanged(owner, watcher, name, True, version))

        return d.addCallbacks(stored, _unknown_account)

    def apply_reverse_change(self, me: SignedInUser, event: events.ReverseListChanged) -> None:
        """
        Bring C{me}'s reverse list up to date with C{event} (idempotent: each
        of a user's endpoints may apply it).
        """
        reverse = me.user.lists[REVERSE]
        if event.added:
            reverse[event.watcher] = event.name
        else:
            reverse.pop(event.watcher, None)
        me.user.version = max(me.user.version, event.version)

    # The user's own settings

    def set_friendly_name(self, me: SignedInUser, name: str, confirm: Confirm = _nothing) -> Deferred:
        d = self._store.set_friendly_name(me.handle, name)

        def stored(version):
            me.user.friendly_name = name
            edit = self._confirmed(me, version, confirm)
            self._presence.name_changed(me)
            return edit

        return d.addCallback(stored)

    def set_privacy(self, me: SignedInUser, setting: str, value: str, confirm: Confirm = _nothing) -> Deferred:
        """
        C{setting} "blp" (who may see me unless listed: "AL" or "BL") or
        "gtc" (ask me when someone adds me: "A" or "N").
        """
        user = me.user
        if setting not in PRIVACY_SETTINGS:
            return fail(errors.MessengerError(f"no setting {setting}"))
        if getattr(user, setting) == value:
            return fail(errors.AlreadyInMode(f"{setting} is {value} already"))
        d = self._store.set_privacy(user.handle, setting, value)

        def stored(version):
            seen_before = self._presence.visibility(me, user.lists[REVERSE]) if setting == "blp" else {}
            setattr(user, setting, value)
            edit = self._confirmed(me, version, confirm)
            if setting == "blp":
                self._presence.privacy_changed(me, seen_before)
                self._tell_federated(me, user.lists[REVERSE])
            return edit

        return d.addCallback(stored)

    def set_property(self, me: SignedInUser, key: str, value: str, confirm: Confirm = _nothing) -> Deferred:
        """
        A published property (phone numbers); C{value} "" removes it.
        """
        user = me.user
        d = self._store.set_property(user.handle, key, value)

        def stored(version):
            if value:
                user.properties[key] = value
            else:
                user.properties.pop(key, None)
            edit = self._confirmed(me, version, confirm)
            self._presence.property_changed(me, key, value)
            return edit

        return d.addCallback(stored)

    # Groups

    def add_group(self, me: SignedInUser, name: str, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        free = [g for g in range(self.max_groups) if g not in user.groups]
        if not free:
            return fail(errors.TooManyGroups(f"{self.max_groups} groups"))
        group_id = free[0]
        d = self._store.add_group(user.handle, group_id, name)

        def stored(version):
            user.groups[group_id] = name
            edit = ListEdit(self._bump(me, version).version, group_id)
            confirm(edit)
            return edit

        return d.addCallback(stored)

    def rename_group(self, me: SignedInUser, group_id: int, name: str, confirm: Confirm = _nothing) -> Deferred:
        user = me.user
        if group_id not in user.groups:
            return fail(errors.NoSuchGroup(str(group_id)))
        d = self._store.rename_group(user.handle, group_id, name)

        def stored(version):
            user.groups[group_id] = name
            return self._confirmed(me, version, confirm)

        return d.addCallback(stored)

    def remove_group(self, me: SignedInUser, group_id: int, confirm: Confirm = _nothing) -> Deferred:
        """
        Remove a group; contacts that were only in it leave the forward list.
        """
        user = me.user
        if group_id == 0:
            return fail(errors.CannotRemoveGroupZero("group 0"))
        if group_id not in user.groups:
            return fail(errors.NoSuchGroup(str(group_id)))
        only_here = [c for c, groups in user.memberships.items() if groups == {group_id}]
        d = self._store.remove_group(user.handle, group_id, only_here)

        def stored(removal):
            del user.groups[group_id]
            for groups in user.memberships.values():
                groups.discard(group_id)
            for contact in only_here:
                user.lists[FORWARD].pop(contact, None)
                user.memberships.pop(contact, None)
            edit = self._confirmed(me, removal.version, confirm)
            dropped = dict(removal.dropped)
            for contact in only_here:
                if contact in dropped or self.is_federated(contact):
                    self._reverse_dropped(me, contact, dropped.get(contact))
            return edit

        return d.addCallback(stored)

    # Helpers

    def _bump(self, me: SignedInUser, version: int) -> ListEdit:
        me.user.version = max(me.user.version, version)
        return ListEdit(me.user.version)

    def _confirmed(self, me: SignedInUser, version: int, confirm: Confirm) -> ListEdit:
        edit = self._bump(me, version)
        confirm(edit)
        return edit


def _unknown_account(failure):
    failure.trap(UnknownAccount)
    raise errors.NoSuchUser(str(failure.value))
