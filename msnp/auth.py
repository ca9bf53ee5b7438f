"""
Login through twisted.cred: the MD5 challenge/response credentials, a
checker against the store, and the realm that puts the live session into
the directory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail
from zope.interface import Attribute, Interface, implementer

from msnp.store import canonical_handle


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

    def record_failure(self, handle: str, address: str) -> float:
        """
        Note a failed login and return how many seconds to wait before
        answering it.
        """
        config = self._config
        now = self._now()
        excess = 0
        for key, free in ((("account", handle), config.login_failures_per_account), (("address", address), config.login_failures_per_address)):
            stamps = self._recent(key)
            stamps.append(now)
            self._failures[key] = stamps
            excess = max(excess, len(stamps) - free)
        while len(self._failures) > self.MAX_KEYS:
            del self._failures[next(iter(self._failures))]
        if excess <= 0:
            return 0.0
        return min(config.login_delay_max, config.login_delay_base * 2 ** (excess - 1))


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
        d = self._store.get_account(credentials.handle)

        def check(account):
            if account is None or not credentials.check_password(account.md5_password):
                raise UnauthorizedLogin()
            return account.handle

        return d.addCallback(check)


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
        d = self._store.load_user(avatar_id)

        def loaded(user):
            if user is None:
                raise UnauthorizedLogin()
            previous = self._directory.register(user.handle, mind)
            if previous is not None and previous is not mind:
                previous.replaced_by_new_login()
            return IMessengerUser, user, lambda: self._directory.unregister(user.handle, mind)

        return d.addCallback(loaded)


def make_portal(store, directory) -> Portal:
    return Portal(MessengerRealm(store, directory), [StoreChecker(store)])
