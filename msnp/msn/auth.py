"""
MSN's own credentials for twisted.cred: the MD5 challenge/response of
MSNP2-MSNP7 and its checker, and the Passport tickets of MSNP8+ with
theirs.  The realm and the shared checks are in L{msnp.core.accounts}.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail
from zope.interface import Attribute, Interface, implementer

from msnp.core.accounts import (
    ACCOUNT_LOCKED,
    NO_MD5_STORED,
    TICKET_EXPIRED,
    TICKET_OTHER_ACCOUNT,
    TICKET_UNKNOWN,
    WRONG_PASSWORD,
    LoginRefused,
    MessengerRealm,
    avatar_of,
)
from msnp.msn import sso
from msnp.store.records import canonical_handle


class IMD5ChallengeCredentials(ICredentials):
    """
    A handle with the answer to a challenge: lower-case hex
    md5(challenge + password).
    """

    handle = Attribute("the account name")

    def check_password(password: str) -> bool:
        """
        Whether the answer was computed from C{password}.
        """


def new_md5_challenge() -> str:
    """
    A fresh, unpredictable challenge in the shape the original servers used.
    """
    return "%d.%d" % (secrets.randbelow(9 * 10**9) + 10**9, secrets.randbelow(9 * 10**8) + 10**8)


def md5_answer(challenge: str, secret: str) -> str:
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


@implementer(IMD5ChallengeCredentials)
class MD5ChallengeCredentials:
    def __init__(self, handle: str, challenge: str, response: str):
        self.handle = canonical_handle(handle)
        self.challenge = challenge
        self.response = response.lower()

    def check_password(self, password: str) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters, and
        # the answer is whatever the client sent.
        return hmac.compare_digest(md5_answer(self.challenge, password).encode(), self.response.encode("utf-8"))


@implementer(ICredentialsChecker)
class StoreChecker:
    """
    Checks credentials against the accounts in the store.  An unknown
    account and a wrong password fail the same way.
    """

    credentialInterfaces = (IMD5ChallengeCredentials,)

    def __init__(self, store):
        self._store = store

    def requestAvatarId(self, credentials) -> Deferred:
        refusals = []

        def admit(account) -> bool:
            # Runs on the store's thread.  An empty md5_password means none
            # is stored (msnp-admin --no-md5): refused like a wrong password,
            # not checked as the empty string.
            if not account.md5_password:
                refusals.append(NO_MD5_STORED)
            elif not credentials.check_password(account.md5_password):
                refusals.append(WRONG_PASSWORD)
            elif account.locked:
                refusals.append(ACCOUNT_LOCKED)
            return not refusals

        return self._store.load_user(credentials.handle, admit).addCallback(avatar_of, refusals)


def make_portal(store, messenger, tickets: "PassportTickets | None" = None, md5_login: bool = True) -> Portal:
    """
    The notification server's portal: MD5 challenge answers (unless MD5
    login is switched off) and, when Passport runs, Passport tickets.
    """
    checkers = []
    if md5_login:
        checkers.append(StoreChecker(store))
    if tickets is not None:
        checkers.append(PassportTicketChecker(tickets, store))
    return Portal(MessengerRealm(store, messenger), checkers)


# Passport (MSNP8+): the HTTPS login checks a password against the slow
# salted hash and hands out a ticket; the notification server accepts the
# ticket once, for the account it was issued to, until it expires.


class IPassportTicketCredentials(ICredentials):
    """
    A handle and the Passport ticket presented with C{USR t TWN S}.
    """

    handle = Attribute("the account name given in USR TWN I")
    ticket = Attribute("the ticket, t=...&p=...")


@implementer(IPassportTicketCredentials)
class PassportTicketCredentials:
    def __init__(self, handle: str, ticket: str):
        self.handle = canonical_handle(handle)
        self.ticket = ticket


class ISSOCredentials(IPassportTicketCredentials):
    """
    A ticket presented with C{USR t SSO S} (MSNP15+), with the proof that
    the client holds the BinarySecret Passport gave with it.
    """

    def check_proof(secret):
        """
        Whether the client's answer to the nonce was made with C{secret}.
        """


@implementer(ISSOCredentials)
class SSOCredentials:
    def __init__(self, handle: str, ticket: str, nonce: str, blob: str):
        self.handle = canonical_handle(handle)
        self.ticket = ticket
        self.nonce = nonce
        self.blob = blob

    def check_proof(self, secret: bytes) -> bool:
        return sso.verify_mbi(secret, self.nonce, self.blob)


# Why a single sign-on is refused when its ticket was good.
SSO_PROOF_WRONG = ("single sign-on proof (MBI) does not match the ticket's secret", "bad_ticket")


def _ticket_fields(ticket: str) -> dict:
    return dict(part.partition("=")[::2] for part in ticket.split("&"))


class IPassportTickets(Interface):
    """
    Where Passport tickets are kept between the HTTPS login that issues
    them and the notification server that redeems them.
    """

    def issue(handle, secret=None):
        """
        A new ticket (C{t=...&p=...}) for C{handle}; C{secret}, the
        BinarySecret given to the client with it (SSO), is kept with it.
        """

    def redeem(ticket, handle):
        """
        Whether C{ticket} is a live ticket of C{handle}; it is used up.
        """

    def refusal(ticket, handle):
        """
        As L{redeem}, but None for a live ticket of C{handle} and otherwise
        why not (one of the C{TICKET_} reasons of L{msnp.core.accounts}).
        """

    def take(ticket, handle):
        """
        As L{refusal}, with the secret kept with the ticket: (refusal or
        None, secret or None).  The ticket is used up.
        """


@implementer(IPassportTickets)
class PassportTickets:
    """
    Tickets issued by the Passport login: unguessable, bound to one
    account, single-use and expiring after C{lifetime} seconds of C{now()}.
    """

    MAX_TICKETS = 100_000

    def __init__(self, lifetime: float, now):
        self._lifetime = lifetime
        self._now = now
        self._issued: dict[str, tuple[str, str, float, Optional[bytes]]] = {}
        self._sweep_at = 64

    def issue(self, handle: str, secret: Optional[bytes] = None) -> str:
        self._forget_expired()
        key = secrets.token_urlsafe(24)
        profile = secrets.token_urlsafe(24)
        self._issued[key] = (canonical_handle(handle), profile, self._now() + self._lifetime, secret)
        return f"t={key}&p={profile}"

    def redeem(self, ticket: str, handle: str) -> bool:
        """
        Whether C{ticket} is a live ticket of C{handle}.  A ticket is used
        up by being presented at all, so a leaked one cannot be tried twice.
        """
        return self.refusal(ticket, handle) is None

    def refusal(self, ticket: str, handle: str) -> Optional[tuple[str, str]]:
        return self.take(ticket, handle)[0]

    def take(self, ticket: str, handle: str) -> tuple[Optional[tuple[str, str]], Optional[bytes]]:
        fields = _ticket_fields(ticket)
        entry = self._issued.pop(fields.get("t", ""), None)
        if entry is None or not hmac.compare_digest(entry[1].encode(), fields.get("p", "").encode()):
            return TICKET_UNKNOWN, None
        owner, _, expires, secret = entry
        if owner != canonical_handle(handle):
            return TICKET_OTHER_ACCOUNT, None
        if self._now() > expires:
            return TICKET_EXPIRED, None
        return None, secret

    def __len__(self) -> int:
        return len(self._issued)

    def _forget_expired(self) -> None:
        # Swept when the table has doubled since the last sweep, so issuing
        # stays cheap on average.
        if len(self._issued) < self._sweep_at:
            return
        now = self._now()
        for key in [k for k, entry in self._issued.items() if entry[2] < now]:
            del self._issued[key]
        while len(self._issued) >= self.MAX_TICKETS:
            del self._issued[next(iter(self._issued))]
        self._sweep_at = max(64, 2 * len(self._issued))


class ServiceTokens:
    """
    The compact tokens Passport hands out for the web services (address
    book, storage, offline messages): bound to one account, good for any
    number of requests until they expire, C{lifetime} seconds after issue.
    Clients keep them for the whole session and do not renew them.
    """

    MAX_TOKENS = 200_000

    def __init__(self, lifetime: float, now):
        self.lifetime = lifetime
        self._now = now
        self._issued: dict[str, tuple[str, str, float]] = {}
        self._sweep_at = 64

    def issue(self, handle: str) -> str:
        key = secrets.token_urlsafe(24)
        profile = secrets.token_urlsafe(24)
        token = f"t={key}&p={profile}"
        self.register(token, handle)
        return token

    def register(self, token: str, handle: str) -> None:
        """
        Accept C{token} (issued elsewhere, e.g. a messenger ticket) as a
        service token of C{handle} too.
        """
        self._forget_expired()
        fields = _ticket_fields(token)
        self._issued[fields.get("t", "")] = (canonical_handle(handle), fields.get("p", ""), self._now() + self.lifetime)

    def owner(self, token: str) -> Optional[str]:
        """
        The account C{token} (C{t=...&p=...}) belongs to, or None when it
        is unknown, its C{p} part is wrong, or it expired.
        """
        fields = _ticket_fields(token)
        key = fields.get("t", "")
        entry = self._issued.get(key)
        if entry is None:
            return None
        handle, profile, expires = entry
        if not hmac.compare_digest(profile.encode(), fields.get("p", "").encode()):
            return None
        if self._now() > expires:
            del self._issued[key]
            return None
        return handle

    def __len__(self) -> int:
        return len(self._issued)

    def _forget_expired(self) -> None:
        if len(self._issued) < self._sweep_at:
            return
        now = self._now()
        for key in [k for k, (_, _, expires) in self._issued.items() if expires < now]:
            del self._issued[key]
        while len(self._issued) >= self.MAX_TOKENS:
            del self._issued[next(iter(self._issued))]
        self._sweep_at = max(64, 2 * len(self._issued))


@implementer(ICredentialsChecker)
class PassportTicketChecker:
    """
    Accepts a ticket the Passport login issued to the same, still existing
    account; for single sign-on, only with the proof made from the secret
    issued with that ticket.
    """

    credentialInterfaces = (IPassportTicketCredentials, ISSOCredentials)

    def __init__(self, tickets: PassportTickets, store):
        self._tickets = tickets
        self._store = store

    def requestAvatarId(self, credentials) -> Deferred:
        refusal, secret = self._tickets.take(credentials.ticket, credentials.handle)
        if refusal is None and ISSOCredentials.providedBy(credentials):
            if secret is None or not credentials.check_proof(secret):
                refusal = SSO_PROOF_WRONG
        if refusal is not None:
            return fail(LoginRefused(*refusal))
        refusals = []

        def admit(account) -> bool:
            if account.locked:
                refusals.append(ACCOUNT_LOCKED)
            return not refusals

        return self._store.load_user(credentials.handle, admit).addCallback(avatar_of, refusals)


