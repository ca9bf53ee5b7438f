"""
msnp: an MSN Messenger service (MSNP2-MSNP12) on Twisted.
"""

__version__ = "0.1.0"
