"""
The shape of the server's reply to CHG in every dialect: the state alone
(or the client's own extra parameters echoed) until MSNP7; from MSNP8 the
state and the capabilities, 0 when the client gave none; from MSNP9 also
the MSN object when the client gave one.  A client library that counts the
reply's parameters (Twisted's MSNP8 client wants exactly three) rejects
any other shape.
"""

import pytest
import pytest_twisted

from msnclient import login
from msnp.msn.dialects import ALL_DIALECTS
from twn import pp_server, twn_login  # noqa: F401 (fixture)

CAPS = "268435500"
MSNOBJ = "%3Cmsnobj%20Creator%3D%22alice%40example.com%22%20Size%3D%2222%22%2F%3E"

# (what the client sends after the state, the reply's parameters after the
# state; None: 201) for each dialect group.
MD5_CASES = [("", ""), (f" {CAPS}", f" {CAPS}"), (f" {CAPS} {MSNOBJ}", f" {CAPS} {MSNOBJ}")]
MSNP8_CASES = [("", " 0"), (f" {CAPS}", f" {CAPS}"), (" 0", " 0"), (f" {CAPS} {MSNOBJ}", None)]
MSNP9_CASES = [("", " 0"), (f" {CAPS}", f" {CAPS}"), (f" 0 {MSNOBJ}", f" 0 {MSNOBJ}"), (f" {CAPS} {MSNOBJ}", f" {CAPS} {MSNOBJ}")]


def _cases():
    # MSNP13-18 (other logins, caps:capsex) are in test_msnp13_18_presence.py.
    for version in sorted(v for v in ALL_DIALECTS if v <= 12):
        table = MD5_CASES if version < 8 else MSNP8_CASES if version == 8 else MSNP9_CASES
        for sent, reply in table:
            yield pytest.param(f"MSNP{version}", sent, reply, id=f"MSNP{version}-{len(sent.split())}-params")


@pytest.mark.parametrize("dialect, sent, reply", list(_cases()))
@pytest_twisted.inlineCallbacks
def test_chg_reply_shape(pp_server, dialect, sent, reply):
    """
    The first CHG and a later one get the same reply shape.
    """
    if int(dialect[4:]) >= 8:
        client = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    else:
        client = yield login(pp_server.notification_port, "alice@example.com", "pw-alice", dialect)
    for trid, state in ((5, "NLN"), (6, "BSY")):
        client.send(f"CHG {trid} {state}{sent}")
        if reply is None:
            yield client.expect_line(f"201 {trid}")
        else:
            yield client.expect_line(f"CHG {trid} {state}{reply}")
    yield client.disconnect()


@pytest.mark.parametrize("dialect", ["MSNP8", "MSNP9", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_chg_reply_writes_capabilities_as_a_plain_number(pp_server, dialect):
    """
    Capabilities written with leading zeros are one number: the reply
    carries it in its plain decimal form, as ILN and NLN do.
    """
    client = yield twn_login(pp_server, "alice@example.com", "pw-alice", dialect)
    client.send("CHG 5 NLN 0042")
    yield client.expect_line("CHG 5 NLN 42")
    yield client.disconnect()
