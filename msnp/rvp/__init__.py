"""
The RVP front-end (Exchange 2000 Instant Messaging): HTTP/1.1 with GENA and
WebDAV methods and XML bodies, for RVP clients and federating RVP servers.
See protocol-notes/rvp.md.
"""
