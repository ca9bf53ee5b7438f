"""
What the client library says it is: the dialects it offers, the CVR fields
and CHL product ids of the official clients, and the capabilities it
announces from MSNP13.
"""

from __future__ import annotations

from msnp.msn import challenge as challenges

ALL_DIALECTS = tuple(f"MSNP{n}" for n in range(12, 1, -1))
# Windows Live Messenger 8.0 to 2009; offer them before ALL_DIALECTS.
WLM_DIALECTS = tuple(f"MSNP{n}" for n in range(18, 12, -1))

# What the client says it is in CVR: MSN Messenger 7.5 on Windows XP, or
# from MSNP13 Windows Live Messenger 8.0, 8.5 or 2009.
CLIENT_VERSION = ("0x0409", "winnt", "5.1", "i386", "MSNMSGR", "7.5.0324", "MSMSGS")
_WLM_VERSIONS = ((16, "14.0.8117.0416"), (15, "8.5.1302.1018"), (13, "8.0.0812"))

# Product ids and keys for CHL answers (the ones the official clients used).
_MD5_PRODUCT = "msmsgs@msnmsgr.com"
_MSNP11_PRODUCT = "PROD0090YUAUV{2B"
_WLM_PRODUCTS = ((18, "PROD0120PW!CCV9@"), (15, "PROD0119GSJUC$18"), (13, "PROD0112J1LW7%NB"))

# The capabilities announced from MSNP13 (with the extended word from
# MSNP16): those of Windows Live Messenger 2009.
WLM_CAPS, WLM_CAPS_EX = 2789003324, 48


def client_version(version: int) -> tuple:
    """
    The CVR fields of the official client of MSNP C{version}.
    """
    for first, name in _WLM_VERSIONS:
        if version >= first:
            return CLIENT_VERSION[:5] + (name, "msmsgs")
    return CLIENT_VERSION


def challenge_product(version: int) -> str:
    """
    The product id the official client of MSNP C{version} answers CHL with.
    """
    for first, product in _WLM_PRODUCTS:
        if version >= first:
            return product
    return _MSNP11_PRODUCT if version >= 11 else _MD5_PRODUCT


def challenge_response(version: int, text: str) -> tuple[str, str]:
    """
    The product id and QRY payload answering the challenge C{text}.
    """
    product = challenge_product(version)
    if version >= 13:
        return product, challenges.msnp11_answer(text, product, challenges.MSNP13_PRODUCTS[product])
    if version >= 11:
        return product, challenges.msnp11_answer(text, product, challenges.MSNP11_PRODUCTS[product])
    return product, challenges.md5_answer(text, challenges.MD5_PRODUCTS[product])
