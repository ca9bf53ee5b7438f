"""
The phase tables: which command each role takes in which phase, and the
one answer to a command out of phase, checked for every pair.
"""

import pytest

from msnp.msn import errors, phases
from msnp.msn.errors import CloseConnection, CommandError
from msnp.msn.phases import Phase

NS_PHASES = [Phase.CONNECTED, Phase.NEGOTIATED, Phase.CHALLENGED, Phase.CHECKING, Phase.LOGGED_IN, Phase.ONLINE]


def answer(role, table, name, phase, known=True):
    """
    None when legal; otherwise the error number, or "close".
    """
    try:
        phases.check(role, table, name, phase, known)
    except CommandError as error:
        return error.code
    except CloseConnection:
        return "close"
    return None


# command -> answer in each of NS_PHASES
NOTIFICATION_EXPECTED = {
    "VER": [None, errors.NOT_EXPECTED, errors.NOT_EXPECTED, errors.NOT_EXPECTED, errors.NOT_EXPECTED, errors.NOT_EXPECTED],
    "CVR": ["close", None, None, None, None, None],
    "USR": ["close", None, None, errors.NOT_EXPECTED, errors.ALREADY_LOGGED_IN, errors.ALREADY_LOGGED_IN],
    "PNG": ["close", None, None, None, None, None],
    "SYN": ["close", errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, None, None],
    "CHG": ["close", errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, None, None],
    "XFR": ["close", errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, None, None],
}


@pytest.mark.parametrize("name", sorted(NOTIFICATION_EXPECTED))
def test_notification_table(name):
    got = [answer("notification", phases.NOTIFICATION, name, phase) for phase in NS_PHASES]
    assert got == NOTIFICATION_EXPECTED[name]


def test_unknown_command_before_ver_is_a_syntax_error():
    """
    Before VER a command no role knows is answered 200; one of the
    notification server's own hangs up.
    """
    assert answer("notification", phases.NOTIFICATION, "ZZZ", Phase.CONNECTED, known=False) == errors.SYNTAX_ERROR
    assert answer("notification", phases.NOTIFICATION, "SYN", Phase.CONNECTED, known=True) == "close"


def test_dispatch_has_no_logged_in_phase():
    """
    The dispatch server takes the pre-login commands only; everything else
    of the dialect is answered as from a client not logged in.
    """
    for phase in (Phase.NEGOTIATED, Phase.CHALLENGED):
        assert answer("dispatch", phases.DISPATCH, "USR", phase) is None
        assert answer("dispatch", phases.DISPATCH, "SYN", phase) == errors.NOT_LOGGED_IN


SB_PHASES = [Phase.CONNECTED, Phase.ADMITTING, Phase.IN_CONVERSATION]
SWITCHBOARD_EXPECTED = {
    "USR": [None, errors.ALREADY_LOGGED_IN, errors.ALREADY_LOGGED_IN],
    "ANS": [None, errors.ALREADY_LOGGED_IN, errors.ALREADY_LOGGED_IN],
    "CAL": [errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, None],
    "MSG": [errors.NOT_LOGGED_IN, errors.NOT_LOGGED_IN, None],
    "OUT": [None, None, None],
    "SYN": [errors.SYNTAX_ERROR] * 3,
}


@pytest.mark.parametrize("name", sorted(SWITCHBOARD_EXPECTED))
def test_switchboard_table(name):
    got = [answer("switchboard", phases.SWITCHBOARD, name, phase) for phase in SB_PHASES]
    assert got == SWITCHBOARD_EXPECTED[name]
