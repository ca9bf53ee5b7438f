"""
A client for MSN servers (MSNP2-MSNP12): L{Client} signs in and keeps the
contact list, L{Conversation} is one switchboard session.  Reading what a
server sends is L{msnp.client.framing}; Passport logins are
L{msnp.client.passport}.
"""

from msnp.client.connection import ConnectionClosed, ServerError
from msnp.client.messenger import (
    AWAY,
    BE_RIGHT_BACK,
    BUSY,
    HIDDEN,
    IDLE,
    OFFLINE,
    ON_THE_PHONE,
    ONLINE,
    OUT_TO_LUNCH,
    Client,
    Contact,
    Conversation,
    Message,
    NotDelivered,
    SignInError,
    UnsupportedByDialect,
)

__all__ = [
    "AWAY", "BE_RIGHT_BACK", "BUSY", "HIDDEN", "IDLE", "OFFLINE", "ON_THE_PHONE", "ONLINE", "OUT_TO_LUNCH",
    "Client", "Contact", "Conversation", "Message", "NotDelivered", "SignInError", "UnsupportedByDialect",
    "ConnectionClosed", "ServerError",
]
