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


class IPassportTickets(Interface):
    """
    Where Passport tickets are kept between the HTTPS login that issues
    them and the notification server that redeems them.
    """

    def issue(handle):
        """
        A new ticket (C{t=...&p=...}) for C{handle}.
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
        self._issued: dict[str, tuple[str, str, float]] = {}
        self._sweep_at = 64

    def issue(self, handle: str) -> str:
        self._forget_expired()
        key = secrets.token_urlsafe(24)
        profile = secrets.token_urlsafe(24)
        self._issued[key] = (canonical_handle(handle), profile, self._now() + self._lifetime)
        return f"t={key}&p={profile}"

    def redeem(self, ticket: str, handle: str) -> bool:
        """
        Whether C{ticket} is a live ticket of C{handle}.  A ticket is used
        up by being presented at all, so a leaked one cannot be tried twice.
        """
        return self.refusal(ticket, handle) is None

    def refusal(self, ticket: str, handle: str) -> Optional[tuple[str, str]]:
        fields = dict(part.partition("=")[::2] for part in ticket.split("&"))
        entry = self._issued.pop(fields.get("t", ""), None)
        if entry is None or not hmac.compare_digest(entry[1].encode(), fields.get("p", "").encode()):
            return TICKET_UNKNOWN
        owner, _, expires = entry
        if owner != canonical_handle(handle):
            return TICKET_OTHER_ACCOUNT
        if self._now() > expires:
            return TICKET_EXPIRED
        return None

    def __len__(self) -> int:
        return len(self._issued)

    def _forget_expired(self) -> None:
        # Swept when the table has doubled since the last sweep, so issuing
        # stays cheap on average.
        if len(self._issued) < self._sweep_at:
            return
        now = self._now()
        for key in [k for k, (_, _, expires) in self._issued.items() if expires < now]:
            del self._issued[key]
        while len(self._issued) >= self.MAX_TICKETS:
            del self._issued[next(iter(self._issued))]
        self._sweep_at = max(64, 2 * len(self._issued))


@implementer(ICredentialsChecker)
class PassportTicketChecker:
    """
    Accepts a ticket the Passport login issued to the same, still existing
    account.
    """

    credentialInterfaces = (IPassportTicketCredentials,)

    def __init__(self, tickets: PassportTickets, store):
        self._tickets = tickets
        self._store = store

    def requestAvatarId(self, credentials) -> Deferred:
        refusal = self._tickets.refusal(credentials.ticket, credentials.handle)
        if refusal is not None:
            return fail(LoginRefused(*refusal))
        refusals = []

        def admit(account) -> bool:
            if account.locked:
                refusals.append(ACCOUNT_LOCKED)
            return not refusals

        return self._store.load_user(credentials.handle, admit).addCallback(avatar_of, refusals)


