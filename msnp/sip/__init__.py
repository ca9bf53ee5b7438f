"""
The SIP/SIMPLE federation edge: a bytes-exact SIP codec, transactions,
dialogs, presence subscriptions and instant messages (RFC 3261, 3265/6665,
3856, 3863, 3428, 3994), and the bridge to the messenger's users.
"""
