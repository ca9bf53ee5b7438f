"""
Single sign-on (MSNP15+): the nonce of C{USR t SSO S MBI_KEY_OLD nonce}
and the check of the client's answer, the "MBI" blob.

Passport hands the client a BinarySecret with its messenger ticket; the
client derives two keys from it and proves it holds the secret by
returning the nonce hashed with one and encrypted (3DES-CBC) with the
other.  The server keeps the secret with the ticket and recomputes both.
The algorithm and its test vector are in protocol-notes/sso.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from typing import Optional

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography before 43
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

POLICY = "MBI_KEY_OLD"
SECRET_BYTES = 24
NONCE_LENGTH = 64

_HASH_MAGIC = b"WS-SecureConversationSESSION KEY HASH"
_ENCRYPTION_MAGIC = b"WS-SecureConversationSESSION KEY ENCRYPTION"
# The blob's header: its own size, CRYPT_MODE_CBC, CALG_3DES, CALG_SHA1,
# then the lengths of the IV, the hash and the ciphertext.
_HEADER = struct.Struct("<7I")
_IV_BYTES, _HASH_BYTES, _CIPHER_BYTES = 8, 20, 72
_EXPECTED_HEADER = (28, 1, 0x6603, 0x8004, _IV_BYTES, _HASH_BYTES, _CIPHER_BYTES)
BLOB_BYTES = _HEADER.size + _IV_BYTES + _HASH_BYTES + _CIPHER_BYTES

_GUID = re.compile(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$")


def new_nonce() -> str:
    """
    The nonce of C{USR SSO S}: base64 of 48 random bytes, exactly 64
    characters (libpurple's ciphertext size assumes that length).
    """
    return base64.b64encode(secrets.token_bytes(48)).decode("ascii")


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def derive_key(key: bytes, magic: bytes) -> bytes:
    """
    The 24-byte key derived from C{key} for C{magic}.
    """
    h1 = hmac.new(key, magic, hashlib.sha1).digest()
    h2 = hmac.new(key, h1 + magic, hashlib.sha1).digest()
    h3 = hmac.new(key, h1, hashlib.sha1).digest()
    h4 = hmac.new(key, h3 + magic, hashlib.sha1).digest()
    return h2 + h4[:4]


def _encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _proof(secret: bytes, nonce: str, iv: bytes) -> tuple[bytes, bytes]:
    text = nonce.encode("ascii")
    digest = hmac.new(derive_key(secret, _HASH_MAGIC), text, hashlib.sha1).digest()
    padding = 8 - len(text) % 8
    ciphertext = _encrypt(derive_key(secret, _ENCRYPTION_MAGIC), iv, text + bytes([padding]) * padding)
    return digest, ciphertext


def mbi_blob(secret: bytes, nonce: str, iv: Optional[bytes] = None) -> str:
    """
    The client's answer to C{nonce} with the BinarySecret C{secret}
    (base64, as sent in C{USR SSO S}).
    """
    iv = secrets.token_bytes(_IV_BYTES) if iv is None else iv
    digest, ciphertext = _proof(secret, nonce, iv)
    blob = _HEADER.pack(*_EXPECTED_HEADER[:6], len(ciphertext)) + iv + digest + ciphertext
    return base64.b64encode(blob).decode("ascii")


def verify_mbi(secret: bytes, nonce: str, blob_text: str) -> bool:
    """
    Whether C{blob_text} answers C{nonce} for C{secret}: the header is the
    one every client writes, and hash and ciphertext are what the secret
    gives for the IV the client chose.
    """
    if len(nonce) != NONCE_LENGTH or not nonce.isascii():
        return False
    try:
        blob = base64.b64decode(blob_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    if len(blob) != BLOB_BYTES or _HEADER.unpack_from(blob) != _EXPECTED_HEADER:
        return False
    start = _HEADER.size
    iv = blob[start : start + _IV_BYTES]
    given_hash = blob[start + _IV_BYTES : start + _IV_BYTES + _HASH_BYTES]
    given_cipher = blob[start + _IV_BYTES + _HASH_BYTES :]
    digest, ciphertext = _proof(secret, nonce, iv)
    return hmac.compare_digest(digest, given_hash) & hmac.compare_digest(ciphertext, given_cipher)


def machine_guid(text: str) -> Optional[str]:
    """
    The machine GUID of C{USR SSO S} (MSNP16+) without its braces, which
    clients send or leave out; None when it is not a GUID.
    """
    match = _GUID.match(text)
    return match.group(1) if match else None
