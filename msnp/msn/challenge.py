"""
The CHL/QRY challenge the notification server sends from MSNP6 on, and
the answers the official clients compute.

MSNP6-MSNP10 answer with md5(challenge + product key); MSNP11 to MSNP18
use a keyed hash built on that md5 (see L{msnp11_answer}), each dialect
range with the product keys of its own clients.  The product
ids and keys are the ones the official clients shipped with.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from typing import Optional

# product id -> product key, for the plain md5 answer (MSNP6-MSNP10)
MD5_PRODUCTS = {
    "msmsgs@msnmsgr.com": "Q1P7W2E4J9R8U3S5",
    "PROD0038W!61ZTF9": "VT6PX?UQTM4WM%YR",
    "PROD0058#7IL2{QD": "QHDCY@7R1TB6W?5B",
    "PROD0061VRRZH@4F": "JXQ6J@TUOGYV@N0M",
    "PROD00504RLUG%WL": "I2EBK%PYNLZL5_J4",
    "PROD0076ENE8*@AW": "CEQJ8}OE0!WTSWII",
}

# product id -> product key, for the MSNP11-MSNP12 answer
MSNP11_PRODUCTS = {
    "PROD0090YUAUV{2B": "YMM8C_H7KCQ2S_KL",
    "PROD0101{0RM?UBW": "CFHUR$52U_{VIX5T",
}

# product id -> product key of Windows Live Messenger 8.x and 2009 and the
# third-party clients of that era (MSNP13-MSNP18), all with the MSNP11
# algorithm.  Any of them is accepted in any of those dialects: libpurple
# answers with its WLM 8.5 pair even at MSNP18.
MSNP13_PRODUCTS = {
    "PROD01065C%ZFN6F": "O4BG@C7BWLYQX?5G",  # WLM 8.0
    "PROD0112J1LW7%NB": "RH96F{PHI8PPX_TJ",  # WLM 8.0 (MSNP13/14)
    "PROD0113H11T8$X_": "RG@XY*28Q5QHS%Q5",  # WLM 8.1
    "PROD0114ES4Z%Q5W": "PK}_A_0N_K%O?A9S",  # papyon
    "PROD0118R6%2WYOS": "YIXPX@5I2P0UT*LK",  # WLM 8.5 beta
    "PROD0119GSJUC$18": "ILTXC!4IXB5FB*PX",  # WLM 8.5
    "PROD0120PW!CCV9@": "C1BX{V4W}Q3*10SM",  # WLM 2009
}


def products_for(dialect_version: int) -> dict:
    """
    The product ids (and keys) whose answers a dialect accepts.
    """
    if dialect_version >= 13:
        return MSNP13_PRODUCTS
    if dialect_version >= 11:
        return MSNP11_PRODUCTS
    return MD5_PRODUCTS

_MODULUS = 0x7FFFFFFF


def new_challenge() -> str:
    """
    A fresh challenge: 20 decimal digits, as the official servers sent.
    """
    return "%020d" % secrets.randbelow(10**20)


def md5_answer(challenge: str, product_key: str) -> str:
    """
    The MSNP6-MSNP10 answer: lower-case hex md5(challenge + key).
    """
    return hashlib.md5((challenge + product_key).encode("ascii")).hexdigest()


def msnp11_answer(challenge: str, product_id: str, product_key: str) -> str:
    """
    The MSNP11-MSNP12 answer.  The md5 of challenge + key, read as four
    little-endian words, keys a hash over challenge + product id (padded
    with '0' to whole 8-byte blocks); the result is XORed into the
    unmasked md5 words.
    """
    digest = hashlib.md5((challenge + product_key).encode("ascii")).digest()
    words = struct.unpack("<4I", digest)
    m0, m1, m2, m3 = (w & _MODULUS for w in words)
    data = (challenge + product_id).encode("ascii")
    data += b"0" * (8 - len(data) % 8)
    chunks = struct.unpack("<%dI" % (len(data) // 4), data)
    high = low = 0
    for i in range(0, len(chunks), 2):
        temp = (m0 * (((0x0E79A9C1 * chunks[i]) % _MODULUS) + high) + m1) % _MODULUS
        high = (m2 * ((chunks[i + 1] + temp) % _MODULUS) + m3) % _MODULUS
        low = low + high + temp
    high = (high + m1) % _MODULUS
    low = (low + m3) % _MODULUS
    out = struct.pack("<4I", words[0] ^ high, words[1] ^ low, words[2] ^ high, words[3] ^ low)
    return out.hex()


def expected_answer(
    uses_msnp11_algorithm: bool, challenge: str, product_id: str, products: Optional[dict] = None
) -> Optional[str]:
    """
    The answer a client with C{product_id} must give, or None when the
    product is unknown for that algorithm (or not among C{products}).
    """
    if uses_msnp11_algorithm:
        key = (MSNP11_PRODUCTS if products is None else products).get(product_id)
        return None if key is None else msnp11_answer(challenge, product_id, key)
    key = (MD5_PRODUCTS if products is None else products).get(product_id)
    return None if key is None else md5_answer(challenge, key)


def answer_is_right(
    uses_msnp11_algorithm: bool, challenge: str, product_id: str, answer: bytes, products: Optional[dict] = None
) -> bool:
    """
    Whether C{answer} (the QRY payload) answers C{challenge} for
    C{product_id}.
    """
    expected = expected_answer(uses_msnp11_algorithm, challenge, product_id, products)
    if expected is None:
        return False
    try:
        given = answer.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return False
    return hmac.compare_digest(expected, given)
