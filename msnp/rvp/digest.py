"""
HTTP Digest authentication (RFC 2617, MD5, ``qop=auth``) for RVP.

The username may be the account handle (``alice@example.com``), the alias
(``alice``) or ``DOMAIN\\alias`` as Windows clients send it.  Digest hashes
the username exactly as typed, so the store keeps one H(A1) for each form a
client is likely to type (L{msnp.store.records.digest_verifier}); with the account's MD5
password-equivalent still stored, any spelling can be checked.

Nonces are stateless: a timestamp and an HMAC under a per-process key, so a
forged or altered nonce is refused and an old one is answered ``stale``.
The highest nonce count seen per nonce is remembered (bounded) so a
captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import OrderedDict
from typing import Callable, Optional

import attrs

NONCE_LIFETIME = 300.0
MAX_TRACKED_NONCES = 10000


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def ha1(username: str, realm: str, password: str) -> str:
    return md5_hex(f"{username}:{realm}:{password}")


def parse_verifier(verifier: str) -> dict[str, str]:
    """
    The stored verifier (L{msnp.store.records.digest_verifier}) as
    C{username form: H(A1)}.
    """
    entries = {}
    for entry in verifier.split():
        form, _, value = entry.rpartition("=")
        if form and len(value) == 32:
            entries[form] = value
    return entries


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]*)\s*(,|$)')


def parse_authorization(value: str) -> Optional[tuple[str, dict[str, str]]]:
    """
    C{(scheme, params)} of an Authorization header; None when malformed.
    """
    scheme, _, rest = value.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            return None
        name = match.group(1).lower()
        if match.group(3) is not None:
            # Only \" and \\ are unescaped: Windows clients send
            # username="DOMAIN\alias" with a bare backslash.
            raw = re.sub(r'\\([\\"])', r"\1", match.group(3))
        else:
            raw = match.group(2)
        if name in params:
            return None
        params[name] = raw
        position = match.end()
    return scheme, params


@attrs.frozen
class DigestResult:
    """
    C{handle} is set when the credentials check; C{stale} when only the
    nonce had expired (the client should retry without asking its user).
    """

    handle: Optional[str] = None
    stale: bool = False


class DigestAuthority:
    """
    Issues Digest challenges for one realm and checks Digest answers
    against an account's stored secrets (looked up by the caller).
    """

    def __init__(self, realm: str, clock, key: Optional[bytes] = None, nonce_lifetime: float = NONCE_LIFETIME):
        self.realm = realm
        self._clock = clock
        self._key = key if key is not None else os.urandom(32)
        self._lifetime = nonce_lifetime
        self._counts: OrderedDict[str, int] = OrderedDict()

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        # Random as well as timed: nonce counts are tracked per nonce, so
        # two clients must never share one.
        stamp = "%x-%s" % (int(self._clock.seconds() * 1000), os.urandom(6).hex())
        return f"{stamp}.{self._sign(stamp)}"

    def challenge(self, stale: bool = False) -> str:
        header = f'Digest realm="{self.realm}", qop="auth", nonce="{self.new_nonce()}", algorithm=MD5'
        return header + (", stale=true" if stale else "")

    def nonce_state(self, nonce: str) -> str:
        """
        "valid", "stale" or "invalid".
        """
        stamp, dot, signature = nonce.partition(".")
        if not dot or not hmac.compare_digest(self._sign(stamp), signature):
            return "invalid"
        try:
            issued = int(stamp.partition("-")[0], 16) / 1000.0
        except ValueError:
            return "invalid"
        if self._clock.seconds() - issued > self._lifetime:
            return "stale"
        return "valid"

    def check(self, method: str, params: dict[str, str], secrets: tuple[str, str], handle: str) -> DigestResult:
        """
        Check C{params} (a parsed Digest Authorization) for C{handle}, whose
        stored C{secrets} are (verifier text, MD5 password-equivalent or "").
        """
        username = params.get("username", "")
        nonce = params.get("nonce", "")
        answer = params.get("response", "").lower()
        algorithm = params.get("algorithm", "MD5")
        if algorithm.upper() != "MD5" or params.get("realm") != self.realm or not nonce or not answer:
            return DigestResult()
        uri = params.get("uri")
        if uri is None:
            return DigestResult()
        verifier, plaintext = secrets
        known = parse_verifier(verifier).get(username)
        if known is None and plaintext:
            known = ha1(username, self.realm, plaintext)
        if known is None:
            return DigestResult()
        ha2 = md5_hex(f"{method}:{uri}")
        qop = params.get("qop")
        if qop is None:
            expected = md5_hex(f"{known}:{nonce}:{ha2}")
        elif qop.lower() == "auth":
            nc = params.get("nc", "")
            cnonce = params.get("cnonce", "")
            if not re.fullmatch(r"[0-9A-Fa-f]{8}", nc) or not cnonce:
                return DigestResult()
            expected = md5_hex(f"{known}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        else:
            return DigestResult()
        if not hmac.compare_digest(expected, answer):
            return DigestResult()
        state = self.nonce_state(nonce)
        if state == "invalid":
            return DigestResult()
        if state == "stale":
            return DigestResult(stale=True)
        if qop is not None:
            count = int(params["nc"], 16)
            if count <= self._counts.get(nonce, 0):
                return DigestResult()  # a replay
            self._counts[nonce] = count
            self._counts.move_to_end(nonce)
            while len(self._counts) > MAX_TRACKED_NONCES:
                self._counts.popitem(last=False)
        return DigestResult(handle=handle)


def handle_for_username(username: str, domain: str, is_local: Callable[[str], bool] = lambda h: True) -> Optional[str]:
    """
    The account handle a Digest username names in C{domain}: the handle
    itself, the bare alias, or ``DOMAIN\\alias`` where DOMAIN is the domain
    or its first label (any case).
    """
    domain = domain.lower()
    username = username.strip()
    if "\\" in username:
        prefix, _, alias = username.rpartition("\\")
        if prefix.lower() not in (domain, domain.split(".")[0]):
            return None
        candidate = f"{alias.lower()}@{domain}"
    elif "@" in username:
        candidate = username.lower()
        if candidate.partition("@")[2] != domain:
            return None
    else:
        candidate = f"{username.lower()}@{domain}"
    if not candidate.partition("@")[0]:
        return None
    return candidate if is_local(candidate) else None
