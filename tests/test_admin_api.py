"""
The admin JSON API over real HTTP on 127.0.0.1, seen from live MSN
clients: who is online, one account's lists, kick, lock and unlock,
delete, the maintenance notice, and the refusals of bad requests.
"""

import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from adminhttp import admin_server, token_admin_server  # noqa: F401 (fixtures)
from msnclient import attempt_login, connect, login, md5_answer
from ns_steps import sign_out


@pytest_twisted.inlineCallbacks
def cvr_login(server, handle, password, dialect="MSNP7", client=("MSNMSGR", "4.7.3001")):
    """
    Log in the way MSN Messenger does, CVR included; returns the client.
    """
    connection = yield connect(server.notification_port, handle.split("@")[0])
    connection.send(f"VER 1 {dialect} CVR0")
    yield connection.expect_line(f"VER 1 {dialect}")
    connection.send(f"CVR 2 0x0409 winnt 5.1 i386 {client[0]} {client[1]} MSMSGS {handle}")
    yield connection.expect(r"CVR 2 .*")
    connection.send(f"USR 3 MD5 I {handle}")
    match = yield connection.expect(r"USR 3 MD5 S (\S+)")
    connection.send(f"USR 4 MD5 S {md5_answer(match.group(1), password)}")
    yield connection.expect(r"USR 4 OK .*")
    yield connection.next()  # the profile message
    return connection


class LogCapture:
    def __init__(self):
        self.lines = []

    def __call__(self, event):
        self.lines.append(formatEvent(event))

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self)


@pytest_twisted.inlineCallbacks
def test_sessions_online_name_each_signed_in_client(admin_server):
    """
    GET /api/sessions lists every signed-in client with its name, status,
    dialect, client version (from CVR), address, login time, role and
    node; a client that has not logged in is not listed, and one that
    signed out is gone.
    """
    alice = yield cvr_login(admin_server, "alice@example.com", "pw-alice")
    alice.send("CHG 5 BSY")
    yield alice.expect_line("CHG 5 BSY")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP5")
    lurker = yield connect(admin_server.notification_port)
    response = yield admin_server.request("GET", "/api/sessions")
    assert response.code == 200
    assert response.header("Content-Type") == "application/json; charset=utf-8"
    sessions = response.json["sessions"]
    assert [s["handle"] for s in sessions] == ["alice@example.com", "bob@example.com"]
    first = sessions[0]
    assert (first["name"], first["status"], first["protocol"], first["dialect"], first["client_version"], first["role"]) == (
        "Alice",
        "busy",
        "msn",
        "MSNP7",
        "MSNMSGR 4.7.3001",
        "notification",
    )
    assert first["address"] == "127.0.0.1" and first["since"] > 0 and first["node"] == admin_server.service.directory.node
    assert (sessions[1]["name"], sessions[1]["status"], sessions[1]["dialect"], sessions[1]["client_version"]) == ("Bob", None, "MSNP5", "")
    yield sign_out(bob, lurker)
    response = yield admin_server.request("GET", "/api/sessions")
    assert [s["handle"] for s in response.json["sessions"]] == ["alice@example.com"]
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_account_shows_lists_and_groups(admin_server):
    """
    GET /api/accounts/EMAIL: the stored lists with names and groups, the
    groups, privacy, list version, and whether it is locked and online;
    404 for an unknown account, 400 for something that is not one.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    alice.send("ADG 5 Friends 0")
    yield alice.expect(r"ADG 5 \d+ Friends 1 0")
    alice.send("ADD 6 FL bob@example.com Bobby 1")
    yield alice.expect(r"ADD 6 FL \d+ bob@example\.com Bobby 1")
    alice.send("ADD 7 BL carol@example.com Carol")
    yield alice.expect(r"ADD 7 BL \d+ carol@example\.com Carol")
    response = yield admin_server.request("GET", "/api/accounts/Alice@Example.com")
    assert response.code == 200
    account = response.json
    assert account["handle"] == "alice@example.com" and account["name"] == "Alice"
    assert account["online"] is True and account["locked"] is False
    assert account["groups"] == [{"id": 0, "name": "~"}, {"id": 1, "name": "Friends"}]
    assert account["lists"]["FL"] == [{"handle": "bob@example.com", "name": "Bobby", "groups": [1]}]
    assert account["lists"]["BL"] == [{"handle": "carol@example.com", "name": "Carol"}]
    assert account["privacy"] == {"blp": "AL", "gtc": "A"}
    assert account["list_version"] >= 3
    bob = yield admin_server.request("GET", "/api/accounts/bob@example.com")
    assert bob.json["lists"]["RL"] == [{"handle": "alice@example.com", "name": "Alice"}] and bob.json["online"] is False
    missing = yield admin_server.request("GET", "/api/accounts/nobody@example.com")
    assert (missing.code, missing.json) == (404, {"error": "no such account: nobody@example.com"})
    malformed = yield admin_server.request("GET", "/api/accounts/not%20an%20account")
    assert malformed.code == 400
    yield sign_out(alice)


@pytest_twisted.inlineCallbacks
def test_kick_ends_the_session_and_watchers_see_it_go(admin_server):
    """
    POST /api/accounts/EMAIL/kick: the client gets OUT OTH (MSNP7) and is
    closed, a watcher sees FLN at once, and the answer counts the session
    ended; kicking someone offline ends none.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP7")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example\.com Alice( 0)?")
    yield alice.expect(r"ADD 0 RL \d+ bob@example\.com Bob")
    bob.send("CHG 6 NLN")
    yield bob.expect_line("CHG 6 NLN")
    alice.send("CHG 5 NLN")
    yield alice.expect_line("CHG 5 NLN")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    with LogCapture() as log:
        response = yield admin_server.request("POST", "/api/accounts/alice@example.com/kick")
    assert (response.code, response.json) == (200, {"handle": "alice@example.com", "sessions_ended": 1})
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    yield bob.expect_line("FLN alice@example.com")
    assert any("ending the sessions of alice@example.com: kicked" in line for line in log.lines)
    assert any("(alice@example.com) closed: ended: kicked" in line for line in log.lines)
    again = yield admin_server.request("POST", "/api/accounts/alice@example.com/kick")
    assert again.json["sessions_ended"] == 0
    sessions = yield admin_server.request("GET", "/api/sessions")
    assert [s["handle"] for s in sessions.json["sessions"]] == ["bob@example.com"]
    yield sign_out(bob)


@pytest_twisted.inlineCallbacks
def test_lock_refuses_logins_with_911_until_unlocked(admin_server):
    """
    Locking an online account ends its session; its logins then get the
    same 911 as a wrong password (the log says "account locked"); after
    unlocking it logs in again.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice")
    response = yield admin_server.request("POST", "/api/accounts/alice@example.com/lock")
    assert response.json == {"handle": "alice@example.com", "locked": True, "sessions_ended": 1}
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    with LogCapture() as log:
        refused = yield attempt_login(admin_server.notification_port, "alice@example.com", "pw-alice")
        yield refused.expect_line("911 3")
        yield refused.expect_close()
        wrong = yield attempt_login(admin_server.notification_port, "bob@example.com", "not-bobs")
        yield wrong.expect_line("911 3")
        yield wrong.expect_close()
    assert any("login refused for alice@example.com (md5) from 127.0.0.1: account locked" in line for line in log.lines)
    assert any("login refused for bob@example.com (md5) from 127.0.0.1: wrong password" in line for line in log.lines)
    account = yield admin_server.request("GET", "/api/accounts/alice@example.com")
    assert account.json["locked"] is True
    unlocked = yield admin_server.request("POST", "/api/accounts/alice@example.com/unlock")
    assert unlocked.json == {"handle": "alice@example.com", "locked": False, "sessions_ended": 0}
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice")
    yield sign_out(alice)
    missing = yield admin_server.request("POST", "/api/accounts/nobody@example.com/lock")
    assert missing.code == 404


@pytest_twisted.inlineCallbacks
def test_delete_ends_the_session_and_updates_online_contacts(admin_server):
    """
    DELETE /api/accounts/EMAIL on an online account: committed, its client
    gets OUT and is closed, and an online contact who had it on FL and AL
    and on RL sees FLN, then REM 0 for each of those lists at its new list
    version, and no longer has it on any list.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP7")
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example\.com Alice( 0)?")
    yield alice.expect(r"ADD 0 RL \d+ bob@example\.com Bob")
    bob.send("ADD 6 AL alice@example.com Alice")
    yield bob.expect(r"ADD 6 AL \d+ alice@example\.com Alice( 0)?")
    alice.send("ADD 5 FL bob@example.com Bob")
    yield alice.expect(r"ADD 5 FL \d+ bob@example\.com Bob( 0)?")
    yield bob.expect(r"ADD 0 RL \d+ alice@example\.com Alice( 0)?")
    bob.send("CHG 7 NLN")
    yield bob.expect_line("CHG 7 NLN")
    alice.send("CHG 6 NLN")
    yield alice.expect_line("CHG 6 NLN")
    yield alice.expect_line("ILN 6 NLN bob@example.com Bob")
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    before = (yield admin_server.request("GET", "/api/accounts/bob@example.com")).json["list_version"]
    response = yield admin_server.request("DELETE", "/api/accounts/alice@example.com")
    assert (response.code, response.json) == (200, {"handle": "alice@example.com", "deleted": True, "sessions_ended": 1})
    yield alice.expect_line("OUT OTH")
    yield alice.expect_close()
    version = before + 1
    yield bob.expect_line("FLN alice@example.com")
    for lst in ("FL", "AL", "RL"):
        yield bob.expect_line(f"REM 0 {lst} {version} alice@example.com")
    after = (yield admin_server.request("GET", "/api/accounts/bob@example.com")).json
    assert after["list_version"] == version
    assert all(entries == [] for entries in after["lists"].values())
    bob.send("SYN 8 0")
    yield bob.expect_line(f"SYN 8 {version}")
    gone = yield admin_server.request("GET", "/api/accounts/alice@example.com")
    assert gone.code == 404
    refused = yield attempt_login(admin_server.notification_port, "alice@example.com", "pw-alice")
    yield refused.expect_line("911 3")
    yield refused.expect_close()
    yield sign_out(bob)


@pytest_twisted.inlineCallbacks
def test_broadcast_sends_the_shutdown_warning(admin_server):
    """
    POST /api/broadcast {"minutes": 5}: every signed-in client gets the
    system message (Type 1, Arg1 the minutes); a bad figure is 400.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP3")
    response = yield admin_server.request("POST", "/api/broadcast", {"minutes": 5})
    assert response.json == {"sessions_told": 2}
    for client in (alice, bob):
        message = yield client.next()
        assert message.text.startswith("MSG Hotmail Hotmail ")
        assert message.payload == (
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n"
        )
    for bad in ({"minutes": -1}, {"minutes": "5"}, {}, {"minutes": 10**6}):
        refused = yield admin_server.request("POST", "/api/broadcast", bad)
        assert refused.code == 400, bad
    yield sign_out(alice, bob)


@pytest_twisted.inlineCallbacks
def test_bad_requests_get_their_http_error(admin_server):
    """
    A change without Content-Type: application/json is 415 (so a form on
    another site cannot make one), the wrong method 405, an unknown path
    404, a body that is not a JSON object 400; a Host that is not a
    loopback name is 403 without a token.
    """
    form = yield admin_server.request(
        "POST", "/api/accounts/alice@example.com/kick", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.code == 415
    wrong_method = yield admin_server.request("GET", "/api/accounts/alice@example.com/kick")
    assert wrong_method.code == 405
    unknown = yield admin_server.request("GET", "/api/nothing")
    assert unknown.code == 404
    not_object = yield admin_server.request(
        "POST", "/api/broadcast", headers={"Content-Type": "application/json"}, body=None
    )
    assert not_object.code == 400
    rebound = yield admin_server.request("GET", "/api/sessions", headers={"Host": "attacker.example:8081"})
    assert rebound.code == 403
    bad_reason = yield admin_server.request("POST", "/api/accounts/alice@example.com/kick", {"reason": "whim"})
    assert bad_reason.code == 400


@pytest_twisted.inlineCallbacks
def test_token_is_required_when_configured(token_admin_server):
    """
    With a token, every path (API, metrics, status page) answers 401 with
    a WWW-Authenticate challenge without it or with a wrong one, logging
    the address; the right token as a bearer token or as the Basic
    password is let through.
    """
    with LogCapture() as log:
        for path in ("/api/sessions", "/metrics", "/"):
            missing = yield token_admin_server.request("GET", path, token=None)
            assert missing.code == 401, path
            assert missing.header("WWW-Authenticate").startswith("Bearer ")
        wrong = yield token_admin_server.request("GET", "/api/sessions", token="guess")
        assert wrong.code == 401
    assert sum("admin request refused from 127.0.0.1: missing token" in line for line in log.lines) == 3
    assert any("admin request refused from 127.0.0.1: wrong token" in line for line in log.lines)
    right = yield token_admin_server.request("GET", "/api/sessions")
    assert (right.code, right.json) == (200, {"sessions": []})
    import base64

    basic = base64.b64encode(b"operator:s3cret-token").decode("ascii")
    browser = yield token_admin_server.request("GET", "/", token=None, headers={"Authorization": f"Basic {basic}"})
    assert browser.code == 200 and b"msnp status" in browser.body
    # With a token, other host names are fine (the token is the guard).
    named = yield token_admin_server.request("GET", "/api/sessions", headers={"Host": "chat.example.net"})
    assert named.code == 200


@pytest_twisted.inlineCallbacks
def test_unknown_page_is_404(admin_server):
    """
    A path outside /, /metrics and /api/ is a plain 404 page.
    """
    response = yield admin_server.request("GET", "/favicon.ico")
    assert response.code == 404 and b"/metrics" in response.body
