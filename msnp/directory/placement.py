"""
Which notification node a login goes to: rendezvous (highest random
weight) hashing of the handle over the live nodes' names, with a load cap.

The hash makes the choice sticky (a user lands on the same node while it
lives, so an account signing in twice usually meets itself on one node)
and moves only a dead node's users when one goes; the cap (bounded-load
hashing) passes a login to the next node in the user's order when the
first already holds more than (1 + balance) times its share.

Which switchboard node an XFR SB goes to: the less loaded of two live
switchboard nodes drawn at random (the power of two choices), so that
loads as stale as a lease beat do not send every session of a beat to the
one node that was the least loaded at that beat.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Optional, Sequence

# How far above an even share a node may be loaded before logins move on.
DEFAULT_BALANCE = 0.25


def rendezvous_order(handle: str, names: Sequence[str]) -> list[str]:
    """
    C{names} in the order C{handle} prefers them: highest score first,
    the score being the first 8 bytes of SHA-1 over "name|handle".
    """

    def score(name: str) -> tuple[int, str]:
        digest = hashlib.sha1(f"{name}|{handle}".encode()).digest()
        return int.from_bytes(digest[:8], "big"), name

    return sorted(names, key=score, reverse=True)


def choose_node(handle: str, nodes: Sequence[tuple[str, str, int]], balance: float = DEFAULT_BALANCE) -> Optional[tuple[str, str, int]]:
    """
    The node (id, address, load) for C{handle}'s login among C{nodes}: the
    first in its rendezvous order whose load is under the cap
    ceil((1 + balance) * (total load + 1) / number of nodes).  None when
    there is no node.
    """
    if not nodes:
        return None
    by_name = {node[0]: node for node in nodes}
    cap = math.ceil((1 + balance) * (sum(node[2] for node in nodes) + 1) / len(nodes))
    order = rendezvous_order(handle.lower(), list(by_name))
    for name in order:
        if by_name[name][2] < cap:
            return by_name[name]
    # Not reachable (the cap exceeds the least load), kept for safety.
    return by_name[order[0]]


def choose_switchboard(switchboards: Sequence[tuple[str, str, int]], rng: random.Random = random) -> Optional[tuple[str, str, int]]:
    """
    The switchboard node (id, address, participants) for a new session:
    of two drawn at random, the one with fewer participants.  None when
    there is none.
    """
    if not switchboards:
        return None
    if len(switchboards) == 1:
        return switchboards[0]
    first, second = rng.sample(list(switchboards), 2)
    return first if first[2] <= second[2] else second
