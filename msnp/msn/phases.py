"""
Which command each role takes in which phase of a connection, as one table
per role, and the one place that answers a command sent out of phase.

A notification connection goes CONNECTED → NEGOTIATED (VER agreed) →
CHALLENGED (USR I answered) → CHECKING (credentials with the checker) →
LOGGED_IN (USR OK) → ONLINE (first CHG); a refused login closes it.  The
open CHL challenge of MSNP6+ is a sub-state of ONLINE held by the session.
The dispatch server stops at NEGOTIATED: its USR is answered with a
referral.  A switchboard connection goes CONNECTED → ADMITTING (cookie being
checked) → IN_CONVERSATION.
"""

from __future__ import annotations

import enum
from typing import Optional

from msnp.msn import errors
from msnp.msn.errors import CloseConnection, CommandError


class Phase(enum.Enum):
    CONNECTED = "connected"
    NEGOTIATED = "version agreed"
    CHALLENGED = "authenticating"
    CHECKING = "checking credentials"
    LOGGED_IN = "logged in"
    ONLINE = "online"
    ADMITTING = "admitting"
    IN_CONVERSATION = "in a conversation"


_AFTER_VER = frozenset({Phase.NEGOTIATED, Phase.CHALLENGED, Phase.CHECKING, Phase.LOGGED_IN, Phase.ONLINE})
_BEFORE_LOGIN = frozenset({Phase.NEGOTIATED, Phase.CHALLENGED})
_AFTER_LOGIN = frozenset({Phase.LOGGED_IN, Phase.ONLINE})

# Notification server: commands not named here are legal once logged in.
NOTIFICATION = {
    "VER": frozenset({Phase.CONNECTED}),
    "INF": _AFTER_VER,
    "CVR": _AFTER_VER,
    "USR": _BEFORE_LOGIN,
    "PNG": _AFTER_VER,
    "OUT": _AFTER_VER,
}
DISPATCH = {
    "VER": frozenset({Phase.CONNECTED}),
    "INF": _AFTER_VER,
    "CVR": _AFTER_VER,
    "USR": _BEFORE_LOGIN,
    "PNG": _AFTER_VER,
    "OUT": _AFTER_VER,
}
SWITCHBOARD = {
    "USR": frozenset({Phase.CONNECTED}),
    "ANS": frozenset({Phase.CONNECTED}),
    "CAL": frozenset({Phase.IN_CONVERSATION}),
    "MSG": frozenset({Phase.IN_CONVERSATION}),
    "OUT": frozenset(Phase),
}


def legal_phases(table: dict, name: str, default: frozenset = _AFTER_LOGIN) -> frozenset:
    return table.get(name, default)


def refuse_out_of_phase(role: str, name: str, phase: Phase, is_role_command: bool) -> None:
    """
    Raise the answer to command C{name} sent in C{phase}, where it is not
    legal.  C{is_role_command}: the command belongs to this role at all (in
    the agreed dialect, once there is one).
    """
    if role == "switchboard":
        if name in ("USR", "ANS"):
            raise CommandError(errors.ALREADY_LOGGED_IN)
        if name in ("CAL", "MSG"):
            raise CommandError(errors.NOT_LOGGED_IN)
        raise CommandError(errors.SYNTAX_ERROR)
    if phase is Phase.CONNECTED:
        # Before VER a real client only ever sends VER.
        if is_role_command:
            raise CloseConnection(f"{name} before VER")
        raise CommandError(errors.SYNTAX_ERROR)
    if name == "VER":
        raise CommandError(errors.NOT_EXPECTED, "second VER", close=True)
    if name == "USR":
        if phase is Phase.CHECKING:
            raise CommandError(errors.NOT_EXPECTED)
        raise CommandError(errors.ALREADY_LOGGED_IN)
    raise CommandError(errors.NOT_LOGGED_IN)


def check(role: str, table: dict, name: str, phase: Phase, is_role_command: bool = True, default: Optional[frozenset] = None) -> None:
    """
    Pass when C{name} is legal in C{phase}; raise its answer otherwise.
    """
    legal = table.get(name, _AFTER_LOGIN if default is None else default)
    if phase not in legal:
        refuse_out_of_phase(role, name, phase, is_role_command)
