"""
One published presence per user when several of its endpoints are signed
in to this process at once (an MSN client and an RVP client of the same
account, say), so that watchers on every front-end see one state.

The rule (protocol-notes/rvp.md, "One presence per user"):

* the state set last by any endpoint is the user's (a user who goes busy
  on one client is busy);
* idle, which clients set by themselves after a while without input, is
  shown only when every endpoint is idle: a user active on one client is
  not idle because another one is;
* when an endpoint signs out, the others decide again: watchers see the
  state of the endpoint now published (or nothing, if it shows the same),
  never FLN while another endpoint is online.

With one endpoint per user (the usual case) L{Presence} does everything as
before; only users with several take the paths here.
"""

from __future__ import annotations

import itertools
from typing import Optional

from msnp.core import status as statuses
from msnp.core.presence import Presence, SignedInUser


def _shown_as(me: SignedInUser) -> tuple:
    # What a watcher's client shows of a user: its status and client details.
    return (me.status, me.client_caps, me.msn_object, getattr(me, "client_caps_ex", 0))


class OnePresencePerUser(Presence):
    """
    L{Presence} that publishes, and tells watchers, one endpoint's state
    per user: the one the rule above chooses among the user's endpoints
    that have set a status here.
    """

    def __init__(self, directory):
        super().__init__(directory)
        # handle → the endpoints that have set a status, in that order (a
        # tuple: one small object for the usual single endpoint); each keeps
        # when its status last changed in its status_order.
        self._endpoints: dict[str, tuple[SignedInUser, ...]] = {}
        self._order = itertools.count()
        self._quiet = False

    def published_endpoint(self, handle: str) -> Optional[SignedInUser]:
        """
        The endpoint whose state C{handle} shows: the last to set its status,
        passing over idle ones while another is not idle.
        """
        chosen = None
        for me in self._endpoints.get(handle, ()):
            if me.status is None:
                continue  # signed out (or not yet in)
            rank = (me.status != statuses.IDLE, me.status_order)
            if chosen is None or rank > chosen[0]:
                chosen = (rank, me)
        return chosen[1] if chosen is not None else None

    def _face(self, me: SignedInUser) -> SignedInUser:
        if len(self._endpoints.get(me.handle, ())) < 2:
            return me
        return self.published_endpoint(me.handle) or me

    # What Presence does with one endpoint, kept for users with several.

    def _publish(self, me: SignedInUser) -> None:
        if not self._quiet:
            super()._publish(self._face(me))

    def _announce(self, me: SignedInUser, status, details_only: bool = False) -> None:
        if not self._quiet:
            super()._announce(me, status, details_only)

    def _announce_personal_message(self, me: SignedInUser) -> None:
        if not self._quiet:
            super()._announce_personal_message(self._face(me))

    def set_status(self, me: SignedInUser, status: str, *args, **kwargs) -> bool:
        held = self._endpoints.get(me.handle, ())
        known = any(other is me for other in held)
        when = next(self._order) if not known or status != me.status else me.status_order
        if not known:
            self._endpoints[me.handle] = (*held, me)
        others = any(other is not me and other.status is not None for other in held)
        if not others:
            me.status_order = when
            return super().set_status(me, status, *args, **kwargs)
        # Before this change counts: me still shows its previous state
        # (None when it had none, so it is passed over).
        before = self.published_endpoint(me.handle)
        seen_before = _shown_as(before) if before is not None else (None,)
        me.status_order = when
        self._quiet = True
        try:
            first = super().set_status(me, status, *args, **kwargs)
        finally:
            self._quiet = False
        self._show(me.handle, seen_before)
        return first

    def signed_out(self, me: SignedInUser) -> None:
        if any(other is not me and other.status is not None for other in self._endpoints.get(me.handle, ())):
            return self._leave(me)
        self._forget(me)
        super().signed_out(me)

    def endpoint_left(self, me: SignedInUser, remaining: SignedInUser) -> None:
        # The rule, not the order of signing in, says who is shown now.
        self._leave(me)

    def _leave(self, me: SignedInUser) -> None:
        """
        One of the user's endpoints signs out while others stay signed in:
        watchers see the state of the one now published, FLN only when none
        shows a status.
        """
        before = self.published_endpoint(me.handle)
        seen_before = _shown_as(before) if before is not None else (None,)
        self._forget(me)
        now = self.published_endpoint(me.handle)
        if now is None and statuses.is_shown(seen_before[0]):
            super()._announce(before, None)
        me.status = None
        self._directory.withdraw_presence(me.handle, me.endpoint_id)
        if now is not None:
            self._show(me.handle, seen_before)

    def _forget(self, me: SignedInUser) -> None:
        rest = tuple(other for other in self._endpoints.get(me.handle, ()) if other is not me)
        if rest:
            self._endpoints[me.handle] = rest
        else:
            self._endpoints.pop(me.handle, None)

    def name_changed(self, me: SignedInUser) -> None:
        super().name_changed(self._face(me))

    def privacy_changed(self, me: SignedInUser, seen_before: dict[str, bool]) -> None:
        # A user's endpoints share their lists: the published one shows the
        # new rule, with its own state.
        me.privacy_edited()
        super().privacy_changed(self._face(me), seen_before)

    def _show(self, handle: str, seen_before: tuple) -> None:
        """
        Publish the endpoint the rule now chooses and tell the watchers if
        what they see changed from C{seen_before}.
        """
        now = self.published_endpoint(handle)
        if now is None:
            return
        super()._publish(now)
        was_shown, shown = statuses.is_shown(seen_before[0]), now.shown
        if _shown_as(now) != seen_before and (shown or was_shown):
            super()._announce(now, now.status if shown else None, details_only=now.status == seen_before[0])
        if now.personal_message and shown and not was_shown:
            super()._announce_personal_message(now)
