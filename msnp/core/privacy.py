"""
Who may see whom: the one privacy rule, for a user's live lists and for
the snapshot of them that travels with their presence.
"""

from __future__ import annotations

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
    A copy of an owner's allow and block lists and mode, for deciding the
    same rule where the owner's lists are not loaded.
    """

    mode: str = ALLOW_ALL
    allowed: frozenset = frozenset()
    blocked: frozenset = frozenset()

    @classmethod
    def of(cls, owner: UserState) -> "PrivacyView":
        return cls(owner.blp, frozenset(owner.lists["AL"]), frozenset(owner.lists["BL"]))

    def allows(self, watcher: str) -> bool:
        if watcher in self.blocked:
            return False
        if watcher in self.allowed:
            return True
        return self.mode == ALLOW_ALL
