"""
Who may see whom: the privacy rules, as pure functions.
"""

from __future__ import annotations

from typing import Optional

from msnp.store.records import UserState

ONLINE_STATES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN"})
SETTABLE_STATES = ONLINE_STATES | {"HDN"}


def allows(owner: UserState, watcher: str) -> bool:
    """
    Whether C{owner}'s rules let C{watcher} see their presence and invite
    them: BL hides, AL shows, otherwise BLP decides.
    """
    if watcher in owner.lists["BL"]:
        return False
    if watcher in owner.lists["AL"]:
        return True
    return owner.blp == "AL"


def shows_online(status: Optional[str]) -> bool:
    """
    Whether a status is shown to anyone at all (not before the first CHG,
    not while hidden).
    """
    return status in ONLINE_STATES
