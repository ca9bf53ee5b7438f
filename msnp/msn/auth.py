"""
Login through twisted.cred: the MD5 challenge/response credentials, a
checker against the store, and the realm that puts the live session into
the directory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials, IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from zope.interface import Attribute, Interface, implementer

from msnp.store.records import UserState, canonical_handle, hash_password, verify_password_hash


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


class IMessengerUser(Interface):
    """
    What a notification session gets on login: the user's stored state.
    """


def new_md5_challenge() -> str:
    """
    A fresh, unpredictable challenge in the shape the original servers used.
    """
    return "%d.%d" % (secrets.randbelow(9 * 10**9) + 10**9, secrets.randbelow(9 * 10**8) + 10**8)


class LoginThrottle:
    """
    Counts failed logins per account and per source address within a
    window; past a few free failures every further one is answered after a
    delay that doubles each time.  Unknown accounts are counted like known
    ones, so the delay says nothing about whether an account exists.
    """

    MAX_KEYS = 100_000

    def __init__(self, config, now):
        self._config = config
        self._now = now
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key) -> list:
        cutoff = self._now() - self._config.login_failure_window
        stamps = [t for t in self._failures.get(key, ()) if t > cutoff]
        if stamps:
            self._failures[key] = stamps
        else:
            self._failures.pop(key, None)
        return stamps

    def record_failure(self, handle: str, address: Optional[str]) -> float:
        """
        Note a failed login and return how many seconds to wait before
        answering it.  C{address} None: the source is not known here.
        """
        config = self._config
        now = self._now()
        excess = 0
        keys = [(("account", handle), config.login_failures_per_account)]
        if address is not None:
            keys.append((("address", address), config.login_failures_per_address))
        for key, free in keys:
            stamps = self._recent(key)
            stamps.append(now)
            self._failures[key] = stamps
            excess = max(excess, len(stamps) - free)
        while len(self._failures) > self.MAX_KEYS:
            del self._failures[next(iter(self._failures))]
        if excess <= 0:
            return 0.0
        return min(config.login_delay_max, config.login_delay_base * 2 ** (excess - 1))


class AddressedUsernamePassword(UsernamePassword):
    """
    A name and password with the address they came from, so that failures
    count against that address too.
    """

    def __init__(self, username: bytes, password: bytes, address: Optional[str] = None):
        super().__init__(username, password)
        self.address = address


@implementer(ICredentialsChecker)
class ThrottledChecker:
    """
    Another checker whose refusals are answered after the account's and the
    source address's L{LoginThrottle} delay: the Passport login, where
    passwords are guessed over HTTPS, is slowed like the MD5 one.
    """

    def __init__(self, checker, throttle: LoginThrottle, clock):
        self._checker = checker
        self._throttle = throttle
        self._clock = clock
        self.credentialInterfaces = checker.credentialInterfaces

    def requestAvatarId(self, credentials) -> Deferred:
        d = self._checker.requestAvatarId(credentials)

        def refused(failure):
            failure.trap(UnauthorizedLogin)
            username = credentials.username
            if isinstance(username, bytes):
                username = username.decode("utf-8", "replace")
            delay = self._throttle.record_failure(canonical_handle(username), getattr(credentials, "address", None))
            if not delay:
                return failure
            return deferLater(self._clock, delay, lambda: failure)

        return d.addErrback(refused)


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
        def admit(account) -> bool:
            # Runs on the store's thread.  An empty md5_password means none
            # is stored (msnp-admin --no-md5): refused like a wrong password,
            # not checked as the empty string.
            return bool(account.md5_password) and credentials.check_password(account.md5_password)

        return self._store.load_user(credentials.handle, admit).addCallback(_avatar_of)


class LoadedAvatarId(str):
    """
    An avatar id (the handle) that carries the user's state, loaded with
    the password check in one store call so the realm need not load it
    again.
    """

    def __new__(cls, user: UserState):
        avatar_id = super().__new__(cls, user.handle)
        avatar_id.user = user
        return avatar_id


def _avatar_of(user: Optional[UserState]) -> LoadedAvatarId:
    if user is None:
        raise UnauthorizedLogin()
    return LoadedAvatarId(user)


@implementer(IRealm)
class MessengerRealm:
    """
    Loads the user's lists and registers the session (the cred "mind") in the
    directory; the logout callable takes it out again.  A session already
    online for the account is told it was replaced.
    """

    def __init__(self, store, directory):
        self._store = store
        self._directory = directory

    def requestAvatar(self, avatar_id, mind, *interfaces):
        if IMessengerUser not in interfaces:
            return fail(NotImplementedError("no supported interface"))
        user = getattr(avatar_id, "user", None)
        d = succeed(user) if user is not None else self._store.load_user(avatar_id)

        def loaded(user):
            if user is None:
                raise UnauthorizedLogin()
            previous = self._directory.register(user.handle, mind)
            if previous is not None and previous is not mind:
                previous.replaced_by_new_login()
            return IMessengerUser, user, lambda: self._directory.unregister(user.handle, mind)

        return d.addCallback(loaded)


def make_portal(store, directory, tickets: "PassportTickets | None" = None, md5_login: bool = True) -> Portal:
    """
    The notification server's portal: MD5 challenge answers (unless MD5
    login is switched off) and, when Passport runs, Passport tickets.
    """
    checkers = []
    if md5_login:
        checkers.append(StoreChecker(store))
    if tickets is not None:
        checkers.append(PassportTicketChecker(tickets, store))
    return Portal(MessengerRealm(store, directory), checkers)


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
        fields = dict(part.partition("=")[::2] for part in ticket.split("&"))
        entry = self._issued.pop(fields.get("t", ""), None)
        if entry is None:
            return False
        owner, profile, expires = entry
        return (
            hmac.compare_digest(profile.encode(), fields.get("p", "").encode())
            and owner == canonical_handle(handle)
            and self._now() <= expires
        )

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
        if not self._tickets.redeem(credentials.ticket, credentials.handle):
            return fail(UnauthorizedLogin())
        return self._store.load_user(credentials.handle).addCallback(_avatar_of)


# Compared against when the account does not exist, so that an unknown
# account costs as much time as a wrong password.
_DUMMY_HASH = hash_password("no such account", b"\0" * 16)


@implementer(ICredentialsChecker)
class PasswordHashChecker:
    """
    Checks a handle and plaintext password (the Passport login) against the
    stored scrypt hash, on a worker thread so the reactor keeps serving.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, store, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self._store = store
        self._reactor = reactor

    def requestAvatarId(self, credentials) -> Deferred:
        handle = canonical_handle(credentials.username.decode("utf-8") if isinstance(credentials.username, bytes) else credentials.username)
        password = credentials.password.decode("utf-8") if isinstance(credentials.password, bytes) else credentials.password
        d = self._store.get_account(handle)

        def verify(account):
            stored = account.password_hash if account is not None else _DUMMY_HASH
            check = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), verify_password_hash, password, stored)
            return check.addCallback(lambda ok: (account, ok))

        def decide(result):
            account, ok = result
            if account is None or not ok:
                raise UnauthorizedLogin()
            return account.handle

        return d.addCallback(verify).addCallback(decide)
