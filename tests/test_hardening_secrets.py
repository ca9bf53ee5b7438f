"""
Secrets stay out of the logs on the Passport path too: a Passport login
(right and wrong password) and the USR TWN that redeems the ticket leave
log lines, none holding the password, its stored hash or the ticket.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from twn import passport_login, pp_server, twn_login  # noqa: F401 (fixture)


@pytest_twisted.inlineCallbacks
def test_passport_logs_hold_no_password_hash_or_ticket(pp_server):  # noqa: F811
    """
    The ticket issued by the Passport login and redeemed at the
    notification server, the password and the stored hash never appear in
    any log event.
    """
    events: list = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        response, refused = yield passport_login(pp_server, "alice@example.com", "pw-wrong")
        assert response.code == 401 and refused is None
        response, ticket = yield passport_login(pp_server, "bob@example.com", "pw-bob")
        assert response.code == 200 and ticket
        alice = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP12")
        yield alice.disconnect()
        d = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)
        yield d
    finally:
        globalLogPublisher.removeObserver(observer)
    account = yield pp_server.store.get_account("alice@example.com")
    text = "\n".join(formatEvent(e) + " " + repr(sorted((k, v) for k, v in e.items() if not k.startswith("log_"))) for e in events)
    assert "passport ticket issued to bob@example.com" in text
    assert "alice@example.com logged in" in text
    secrets = {"pw-wrong", "pw-bob", "pw-alice", ticket, ticket.split("&")[0], account.password_hash, account.password_hash.split("$")[-1]}
    if account.md5_password:
        secrets.add(account.md5_password)
    for secret in secrets:
        assert secret not in text, secret
