"""
MSNP13-MSNP18 as data: which commands each dialect has, the shape of its
presence and switchboard lines, the CHL/QRY product keys of WLM 8.x and
2009 with the reference's vectors, and the single sign-on proof (MBI)
with its test vector and properties.
"""

import base64

import pytest
from hypothesis import given, strategies as st

from msnp.msn import challenge, dialects, errors, sso

D = dialects.ALL_DIALECTS


@pytest.mark.parametrize(
    "text, product_id, answer",
    [
        ("22210219642164014968", "PROD0119GSJUC$18", "a400af809ac86fbdf6deec7286fc06b8"),
        ("22210219642164014968", "PROD0120PW!CCV9@", "6e92a312bf6b70ee58e75a1e3315695c"),
        ("15570131571988941333", "PROD0119GSJUC$18", "521fdf1c2586c53b01b2b2653dc9085f"),
        ("15570131571988941333", "PROD0120PW!CCV9@", "9cb1df88322e338f23c67780a2ff14e1"),
        ("22210219642164014968", "PROD0114ES4Z%Q5W", "e790b908276bb51115fa7eb3c8a36315"),
    ],
)
def test_wlm_challenge_vectors(text, product_id, answer):
    """
    The QRY answers of WLM 8.5, WLM 2009 and papyon match the vectors, and
    every MSNP13+ dialect accepts them (and no MSNP12 one does).
    """
    for version in range(13, 19):
        products = challenge.products_for(version)
        assert challenge.expected_answer(True, text, product_id, products) == answer
        assert challenge.answer_is_right(True, text, product_id, answer.encode(), products)
    assert not challenge.answer_is_right(True, text, product_id, answer.encode(), challenge.products_for(12))


def test_msnp12_products_not_accepted_from_13():
    text = "22210219642164014968"
    answer = challenge.msnp11_answer(text, "PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T").encode()
    assert challenge.answer_is_right(True, text, "PROD0101{0RM?UBW", answer, challenge.products_for(12))
    assert not challenge.answer_is_right(True, text, "PROD0101{0RM?UBW", answer, challenge.products_for(13))


SECRET = base64.b64decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX")
NONCE = "E4Fhehbe0q2Je+SUSp7IRnJV+rN4uME75ljIpUjIZ1Si+DgmrfuiIL+AFmkMA6Wv"
BLOB = (
    "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAABAgMEBQYHUu3h6QkO/DckKaEB1aoBAjGzC5qF3PYftYaspoVlBVynrlGoeq8n6PRETbNn"
    "ERu5DhkkKEbokJXHAXZeeNJ2Fa+/jq+IxuejMYmZ1l3V2mN3lAL+EU3v+yr7FVs="
)


def test_mbi_vector():
    """
    The reference's MBI vector: both derived keys, and the whole blob for
    the pinned IV; the server's check accepts it.
    """
    assert sso.derive_key(SECRET, b"WS-SecureConversationSESSION KEY HASH").hex() == (
        "06af2ac1f46df3fde6e65fef60a13bd21eabb69f09a542c0"
    )
    assert sso.derive_key(SECRET, b"WS-SecureConversationSESSION KEY ENCRYPTION").hex() == (
        "2dd0114b936beb17cc1d7fa10191010bb4b7b487404c43e3"
    )
    assert sso.mbi_blob(SECRET, NONCE, bytes(range(8))) == BLOB
    assert BLOB.startswith("HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAA") and len(BLOB) == 172
    assert sso.verify_mbi(SECRET, NONCE, BLOB)


def test_mbi_refused_for_other_secret_or_nonce():
    assert not sso.verify_mbi(bytes(24), NONCE, BLOB)
    assert not sso.verify_mbi(SECRET, NONCE[::-1], BLOB)
    assert not sso.verify_mbi(SECRET, NONCE[:-1], BLOB)


@given(st.binary(min_size=24, max_size=24), st.binary(min_size=8, max_size=8))
def test_mbi_round_trip(secret, iv):
    """
    Any secret, any IV: the blob a client makes is accepted for that
    secret and nonce only.
    """
    nonce = sso.new_nonce()
    blob = sso.mbi_blob(secret, nonce, iv)
    assert sso.verify_mbi(secret, nonce, blob)
    other = bytes([secret[0] ^ 1]) + secret[1:]
    assert not sso.verify_mbi(other, nonce, blob)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_mbi_check_never_raises(text):
    """
    Whatever a client sends as the blob, the check answers False (or True
    only for the real answer), never raises.
    """
    assert sso.verify_mbi(SECRET, NONCE, text) in (False, text == BLOB)


def test_nonce_shape():
    nonce = sso.new_nonce()
    assert len(nonce) == 64 and base64.b64decode(nonce)


@pytest.mark.parametrize(
    "text, guid",
    [
        ("{A80DD24A-1B2C-4D5E-8F90-112233445566}", "A80DD24A-1B2C-4D5E-8F90-112233445566"),
        ("1be99e6d-1b2c-4d5e-8f90-112233445566", "1be99e6d-1b2c-4d5e-8f90-112233445566"),
        ("{not-a-guid}", None),
        ("A80DD24A1B2C4D5E8F90112233445566", None),
    ],
)
def test_machine_guid(text, guid):
    assert sso.machine_guid(text) == guid


def test_commands_by_dialect():
    """
    SYN, LST, ADC, REM and the group commands end with MSNP12; ADL, RML
    and UUN arrive at 13, FQY and UUM at 14; the client's GCF goes.
    """
    for name in ("SYN", "ADC", "REM", "ADG", "RMG", "REG", "GTC", "GCF", "SBP"):
        assert D[12].has_command(name) and not D[13].has_command(name), name
    for name in ("ADL", "RML", "UUN"):
        assert not D[12].has_command(name) and D[13].has_command(name), name
    for name in ("FQY", "UUM"):
        assert not D[13].has_command(name) and D[14].has_command(name), name
    for name in ("BLP", "PRP", "CHG", "UUX", "URL", "XFR", "PNG", "OUT", "QRY"):
        assert D[18].has_command(name), name
    assert D[13].answer_when_absent("SYN") == errors.COMMAND_DISABLED
    assert D[13].answer_when_absent("GTC") == dialects.CLOSE
    assert D[13].answer_when_absent("GCF") == dialects.CLOSE
    assert D[13].answer_when_absent("ADC") == dialects.UNKNOWN
    assert {"ADL", "RML", "FQY", "UUN", "UUM"} <= dialects.NS_PAYLOAD_COMMANDS


def test_login_package_by_dialect():
    assert [D[v].auth_package for v in (7, 8, 12, 13, 14, 15, 18)] == ["MD5", "TWN", "TWN", "TWN", "TWN", "SSO", "SSO"]
    assert not D[15].requires_machine_guid and D[16].requires_machine_guid


@pytest.mark.parametrize(
    "version, iln, nln, fln",
    [
        (13, b"ILN 5 NLN bob@example.com Bob 12\r\n", b"NLN NLN bob@example.com Bob 12\r\n", b"FLN bob@example.com\r\n"),
        (14, b"ILN 5 NLN bob@example.com 1 Bob 12\r\n", b"NLN NLN bob@example.com 1 Bob 12\r\n", b"FLN bob@example.com 1 0\r\n"),
        (15, b"ILN 5 NLN bob@example.com 1 Bob 12\r\n", b"NLN NLN bob@example.com 1 Bob 12\r\n", b"FLN bob@example.com 1 0\r\n"),
        (
            16,
            b"ILN 5 NLN bob@example.com 1 Bob 12:48\r\n",
            b"NLN NLN bob@example.com 1 Bob 12:48\r\n",
            b"FLN bob@example.com 1 0:0\r\n",
        ),
        (18, b"NLN NLN 1:bob@example.com Bob 12:48\r\n", b"NLN NLN 1:bob@example.com Bob 12:48\r\n", b"FLN 1:bob@example.com 0:0\r\n"),
    ],
)
def test_presence_lines(version, iln, nln, fln):
    """
    ILN/NLN/FLN per dialect: the network id after the handle at 14-17,
    caps:capsex from 16, C{1:handle} and NLN for the initial presence at 18.
    """
    dialect = D[version]
    assert dialect.iln(5, "NLN", "bob@example.com", "Bob", 12, "", 48) == iln
    assert dialect.nln("NLN", "bob@example.com", "Bob", 12, "", 48) == nln
    assert dialect.fln("bob@example.com") == fln


def test_presence_lines_with_msn_object():
    assert D[18].nln("BSY", "bob@example.com", "Bob", 1, "%3Cmsnobj%2F%3E", 2) == (
        b"NLN BSY 1:bob@example.com Bob 1:2 %3Cmsnobj%2F%3E\r\n"
    )


@pytest.mark.parametrize(
    "version, line",
    [(12, b"UBX bob@example.com 7\r\n"), (13, b"UBX bob@example.com 7\r\n"), (14, b"UBX bob@example.com 1 7\r\n"), (18, b"UBX 1:bob@example.com 7\r\n")],
)
def test_ubx_lines(version, line):
    assert D[version].ubx("bob@example.com", b"<Data/>") == line + b"<Data/>"


def test_switchboard_lines():
    assert D[12].xfr_sb(3, "h:1865", "c") == b"XFR 3 SB h:1865 CKI c\r\n"
    assert D[13].xfr_sb(3, "h:1865", "c") == b"XFR 3 SB h:1865 CKI c U messenger.msn.com\r\n"
    assert D[14].xfr_sb(3, "h:1865", "c") == b"XFR 3 SB h:1865 CKI c U messenger.msn.com 1\r\n"
    assert D[12].rng("9", "h:1865", "c", "a@x.com", "A") == b"RNG 9 h:1865 CKI c a@x.com A\r\n"
    assert D[18].rng("9", "h:1865", "c", "a@x.com", "A") == b"RNG 9 h:1865 CKI c a@x.com A U messenger.hotmail.com 1\r\n"
    assert D[18].joi("a@x.com", "A", 5, 6) == b"JOI a@x.com A 5:6\r\n"


def test_profile_message_mpop():
    assert b"MPOPEnabled: 0" in dialects.profile_message(D[15], 0)
    assert b"MPOPEnabled: 1" in dialects.profile_message(D[18], 0)
    assert b"MPOPEnabled" not in dialects.profile_message(D[12], 0)


def test_chg_reply_echoes_the_clients_zero_msn_object():
    """
    From MSNP13 the CHG reply echoes what the client sent, its C{0} for
    no MSN object included; before MSNP13 a 0 object was never sent.
    """
    assert D[18].chg(9, "NLN", 1, "", ("1:2", "0"), 2) == b"CHG 9 NLN 1:2 0\r\n"
    assert D[15].chg(9, "NLN", 1, "", ("1", "0")) == b"CHG 9 NLN 1 0\r\n"
    assert D[18].chg(9, "NLN", 1, "", ("1:2",), 2) == b"CHG 9 NLN 1:2\r\n"
    assert D[18].chg(9, "NLN", 1, "%3Cmsnobj%2F%3E", ("1:2", "%3Cmsnobj%2F%3E"), 2) == b"CHG 9 NLN 1:2 %3Cmsnobj%2F%3E\r\n"
