"""
A client for MSN servers (MSNP2-MSNP18): L{Client} signs in and keeps the
contact list, L{Conversation} is one switchboard session.  What a server
sends is read with the project's framer and server-line rules
(L{msnp.msn.framing}, L{msnp.msn.wire.parse_server_line}); Passport logins
are L{msnp.client.passport}.
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
    WLM_DIALECTS,
)

__all__ = [
    "AWAY", "BE_RIGHT_BACK", "BUSY", "HIDDEN", "IDLE", "OFFLINE", "ON_THE_PHONE", "ONLINE", "OUT_TO_LUNCH",
    "WLM_DIALECTS", "Client", "Contact", "Conversation", "Message", "NotDelivered", "SignInError", "UnsupportedByDialect",
    "ConnectionClosed", "ServerError",
]
