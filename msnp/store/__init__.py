"""
Durable accounts and contact lists: the records, the interface every store
provides, and the SQLite store that is the default.
"""
