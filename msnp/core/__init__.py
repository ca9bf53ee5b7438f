"""
The protocol-neutral messenger: accounts, contact lists, presence and
privacy, conversations.  Nothing here knows a wire format or a socket.
"""
