"""
Who is online where: the interface every directory provides and the
in-process directory that is the default.
"""
