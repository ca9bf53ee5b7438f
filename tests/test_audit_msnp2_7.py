"""
MSNP2-MSNP7 lines checked against the reference where an earlier build
answered a bad parameter with the wrong code.
"""

import pytest
import pytest_twisted

from ns_steps import sign_in, sign_out

ALICE = "alice@example.com"


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_rem_malformed_handle(server, dialect):
    """
    REM of something that is not a handle is 201 (malformed), not 216 (not
    on the list); a well-formed handle that is not listed stays 216.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("REM 5 FL bob")
    yield alice.expect_line("201 5")
    alice.send("REM 6 AL bob@")
    yield alice.expect_line("201 6")
    alice.send("REM 7 BL bob@example.com")
    yield alice.expect_line("216 7")
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_chg_details_before_msnp8_are_ignored(server, dialect):
    """
    CHG carries only the state until MSNP7; a client that adds capabilities
    anyway gets its line echoed and the state set, the extra ignored.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("CHG 5 NLN 268435500")
    yield alice.expect_line("CHG 5 NLN 268435500")
    alice.send("CHG 6 BSY")
    yield alice.expect_line("CHG 6 BSY")
    yield sign_out(alice)

