"""
Steps shared by the notification-server transcripts: log a user in and
bring them online, expect a block of lines in order.  (The scripted client
answers MSNP6+ challenges on its own, as a real client does.)
"""

from __future__ import annotations

from twisted.internet import defer

from conftest import ACCOUNTS
from msnclient import login


@defer.inlineCallbacks
def expect_lines(client, lines):
    """
    The next lines must be exactly C{lines}, in this order.
    """
    for text in lines:
        yield client.expect_line(text)


@defer.inlineCallbacks
def sign_in(server, handle, dialect="MSNP7", status=None, trid=9):
    """
    Log C{handle} in with its fixture password; with C{status}, send the
    first C{CHG} and read its echo (any ILN lines stay unread).
    """
    password = ACCOUNTS[handle][0]
    client = yield login(server.notification_port, handle, password, dialect)
    if status is not None:
        client.send(f"CHG {trid} {status}")
        yield client.expect_line(f"CHG {trid} {status}")
    return client


@defer.inlineCallbacks
def sign_out(*clients):
    for client in clients:
        yield client.disconnect()
