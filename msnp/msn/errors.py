"""
How a handler refuses a command.
"""

from __future__ import annotations

from msnp.core import errors as core
from msnp.directory.interface import DirectoryUnavailable
from msnp.store.records import StoreError, StoreUnavailable


class CommandError(Exception):
    """
    Answer the command with error C{code} (C{NNN trid}); the connection
    stays open unless C{close} is set.
    """

    def __init__(self, code: int, reason: str = "", close: bool = False):
        super().__init__(reason or str(code))
        self.code = code
        self.reason = reason
        self.close = close


class CloseConnection(Exception):
    """
    Hang up without answering, the way the original servers treated
    commands that only a broken or hostile client sends.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Error numbers, named as the protocol reference names them.
SYNTAX_ERROR = 200
INVALID_PARAMETER = 201
INVALID_NETWORK = 204
INVALID_USER = 205
DOMAIN_MISSING = 206
ALREADY_LOGGED_IN = 207
INVALID_USERNAME = 208
FRIENDLY_NAME_NOT_ALLOWED = 209
LIST_FULL = 210
ALREADY_THERE = 215
NOT_ON_LIST = 216
USER_OFFLINE = 217
ALREADY_IN_MODE = 218
IN_OPPOSITE_LIST = 219
NOT_ACCEPTING_PAGES = 220
TOO_MANY_GROUPS = 223
INVALID_GROUP = 224
NOT_IN_GROUP = 225
GROUP_NAME_TOO_LONG = 229
CANNOT_REMOVE_GROUP_ZERO = 230
EMPTY_DOMAIN = 240
INVALID_XML = 241
SWITCHBOARD_FAILED = 280
MALFORMED_DATA_MESSAGE = 282
NOT_LOGGED_IN = 302
INTERNAL_ERROR = 500
COMMAND_DISABLED = 502
GENERIC_FAILURE = 503
CHALLENGE_FAILED = 540
SERVER_UNAVAILABLE = 601
DATABASE_CONNECT_FAILED = 603
SESSION_OVERLOAD = 712
CALLING_TOO_RAPIDLY = 713
NOT_EXPECTED = 715
BAD_CVR = 731
CHANGING_TOO_RAPIDLY = 800
AUTHENTICATION_FAILED = 911
NOT_ALLOWED_WHEN_OFFLINE = 913


def code_for(error: Exception) -> int:
    """
    The error number answering a refusal from the core or the store.
    """
    for kind, code in (
        (core.NoSuchUser, INVALID_USER),
        (core.AlreadyListed, ALREADY_THERE),
        (core.NotListed, NOT_ON_LIST),
        (core.InOppositeList, IN_OPPOSITE_LIST),
        (core.ListFull, LIST_FULL),
        (core.NoSuchGroup, INVALID_GROUP),
        (core.NotInGroup, NOT_IN_GROUP),
        (core.TooManyGroups, TOO_MANY_GROUPS),
        (core.CannotRemoveGroupZero, CANNOT_REMOVE_GROUP_ZERO),
        (core.AlreadyInMode, ALREADY_IN_MODE),
        (core.UserOffline, USER_OFFLINE),
        (StoreUnavailable, DATABASE_CONNECT_FAILED),
        (DirectoryUnavailable, SERVER_UNAVAILABLE),
        (StoreError, INTERNAL_ERROR),
    ):
        if isinstance(error, kind):
            return code
    return INTERNAL_ERROR
