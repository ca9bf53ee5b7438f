"""
The MSN Messenger front-end: the MSNP wire format and dialects, and the
dispatch, notification, switchboard and Passport servers.
"""
