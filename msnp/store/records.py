"""
The records the store keeps and hands out: accounts, an online user's lists,
the result of a list edit, and the store's own errors.  Plain data, shared
by every store implementation and by the core.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Optional

import attrs

LISTS = ("FL", "AL", "BL", "RL")
DEFAULT_GROUP_NAME = "~"

class StoreError(Exception):
    """
    A request the store refuses.
    """


class UnknownAccount(StoreError):
    """
    A list edit named a contact that has no account.
    """


class MailboxFull(StoreError):
    """
    The recipient holds as many offline messages as allowed.
    """


class GroupIdTaken(StoreError):
    """
    A new group's number is in use (two edits raced).
    """


class StoreUnavailable(StoreError):
    """
    The database cannot be reached: nothing was read or changed (MSNP
    answers 603, database connect failed).
    """


class AccountExists(Exception):
    pass


class NoSuchAccount(Exception):
    pass


def hash_password(password: str, salt: Optional[bytes] = None) -> str:
    """
    A slow salted hash (scrypt) for password checks that do not need the
    plaintext.
    """
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$%s$%s" % (salt.hex(), digest.hex())


def verify_password_hash(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, _ = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = hash_password(password, bytes.fromhex(salt_hex))
    return hmac.compare_digest(expected, stored)


def digest_username_forms(handle: str) -> list[str]:
    """
    The usernames an HTTP Digest client (RVP) may type for C{handle}: the
    handle, the alias, and ``DOMAIN\\alias`` with the domain's first label
    or the whole domain, each in lower and upper case.
    """
    alias, _, domain = handle.lower().partition("@")
    label = domain.split(".")[0]
    forms = [handle.lower(), alias]
    for prefix in dict.fromkeys((label, label.upper(), domain, domain.upper())):
        forms.append(f"{prefix}\\{alias}")
    return forms


def digest_verifier(handle: str, password: str) -> str:
    """
    What HTTP Digest (RVP) checks against: H(A1) = md5(username:realm:
    password) for each of L{digest_username_forms}, the realm being the
    account's domain, as ``form=hex`` entries joined by spaces.  Digest
    hashes the username exactly as typed, so one value cannot serve every
    spelling.  A password-equivalent for Digest only (protocol-notes/
    passwords.md).
    """
    realm = handle.lower().partition("@")[2]
    return " ".join(
        "%s=%s" % (form, hashlib.md5(f"{form}:{realm}:{password}".encode("utf-8")).hexdigest())
        for form in digest_username_forms(handle)
    )


def canonical_handle(handle: str) -> str:
    """
    Handles are matched without regard to case; the store keeps them in
    lower case.
    """
    return handle.lower()


@attrs.frozen
class Account:
    handle: str
    friendly_name: str
    md5_password: str
    password_hash: str
    # A locked account's logins are refused like a wrong password.
    locked: bool = attrs.field(default=False, converter=bool)
    # H(A1) values for HTTP Digest (digest_verifier); "" for accounts whose
    # password was set before the store kept one.
    digest_verifier: str = ""


@attrs.define
class UserState:
    """
    Everything the notification server keeps in memory for an online user.
    """

    handle: str
    friendly_name: str
    version: int
    gtc: str
    blp: str
    properties: dict[str, str]
    lists: dict[str, dict[str, str]]
    groups: dict[int, str]
    memberships: dict[str, set[int]]


@attrs.frozen
class ListChange:
    """
    The result of a list edit: the owner's new list version and, when the
    edit touched another user's reverse list, that user's new version.
    """

    version: int
    reverse_version: Optional[int] = None


@attrs.frozen
class GroupRemoval:
    version: int
    # contacts that were only in the removed group, and so left the FL,
    # each with the new version of their reverse list
    dropped: tuple[tuple[str, int], ...] = ()


@attrs.frozen
class OfflineMessage:
    """
    A message kept for a user who was offline: who sent it, shown as
    what, when it arrived, the sender's run id and sequence number, and
    the text.
    """

    message_id: str
    sender: str
    sender_name: str
    received_at: float
    run_id: str
    sequence: int
    text: str
