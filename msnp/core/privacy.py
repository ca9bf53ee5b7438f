"""
Who may see whom: the one privacy rule, for a user's live lists and for
the view of them that travels with their presence.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

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
