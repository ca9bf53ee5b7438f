"""
msnp: an MSN Messenger service (MSNP2-MSNP18) on Twisted.
"""

__version__ = "0.1.0"
