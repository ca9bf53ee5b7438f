"""
A client for MSN servers (MSNP2-MSNP12): reading what a server sends
(L{msnp.client.framing}) and Passport logins (L{msnp.client.passport}).
"""
