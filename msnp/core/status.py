"""
The presence states every front-end maps its own names onto.

MSN's NLN/BSY/…, RVP's online/busy/… and SIP's PIDF/RPID activities all
describe the same handful of states; the core speaks only these.
"""

from __future__ import annotations

from typing import Optional

ONLINE = "online"
BUSY = "busy"
IDLE = "idle"
BE_RIGHT_BACK = "be-right-back"
AWAY = "away"
ON_THE_PHONE = "on-the-phone"
OUT_TO_LUNCH = "out-to-lunch"
# Signed in but shown to nobody as online.
HIDDEN = "appear-offline"

SHOWN = frozenset({ONLINE, BUSY, IDLE, BE_RIGHT_BACK, AWAY, ON_THE_PHONE, OUT_TO_LUNCH})
SETTABLE = SHOWN | {HIDDEN}


def is_shown(status: Optional[str]) -> bool:
    """
    Whether a status shows its user online to anyone (not before the first
    status is set, not while hidden, not offline).
    """
    return status in SHOWN
