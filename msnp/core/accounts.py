"""
Accounts and credentials: the login throttle, the password checks every
front-end shares, and the realm that signs a checked user in.
"""

from __future__ import annotations

from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from zope.interface import Interface, implementer

from msnp.store.records import UserState, canonical_handle, hash_password, verify_password_hash


class LoginRefused(UnauthorizedLogin):
    """
    A refused login, with the reason the operator is told (in the log and
    as the metrics label); the client only ever sees its protocol's one
    refusal, whatever the reason.
    """

    def __init__(self, reason: str, label: str):
        super().__init__(reason)
        self.reason = reason
        self.label = label
        # Seconds the refusal was held back by the failed-login throttle.
        self.delayed = 0.0


# (what the log says, the metrics label)
WRONG_PASSWORD = ("wrong password", "bad_password")
NO_MD5_STORED = ("no MD5 password-equivalent stored for the account", "bad_password")
UNKNOWN_ACCOUNT = ("unknown account", "unknown_account")
ACCOUNT_LOCKED = ("account locked", "locked")
CHALLENGE_EXPIRED = ("MD5 challenge answered too late", "expired_challenge")
TICKET_UNKNOWN = ("unknown or already used (replayed) ticket", "bad_ticket")
TICKET_EXPIRED = ("expired ticket", "bad_ticket")
TICKET_OTHER_ACCOUNT = ("ticket issued to another account", "bad_ticket")
PASSPORT_OFF = ("Passport not configured (no --passport)", "method_disabled")
MD5_OFF = ("MD5 login switched off (--no-md5)", "method_disabled")
MALFORMED = ("malformed request", "malformed")


def refusal_of(failure) -> LoginRefused:
    """
    The L{LoginRefused} a failed login came to (an unexplained
    UnauthorizedLogin is taken as a wrong password; no checker for the
    credentials means Passport is not configured).
    """
    error = failure.value
    if isinstance(error, LoginRefused):
        return error
    if isinstance(error, UnhandledCredentials):
        return LoginRefused(*PASSPORT_OFF)
    return LoginRefused(*WRONG_PASSWORD)


class IMessengerUser(Interface):
    """
    What a front-end session gets on login: the signed-in user
    (L{msnp.core.presence.SignedInUser}).
    """


class ILoginThrottle(Interface):
    def record_failure(handle, address):
        """
        Note a failed login of C{handle} from C{address} (None: unknown) and
        return how many seconds to wait before answering it.
        """


@implementer(ILoginThrottle)
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
            failure.value.delayed = delay
            return deferLater(self._clock, delay, lambda: failure)

        return d.addErrback(refused)


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


def avatar_of(user: Optional[UserState], refusals: Optional[list] = None) -> LoadedAvatarId:
    """
    The avatar id of a loaded user; refused with the first of
    C{refusals} (what the check found) or as an unknown account.
    """
    if user is None:
        raise LoginRefused(*(refusals[0] if refusals else UNKNOWN_ACCOUNT))
    return LoadedAvatarId(user)


@implementer(IRealm)
class MessengerRealm:
    """
    Loads the user's lists (unless the checker already did) and signs the
    front-end session (the cred "mind", an L{IEndpoint}) in; an endpoint of
    the account already signed in through the same protocol is replaced.
    The logout callable signs it out again.
    """

    def __init__(self, store, messenger):
        self._store = store
        self._messenger = messenger

    def requestAvatar(self, avatar_id, mind, *interfaces):
        if IMessengerUser not in interfaces:
            return fail(NotImplementedError("no supported interface"))
        user = getattr(avatar_id, "user", None)
        d = succeed(user) if user is not None else self._store.load_user(avatar_id)

        def loaded(user):
            if user is None:
                raise UnauthorizedLogin()
            return self._messenger.sign_in(mind, user)

        def signed_in(me):
            return IMessengerUser, me, _SignOut(self._messenger, me)

        return d.addCallback(loaded).addCallback(signed_in)


class _SignOut:
    """
    The logout callable of one signed-in user: a slotted object, as one is
    held per online user (a closure is four times the size).
    """

    __slots__ = ("_messenger", "_me")

    def __init__(self, messenger, me):
        self._messenger = messenger
        self._me = me

    def __call__(self) -> None:
        self._messenger.sign_out(self._me)


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
            if account is None:
                raise LoginRefused(*UNKNOWN_ACCOUNT)
            if not ok:
                raise LoginRefused(*WRONG_PASSWORD)
            if account.locked:
                raise LoginRefused(*ACCOUNT_LOCKED)
            return account.handle

        return d.addCallback(verify).addCallback(decide)
