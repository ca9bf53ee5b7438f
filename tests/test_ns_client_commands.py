"""
Commands the official clients send during normal use that need no state of
their own: GCF Shields.xml (MSNP11-12), SDC (MSNP5+), PAG (MSNP5-8), PGD
(MSNP9+), the pending list (MSNP10+), and CVR, URL and OUT after an MSNP12
login.  Each is answered where its dialect has it and where it does not,
and a payload is always read whole: the command after it is answered.
"""

import xml.etree.ElementTree as ElementTree

import pytest
import pytest_twisted

from msnclient import connect
from ns_steps import sign_in, sign_out
from twn import pp_server, twn_login  # noqa: F401 (fixture)

ALICE = "alice@example.com"

# Looks like commands; must be read as payload bytes, never as lines.
DECOY = b"OUT\r\nSYN 99 0\r\n"


def sdc_line(trid: int) -> str:
    return f"SDC {trid} friend@example.net 0x0409 MSMSGS MSMSGS X X Alice%20A."


@pytest.mark.parametrize("dialect", ["MSNP11", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_gcf_shields(pp_server, dialect):
    """
    GCF t Shields.xml is 715 before SYN; after it, the answer carries the
    file name and a payload: a shields configuration with empty shield and
    block elements.  Any other file is 201.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", dialect)
    alice.send("GCF 5 Shields.xml")
    yield alice.expect_line("715 5")
    alice.send("SYN 6 0 0")
    yield alice.expect(r"SYN 6 \d+ \d+ 0 0")
    alice.send("PNG")
    while (yield alice.next()).name != "QNG":
        pass
    alice.send("GCF 7 Shields.xml")
    reply = yield alice.next()
    assert reply.text == f"GCF 7 Shields.xml {len(reply.payload)}"
    config = ElementTree.fromstring(reply.payload)
    assert config.tag == "config"
    assert [child.tag for child in config] == ["shield", "block"]
    assert all(len(child) == 0 for child in config)
    alice.send("GCF 8 Other.xml")
    yield alice.expect_line("201 8")
    alice.send("GCF 9")
    yield alice.expect_line("201 9")
    alice.send("PNG")
    yield alice.expect(r"QNG \d+")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_gcf_before_msnp11_closes(pp_server):
    """
    MSNP10 (MSN 6.2) has no GCF: the server hangs up, as the original did.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", "MSNP10")
    alice.send("GCF 5 Shields.xml")
    rest = yield alice.expect_close()
    assert rest == []


@pytest.mark.parametrize("dialect", ["MSNP2", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_gcf_in_md5_dialects_closes(server, dialect):
    """
    Neither do MSNP2-7.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send("GCF 5 Shields.xml")
    rest = yield alice.expect_close()
    assert rest == []


@pytest.mark.parametrize("dialect", ["MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_sdc_is_disabled(server, dialect):
    """
    SDC (MSNP5+) with invitation text is 502 (no mail relay), with an empty
    payload too; the text is read whole, so the PNG after it is answered.
    A malformed SDC is 503 and a close.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send_payload(sdc_line(5), b"Come and chat!\r\n" + DECOY)
    alice.send("PNG")
    yield alice.expect_line("502 5")
    yield alice.expect_line("QNG")
    alice.send(f"{sdc_line(6)} 0")
    alice.send("PNG")
    yield alice.expect_line("502 6")
    yield alice.expect_line("QNG")
    alice.send_payload("SDC 7 friend@example.net", DECOY)
    yield alice.expect_line("503 7")
    rest = yield alice.expect_close()
    assert rest == []


@pytest_twisted.inlineCallbacks
def test_sdc_in_msnp12(pp_server):
    """
    MSN 7.5 (MSNP12) gets the same 502.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", "MSNP12")
    alice.send_payload(sdc_line(5), DECOY)
    alice.send("PNG")
    yield alice.expect_line("502 5")
    yield alice.expect(r"QNG \d+")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_sdc_and_pag_before_msnp5_are_unknown(server):
    """
    MSNP4 has neither SDC nor PAG (200), but their payloads are still read
    whole.
    """
    alice = yield sign_in(server, ALICE, "MSNP4")
    alice.send_payload(sdc_line(5), DECOY)
    alice.send_payload("PAG 6 bob@example.com", DECOY)
    alice.send("PNG")
    yield alice.expect_line("200 5")
    yield alice.expect_line("200 6")
    yield alice.expect_line("QNG")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_payload_commands_before_login(server):
    """
    Before login SDC and PAG are 302 like any command that needs one, and
    their payloads are skipped.
    """
    client = yield connect(server.notification_port)
    client.send("VER 1 MSNP7")
    yield client.expect_line("VER 1 MSNP7")
    client.send_payload(sdc_line(2), DECOY)
    client.send_payload("PAG 3 bob@example.com", DECOY)
    client.send("PNG")
    yield client.expect_line("302 2")
    yield client.expect_line("302 3")
    yield client.expect_line("QNG")
    yield client.disconnect()


PAGE = b'<TEXT xml:space="preserve">Call me</TEXT>'


@pytest.mark.parametrize("dialect", ["MSNP5", "MSNP7"])
@pytest_twisted.inlineCallbacks
def test_pag_not_accepted(server, dialect):
    """
    PAG (MSNP5-8) is 220: with no mobile gateway nobody accepts pages; the
    page is read whole.  A malformed handle is 201.
    """
    alice = yield sign_in(server, ALICE, dialect)
    alice.send_payload("PAG 5 bob@example.com", PAGE + DECOY)
    alice.send("PNG")
    yield alice.expect_line("220 5")
    yield alice.expect_line("QNG")
    alice.send_payload("PAG 6 bob", PAGE)
    yield alice.expect_line("201 6")
    alice.send_payload("PAG 7 bob@example.com 1", PAGE)
    yield alice.expect_line("201 7")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_pag_in_msnp8_and_pgd_not_yet(pp_server):
    """
    MSN 5.0 (MSNP8) pages with PAG (220); PGD only arrives with MSNP9
    (200), its payload read all the same.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", "MSNP8")
    alice.send_payload("PAG 5 bob@example.com", PAGE)
    alice.send_payload("PGD 6 bob@example.com 1", DECOY)
    alice.send("PNG")
    yield alice.expect_line("220 5")
    yield alice.expect_line("200 6")
    yield alice.expect_line("QNG")
    yield sign_out(alice)


@pytest.mark.parametrize("dialect", ["MSNP9", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_pgd_not_accepted_and_pag_retired(pp_server, dialect):
    """
    MSNP9+: PAG is 715 (retired); PGD to a mobile device or a Web Watch is
    220; another numeric device type is 201, a non-numeric one a close.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", dialect)
    alice.send_payload("PAG 5 bob@example.com", PAGE + DECOY)
    alice.send_payload("PGD 6 bob@example.com 1", PAGE + DECOY)
    alice.send_payload("PGD 7 bob@example.com 2", PAGE)
    alice.send_payload("PGD 8 bob@example.com 3", PAGE)
    alice.send("PNG")
    yield alice.expect_line("715 5")
    yield alice.expect_line("220 6")
    yield alice.expect_line("220 7")
    yield alice.expect_line("201 8")
    yield alice.expect(r"QNG \d+")
    alice.send_payload("PGD 9 bob@example.com W", PAGE)
    rest = yield alice.expect_close()
    assert rest == []


@pytest.mark.parametrize("dialect", ["MSNP10", "MSNP12"])
@pytest_twisted.inlineCallbacks
def test_pending_list(pp_server, dialect):
    """
    MSNP10+ names the pending list PL: nobody is ever on it here, so REM PL
    of a handle is 216 (201 when malformed); adding to it closes.
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", dialect)
    alice.send("REM 5 PL bob@example.com")
    yield alice.expect_line("216 5")
    alice.send("REM 6 PL bob")
    yield alice.expect_line("201 6")
    alice.send("ADC 7 PL N=bob@example.com")
    rest = yield alice.expect_close()
    assert rest == []


@pytest_twisted.inlineCallbacks
def test_pending_list_unknown_before_msnp10(server):
    """
    Before MSNP10 PL is no list at all: 201.
    """
    alice = yield sign_in(server, ALICE, "MSNP7")
    alice.send("REM 5 PL bob@example.com")
    yield alice.expect_line("201 5")
    alice.send("ADD 6 PL bob@example.com Bob")
    yield alice.expect_line("201 6")
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_msnp12_session_commands(pp_server):
    """
    What MSN 7.5 sends after login besides lists and presence: CVR again
    (answered as before login), URL for its MSNP8+ services, and OUT
    (closed without an echo from MSNP8).
    """
    alice = yield twn_login(pp_server, ALICE, "pw-alice", "MSNP12")
    alice.send("CVR 5 0x0409 winnt 5.1 i386 MSNMSGR 7.5.0324 MSMSGS alice@example.com")
    yield alice.expect(r"CVR 5 7\.5\.0324 7\.5\.0324 7\.5\.0324 \S+ \S+")
    base = pp_server.config.web_base
    alice.send("URL 6 ADDRBOOK")
    yield alice.expect_line(f"URL 6 /addressbook {base} 2")
    alice.send("URL 7 PROFILE 0x0409")
    yield alice.expect_line(f"URL 7 /profile {base} 2")
    alice.send("OUT")
    rest = yield alice.expect_close()
    assert rest == []
