"""
Presence: each signed-in user's status and what travels with it, published
through the directory, and the fan-out of every change to the watchers the
privacy rule lets see it.

Fan-out walks the user's reverse list in memory and hands one event to the
directory for all the watchers; nothing on this path touches the store.
"""

from __future__ import annotations

from typing import Iterable, Optional

import attrs
from twisted.internet.defer import Deferred

from msnp.core import events, status as statuses
from msnp.core.privacy import PrivacyView, allowed_among, allows
from msnp.store.records import UserState


@attrs.frozen
class PresenceRecord:
    """
    What others may read of a signed-in user, wherever they are: the
    status, how it is shown, whether invitations are welcome, and the
    privacy rule to decide who may see any of it.
    """

    handle: str
    endpoint_id: str
    status: Optional[str]
    name: str
    client_caps: int = 0
    msn_object: str = ""
    personal_message: bytes = b""
    accepts_invitations: bool = True
    privacy: PrivacyView = PrivacyView()
    client_caps_ex: int = 0

    def visible_to(self, watcher: str) -> bool:
        return statuses.is_shown(self.status) and self.privacy.allows(watcher)

    def reachable_by(self, caller: str) -> bool:
        """
        Whether C{caller} may invite this user into a conversation.
        """
        return self.accepts_invitations and self.visible_to(caller)


class SignedInUser:
    """
    One signed-in endpoint's user: the lists loaded at login (kept current
    by every edit) and the presence it shows.
    """

    __slots__ = (
        "user",
        "endpoint_id",
        "status",
        "client_caps",
        "client_caps_ex",
        "msn_object",
        "personal_message",
        "accepts_invitations",
        "_privacy",
        "instance",
        "endpoint_details",
        "status_order",
    )

    def __init__(self, user: UserState, endpoint_id: str):
        self.user = user
        self.endpoint_id = endpoint_id
        self.status: Optional[str] = None
        self.client_caps = 0
        self.client_caps_ex = 0
        self.msn_object = ""
        self.personal_message = b""
        self.accepts_invitations = True
        self._privacy: Optional[PrivacyView] = None
        # The endpoint's point-of-presence instance (MSNP16+ machine GUID)
        # and what its front-end says of it (opaque here).
        self.instance = ""
        self.endpoint_details: dict = {}
        # When the status last changed, in the order of the user's endpoints'
        # changes (L{msnp.core.shared_presence}).
        self.status_order = 0

    @property
    def handle(self) -> str:
        return self.user.handle

    @property
    def name(self) -> str:
        return self.user.friendly_name

    @property
    def shown(self) -> bool:
        return statuses.is_shown(self.status)

    def privacy(self) -> PrivacyView:
        view = self._privacy
        if view is None:
            view = self._privacy = PrivacyView.of(self.user)
        return view

    def privacy_edited(self) -> None:
        self._privacy = None

    def allows(self, watcher: str) -> bool:
        return allows(self.user, watcher)

    def record(self) -> PresenceRecord:
        return PresenceRecord(
            self.handle,
            self.endpoint_id,
            self.status,
            self.name,
            self.client_caps,
            self.msn_object,
            self.personal_message,
            self.accepts_invitations,
            self.privacy(),
            self.client_caps_ex,
        )


class Presence:
    """
    The presence service: every change to what a user shows goes through
    here, is published, and reaches the watchers allowed to see it.
    """

    def __init__(self, directory):
        self._directory = directory

    def _publish(self, me: SignedInUser) -> None:
        if me.status is not None:
            self._directory.publish_presence(me.record())

    def _watchers(self, me: SignedInUser, among: Optional[Iterable[str]] = None) -> list[str]:
        user = me.user
        return allowed_among(user, user.lists["RL"] if among is None else among, besides=me.handle)

    def _announce(self, me: SignedInUser, status: Optional[str], details_only: bool = False) -> None:
        watchers = self._watchers(me)
        if watchers:
            event = events.PresenceChanged(
                me.handle, status, me.name, me.client_caps, me.msn_object, details_only, client_caps_ex=me.client_caps_ex
            )
            self._directory.deliver(watchers, event)

    def set_status(self, me: SignedInUser, status: str, client_caps: int = 0, msn_object: str = "", client_caps_ex: int = 0) -> bool:
        """
        Show C{status} (one of L{statuses.SETTABLE}) with the client's
        capabilities and MSN object; tells the watchers what changed.
        True when this was the first status since signing in.
        """
        first = me.status is None
        previous = me.status
        details_changed = (client_caps, msn_object, client_caps_ex) != (me.client_caps, me.msn_object, me.client_caps_ex)
        me.status = status
        me.client_caps, me.msn_object, me.client_caps_ex = client_caps, msn_object, client_caps_ex
        self._publish(me)
        was_shown, shown = statuses.is_shown(previous), statuses.is_shown(status)
        if (status != previous or details_changed) and (shown or was_shown):
            self._announce(me, status if shown else None, details_only=status == previous)
        if me.personal_message and shown and not was_shown:
            # A personal message set while offline or hidden follows.
            self._announce_personal_message(me)
        return first

    def visible_contacts(self, me: SignedInUser, contacts: Iterable[str]) -> Deferred:
        """
        A Deferred firing with the presence records of those of
        C{contacts} shown online to C{me}, in C{contacts}' order.
        """
        contacts = list(contacts)

        def visible(found: dict):
            own = me.handle
            return [found[c] for c in contacts if c in found and found[c].visible_to(own)]

        return self._directory.presence_of(contacts).addCallback(visible)

    def signed_out(self, me: SignedInUser) -> None:
        if me.shown:
            self._announce(me, None)
        me.status = None
        self._directory.withdraw_presence(me.handle, me.endpoint_id)

    def endpoint_left(self, me: SignedInUser, remaining: SignedInUser) -> None:
        """
        One of several points of presence of a user signed out; the user
        is shown as C{remaining} shows them, and watchers hear of the
        difference only.
        """
        before = (me.status, me.client_caps, me.msn_object)
        me.status = None
        self._directory.withdraw_presence(me.handle, me.endpoint_id)
        self._publish(remaining)
        after = (remaining.status, remaining.client_caps, remaining.msn_object)
        if after != before and (remaining.shown or statuses.is_shown(before[0])):
            self._announce(remaining, remaining.status if remaining.shown else None)

    def set_personal_message(self, me: SignedInUser, payload: bytes) -> None:
        me.personal_message = payload
        self._publish(me)
        if me.shown:
            self._announce_personal_message(me)

    def _announce_personal_message(self, me: SignedInUser) -> None:
        watchers = self._watchers(me)
        if watchers:
            self._directory.deliver(watchers, events.PersonalMessageChanged(me.handle, me.personal_message))

    def set_accepts_invitations(self, me: SignedInUser, accepts: bool) -> None:
        me.accepts_invitations = accepts
        self._publish(me)

    def name_changed(self, me: SignedInUser) -> None:
        self._publish(me)
        if me.shown:
            self._announce(me, me.status)

    def property_changed(self, me: SignedInUser, key: str, value: str) -> None:
        watchers = self._watchers(me)
        if watchers:
            self._directory.deliver(watchers, events.PropertyChanged(me.handle, key, value))

    def visibility(self, me: SignedInUser, watchers: Iterable[str]) -> dict[str, bool]:
        """
        Whether each of C{watchers} may see C{me} now: taken before a
        privacy change so that only changed views are sent afterwards.
        """
        return {handle: allows(me.user, handle) for handle in watchers}

    def privacy_changed(self, me: SignedInUser, seen_before: dict[str, bool]) -> None:
        """
        After an allow, block or mode change, show or hide C{me} from the
        watchers whose view changed (C{seen_before}: the view before).
        """
        me.privacy_edited()
        self._publish(me)
        if not me.shown:
            return
        reverse = me.user.lists["RL"]
        shown_to, hidden_from = [], []
        for watcher, was_visible in seen_before.items():
            if watcher not in reverse or watcher == me.handle:
                continue
            visible = allows(me.user, watcher)
            if visible != was_visible:
                (shown_to if visible else hidden_from).append(watcher)
        if shown_to:
            self._directory.deliver(
                shown_to,
                events.PresenceChanged(me.handle, me.status, me.name, me.client_caps, me.msn_object, client_caps_ex=me.client_caps_ex),
            )
        if hidden_from:
            self._directory.deliver(hidden_from, events.PresenceChanged(me.handle, None, me.name))
