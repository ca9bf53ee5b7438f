"""
Who may see whom: the one privacy rule, for a user's live lists and for
the view of them that travels with their presence.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from typing import Iterable

import attrs

from msnp.store.records import UserState

# The privacy mode (BLP) values: everyone not blocked may see me, or only
# those I allowed.
ALLOW_ALL = "AL"
BLOCK_ALL = "BL"


def allows(owner: UserState, watcher: str) -> bool:
    """
    Whether C{owner}'s rules let C{watcher} see their presence and invite
    them: the block list hides, the allow list shows, otherwise the mode
    decides.
    """
    if watcher in owner.lists["BL"]:
        return False
    if watcher in owner.lists["AL"]:
        return True
    return owner.blp == ALLOW_ALL


def allowed_among(owner: UserState, watchers: Iterable[str], besides: str = "") -> list[str]:
    """
    Those of C{watchers} (other than C{besides}) that L{allows} lets see
    C{owner}: the same rule, once per fan-out instead of once per watcher.
    """
    blocked, allowed = owner.lists["BL"], owner.lists["AL"]
    if owner.blp == ALLOW_ALL:
        return [w for w in watchers if w != besides and w not in blocked]
    return [w for w in watchers if w != besides and w not in blocked and w in allowed]


@attrs.frozen
class PrivacyView:
    """
    An owner's allow and block lists and mode, for deciding the same rule
    where the owner's lists are not loaded.  Made from a signed-in user, the
    lists are read-only views of the user's own (a copy per online user was
    a sixth of an idle connection's memory); they change with the lists, and
    the view is made again when the mode changes.  Across processes they
    travel as sets.
    """

    mode: str = ALLOW_ALL
    allowed: AbstractSet[str] = frozenset()
    blocked: AbstractSet[str] = frozenset()

    @classmethod
    def of(cls, owner: UserState) -> "PrivacyView":
        return cls(owner.blp, owner.lists["AL"].keys(), owner.lists["BL"].keys())

    def allows(self, watcher: str) -> bool:
        if watcher in self.blocked:
            return False
        if watcher in self.allowed:
            return True
        return self.mode == ALLOW_ALL
