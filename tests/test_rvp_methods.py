"""
The RVP methods over real HTTP on 127.0.0.1, with a client written from the
reference: Digest login, SUBSCRIBE (login, property, renewal), UNSUBSCRIBE,
SUBSCRIPTIONS, PROPFIND, PROPPATCH with view ids, NOTIFY with acks, ACL,
and the errors for unsupported methods and bad input.
"""

import pytest_twisted
from twisted.internet import defer

from rvpclient import NS, LocalNode, RvpClient, ace, state_in


@defer.inlineCallbacks
def client_for(rvp, alias, password, username=None):
    client = RvpClient(rvp.port, username=username or alias, password=password,
                       principal=f"http://127.0.0.1:{rvp.port}/instmsg/aliases/{alias}")
    yield client.connect()
    return client


@defer.inlineCallbacks
def online_user(rvp, alias, password, state="online"):
    """
    A logged-in RVP user: its local node, login subscription and state.
    """
    client = yield client_for(rvp, alias, password)
    node = yield LocalNode().start()
    reply = yield client.login_subscribe(alias, node.url)
    assert reply.status == 200, reply
    reply = yield client.set_state(f"/instmsg/aliases/{alias}", state)
    assert reply.status == 207, reply
    return client, node


@defer.inlineCallbacks
def close_all(*things):
    for thing in things:
        if isinstance(thing, LocalNode):
            yield thing.stop()
        else:
            yield thing.close()


@pytest_twisted.inlineCallbacks
def test_unsupported_methods(rvp):
    """
    GET, HEAD, POST, PUT, LOCK, UNLOCK, OPTIONS and unknown methods get 501,
    COPY and MOVE 405; every response carries RVP-Notifications-Version.
    """
    client = RvpClient(rvp.port)
    for method, status in [("GET", 501), ("HEAD", 501), ("POST", 501), ("PUT", 501), ("LOCK", 501),
                           ("UNLOCK", 501), ("OPTIONS", 501), ("MKCOL", 501), ("COPY", 405), ("MOVE", 405)]:
        reply = yield client.request(method, "/instmsg/aliases/alice")
        assert reply.status == status, (method, reply)
        assert reply.header("RVP-Notifications-Version") == "0.2"
    yield client.close()


@pytest_twisted.inlineCallbacks
def test_digest_challenge_and_username_forms(rvp):
    """
    Without credentials: 401 Access Denied with a Digest challenge (realm the
    domain, qop auth).  The handle, the alias and DOMAIN\\alias all log in;
    a wrong password or another domain's prefix does not.
    """
    client = RvpClient(rvp.port)
    reply = yield client.request("PROPFIND", "/instmsg/aliases/bob", {"Depth": "0"})
    assert (reply.status, reply.reason) == (401, "Access Denied")
    challenge = reply.header("WWW-Authenticate")
    assert challenge.startswith("Digest ") and 'realm="example.com"' in challenge and 'qop="auth"' in challenge
    yield client.close()
    for username, password, status in [
        ("alice@example.com", "pw-alice", 207), ("alice", "pw-alice", 207), ("EXAMPLE\\alice", "pw-alice", 207),
        ("example.com\\Alice", "pw-alice", 207), ("alice", "wrong", 401), ("OTHER\\alice", "pw-alice", 401),
        ("nobody", "pw-alice", 401),
    ]:
        client = RvpClient(rvp.port, username=username, password=password)
        reply = yield client.request("PROPFIND", "/instmsg/aliases/bob", {"Depth": "0"})
        assert reply.status == status, (username, reply)
        yield client.close()


@pytest_twisted.inlineCallbacks
def test_digest_replay_is_refused(rvp):
    """
    The same nonce count sent twice is a replay: 401; a higher one passes.
    """
    client = yield client_for(rvp, "alice", "pw-alice")
    reply = yield client.propfind("/instmsg/aliases/bob")
    assert reply.status == 207
    client.nc -= 1
    reply = yield client.request("PROPFIND", "/instmsg/aliases/bob", {"Depth": "0"}, authenticate=False)
    assert reply.status == 401
    reply = yield client.propfind("/instmsg/aliases/bob")
    assert reply.status == 207
    yield client.close()


@pytest_twisted.inlineCallbacks
def test_login_subscription_capped_and_renewed(rvp):
    """
    A login subscription gets an id and at most 14,400 s; a renewal by id
    answers 200 with the granted lifetime; an unknown id is 412; another
    principal's node refuses a login subscription (403).
    """
    client = yield client_for(rvp, "alice", "pw-alice")
    reply = yield client.login_subscribe("alice", "http://127.0.0.1:9", lifetime=99999)
    assert reply.status == 200 and reply.reason == "Successful"
    sub_id = reply.header("Subscription-Id")
    assert sub_id and reply.header("Subscription-Lifetime") == "14400"
    reply = yield client.renew("/instmsg/aliases/alice", sub_id, 600)
    assert (reply.status, reply.header("Subscription-Id"), reply.header("Subscription-Lifetime")) == (200, sub_id, "600")
    reply = yield client.renew("/instmsg/aliases/alice", "NOSUCH", 600)
    assert reply.status == 412
    reply = yield client.login_subscribe("bob", "http://127.0.0.1:9")
    assert reply.status == 403
    yield client.close()


@pytest_twisted.inlineCallbacks
def test_property_subscription_and_presence_notifications(rvp):
    """
    A property subscription answers 207 with the current properties; each
    state change of the watched principal is NOTIFYed to the watcher's
    local node as a propnotification (hop count 3, Subscription-Id).
    """
    alice, alice_node = yield online_user(rvp, "alice", "pw-alice")
    reply = yield alice.subscribe(alice.url("bob"), alice.principal)
    assert reply.status == 207
    sub_id = reply.header("Subscription-Id")
    assert reply.header("Subscription-Lifetime") == "14400"
    doc = reply.xml()
    assert doc.find("d:response/d:href", NS).text == alice.url("bob")
    assert state_in(doc) == "offline"
    assert doc.find(".//d:displayname", NS).text == "Bob"
    assert doc.find(".//r:email", NS).text == "bob@example.com"
    assert doc.find(".//r:mobile-state", NS).text == "0"
    bob, bob_node = yield online_user(rvp, "bob", "pw-bob", "busy")
    [notification] = yield alice_node.wait_for(1)
    assert notification.method == "NOTIFY"
    assert notification.header("RVP-Hop-Count") == "3"
    assert notification.header("Subscription-Id") == sub_id
    assert notification.header("RVP-Notifications-Version") == "0.2"
    doc = notification.xml()
    assert doc.find("r:propnotification/r:notification-from/r:contact/d:href", NS).text == alice.url("bob")
    assert doc.find("r:propnotification/r:notification-to/r:contact/d:href", NS).text == alice.principal
    assert state_in(doc) == "busy"
    yield bob.set_state("/instmsg/aliases/bob", "at-lunch")
    notifications = yield alice_node.wait_for(2)
    assert state_in(notifications[1].xml()) == "at-lunch"
    # The subscription made bob alice's contact (her forward list).
    user = yield rvp.frontend.home.store.load_user("alice@example.com")
    assert "bob@example.com" in user.lists["FL"]
    yield close_all(alice, bob, alice_node, bob_node)


@pytest_twisted.inlineCallbacks
def test_unsubscribe_and_subscriptions_list(rvp):
    """
    SUBSCRIPTIONS shows who watches the principal (id, Call-Back, principal,
    seconds left), filtered by Notification-Type; UNSUBSCRIBE removes an
    entry (then renewing it is 412); only the principal lists its watchers,
    and only the subscriber or the principal unsubscribes.
    """
    alice = yield client_for(rvp, "alice", "pw-alice")
    bob = yield client_for(rvp, "bob", "pw-bob")
    carol = yield client_for(rvp, "carol", "pw-carol")
    reply = yield alice.subscribe("/instmsg/aliases/bob", alice.principal, 3000)
    sub_id = reply.header("Subscription-Id")
    reply = yield bob.subscriptions("/instmsg/aliases/bob")
    assert reply.status == 200
    [entry] = reply.xml().findall("r:subscription", NS)
    assert entry.find("r:subscription-id", NS).text == sub_id
    assert entry.find("d:href", NS).text == alice.principal
    assert entry.find("a:principal/a:rvp-principal", NS).text == alice.principal
    assert 2990 <= int(entry.find("d:timeout", NS).text) <= 3000
    reply = yield bob.subscriptions("/instmsg/aliases/bob", "pragma/notify")
    assert reply.xml().findall("r:subscription", NS) == []
    reply = yield alice.subscriptions("/instmsg/aliases/bob")
    assert reply.status == 403
    reply = yield carol.unsubscribe("/instmsg/aliases/bob", sub_id)
    assert reply.status == 403
    reply = yield alice.unsubscribe("/instmsg/aliases/bob", sub_id)
    assert reply.status == 200
    reply = yield alice.renew("/instmsg/aliases/bob", sub_id)
    assert reply.status == 412
    reply = yield alice.request("UNSUBSCRIBE", "/instmsg/aliases/bob")
    assert reply.status == 400
    yield close_all(alice, bob, carol)


@pytest_twisted.inlineCallbacks
def test_propfind(rvp):
    """
    PROPFIND: Depth 0 only (412 otherwise or when missing); named
    properties, allprop and propname; unknown properties in a 404 propstat.
    """
    bob, bob_node = yield online_user(rvp, "bob", "pw-bob", "away")
    alice = yield client_for(rvp, "alice", "pw-alice")
    reply = yield alice.propfind("/instmsg/aliases/bob", ["d:displayname", "r:state", "r:shoe-size"])
    assert reply.status == 207
    propstats = reply.xml().findall("d:response/d:propstat", NS)
    assert [p.find("d:status", NS).text for p in propstats] == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]
    assert propstats[0].find("d:prop/d:displayname", NS).text == "Bob"
    assert state_in(propstats[0]) == "away"
    assert propstats[1].find("d:prop/r:shoe-size", NS) is not None
    reply = yield alice.propfind("/instmsg/aliases/bob")
    names = [child.tag.split("}")[1] for child in reply.xml().find(".//d:prop", NS)]
    assert names == ["displayname", "state", "email", "mobile-state", "mobile-description"]
    body = b"<?xml version='1.0'?><D:propfind xmlns:D='DAV:'><D:propname/></D:propfind>"
    reply = yield alice.request("PROPFIND", "/instmsg/aliases/bob", {"Depth": "0"}, body)
    assert reply.status == 207 and reply.xml().find(".//d:prop/r:state", NS) is not None
    for depth in ("1", "infinity", None):
        reply = yield alice.propfind("/instmsg/aliases/bob", depth=depth)
        assert reply.status == 412, depth
    reply = yield alice.propfind("/instmsg/aliases/nobody")
    assert reply.status == 404
    yield close_all(alice, bob, bob_node)


@pytest_twisted.inlineCallbacks
def test_proppatch_view_ids(rvp):
    """
    PROPPATCH returns a view id; repeating it changes that view; a second
    view keeps the principal online when the first goes offline; idle on
    one view stays private while another is active; another principal's
    node is refused (403).
    """
    alice = yield client_for(rvp, "alice", "pw-alice")
    path = "/instmsg/aliases/alice"
    reply = yield alice.set_state(path, "online", timeout=600)
    assert reply.status == 207
    doc = reply.xml()
    view = doc.find(".//r:view-id", NS).text
    assert doc.find(".//r:leased-value/d:timeout", NS).text == "600"
    assert doc.find(".//d:status", NS).text == "HTTP/1.1 200 OK"
    reply = yield alice.set_state(path, "busy", view_id=view)
    assert reply.xml().find(".//r:view-id", NS).text == view
    reply = yield alice.set_state(path, "online")
    second = reply.xml().find(".//r:view-id", NS).text
    assert second != view
    yield alice.set_state(path, "offline", view_id=view)
    reply = yield alice.propfind(path, ["r:state"])
    assert state_in(reply.xml()) == "online"
    yield alice.set_state(path, "idle", view_id=second)
    reply = yield alice.propfind(path, ["r:state"])
    assert state_in(reply.xml()) == "idle"
    reply = yield alice.set_state("/instmsg/aliases/bob", "online")
    assert reply.status == 403
    body = b"<?xml version='1.0'?><d:propertyupdate xmlns:d='DAV:' xmlns:r='http://schemas.microsoft.com/rvp/'><d:set><d:prop><r:state><r:leased-value><r:value><r:sleeping/></r:value></r:leased-value></r:state></d:prop></d:set></d:propertyupdate>"
    reply = yield alice.request("PROPPATCH", path, {}, body)
    assert reply.status == 400
    yield alice.close()


@pytest_twisted.inlineCallbacks
def test_proppatch_tolerated_shapes(rvp):
    """
    The shapes the reference says to tolerate: r:timeout, a leased-value
    without default or timeout, the -00 example's D:propupdate root and
    foreign prefixes; d:displayname renames; read-only properties get a 403
    propstat.
    """
    alice = yield client_for(rvp, "alice", "pw-alice")
    path = "/instmsg/aliases/alice"
    body = (b"<?xml version='1.0'?><D:propupdate xmlns:D='DAV:' xmlns:Z='http://schemas.microsoft.com/rvp/'>"
            b"<D:set><D:prop><Z:state><Z:leased-value><Z:value><Z:on-phone/></Z:value><Z:timeout>900</Z:timeout>"
            b"</Z:leased-value></Z:state><D:displayname>Alice A</D:displayname><Z:email>x@y</Z:email></D:prop></D:set></D:propupdate>")
    reply = yield alice.request("PROPPATCH", path, {}, body)
    assert reply.status == 207
    propstats = reply.xml().findall(".//d:propstat", NS)
    assert propstats[0].find(".//d:timeout", NS).text == "900"
    assert propstats[0].find(".//r:default-value/r:offline", NS) is not None
    assert propstats[1].find("d:status", NS).text == "HTTP/1.1 403 Forbidden"
    assert propstats[1].find("d:prop/r:email", NS) is not None
    account = yield rvp.frontend.home.store.get_account("alice@example.com")
    assert account.friendly_name == "Alice A"
    body = (b"<?xml version='1.0'?><d:propertyupdate xmlns:d='DAV:' xmlns:r='http://schemas.microsoft.com/rvp/'>"
            b"<d:set><d:prop><r:state><r:leased-value><r:value><r:back-soon/></r:value></r:leased-value></r:state></d:prop></d:set></d:propertyupdate>")
    reply = yield alice.request("PROPPATCH", path, {}, body)
    assert reply.xml().find(".//d:timeout", NS).text == "1200"
    reply = yield alice.propfind(path, ["r:state"])
    assert state_in(reply.xml()) == "back-soon"
    yield alice.close()


@pytest_twisted.inlineCallbacks
def test_message_delivery_and_acks(rvp):
    """
    NOTIFY with a message reaches the recipient's local node (hop count
    incremented, sender's principal, body relayed with our prefixes, CDATA
    text intact); DeepOr answers 200 once delivered, 412 when the
    recipient has no local node, and the local node's refusal (500: left
    the conversation) is passed back.
    """
    alice, alice_node = yield online_user(rvp, "alice", "pw-alice")
    bob, bob_node = yield online_user(rvp, "bob", "pw-bob")
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "Let's have lunch <now> & ]]> later")
    assert reply.status == 200
    [notification] = yield bob_node.wait_for(1)
    assert notification.target == "/"
    assert notification.header("RVP-Hop-Count") == "2"
    assert notification.header("RVP-From-Principal") == alice.principal
    assert notification.header("RVP-Ack-Type") == "DeepOr"
    doc = notification.xml()
    assert doc.find("r:message/r:notification-from/r:contact/d:href", NS).text == alice.principal
    mime = notification.mime()
    assert "Session-Id: {79FC61B5-1234-1234-8A10-941F33CA4C90}" in mime
    assert mime.endswith("Let's have lunch <now> & ]]> later")
    assert b"<r:message>" in notification.body
    bob_node.status = 500
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "still there?")
    assert reply.status == 500
    reply = yield bob.send_message("/instmsg/aliases/carol", bob.url("carol"), "hello")
    assert reply.status == 412
    reply = yield bob.send_message("/instmsg/aliases/carol", bob.url("carol"), "hello", ack="SingleHop")
    assert reply.status == 412
    reply = yield bob.send_message("/instmsg/aliases/alice", bob.url("alice"), "x", ack="Sometimes")
    assert reply.status == 400
    # A local node that no longer answers: not delivered, 412.
    carol = yield client_for(rvp, "carol", "pw-carol")
    gone = yield LocalNode().start()
    yield carol.login_subscribe("carol", gone.url)
    yield gone.stop()
    reply = yield bob.send_message("/instmsg/aliases/carol", bob.url("carol"), "anyone?")
    assert reply.status == 412
    yield close_all(alice, bob, carol, alice_node, bob_node)


@pytest_twisted.inlineCallbacks
def test_message_sender_must_be_the_caller(rvp):
    """
    A notification-from other than the authenticated principal is 403;
    RVP-From-Principal naming someone else is 403; a hop count at the cap
    is refused (400).
    """
    bob, bob_node = yield online_user(rvp, "bob", "pw-bob")
    alice = yield client_for(rvp, "alice", "pw-alice")
    alice.principal = alice.url("carol")
    reply = yield alice.send_message("/instmsg/aliases/bob", alice.url("bob"), "I am carol")
    assert reply.status == 403
    alice.principal = alice.url("alice")
    body = (b"<?xml version='1.0'?><r:notification xmlns:r='http://schemas.microsoft.com/rvp/' xmlns:d='DAV:'>"
            b"<r:message><r:notification-from><r:contact><d:href>" + alice.principal.encode() +
            b"</d:href></r:contact></r:notification-from><r:msgbody><r:mime-data>x</r:mime-data></r:msgbody></r:message></r:notification>")
    reply = yield alice.request("NOTIFY", "/instmsg/aliases/bob", {"RVP-Hop-Count": "8"}, body)
    assert reply.status == 400
    reply = yield alice.request("NOTIFY", "/instmsg/aliases/bob", {"RVP-Hop-Count": "1"}, body)
    assert reply.status == 200
    assert len(bob_node.received) == 1
    yield close_all(alice, bob, bob_node)


@pytest_twisted.inlineCallbacks
def test_acl_read_and_write_are_the_privacy_lists(rvp):
    """
    ACL read shows allow-all by default; writing a deny of send-to and
    presence for bob puts bob on the block list (the MSN rule): bob then
    sees alice offline and his messages are refused like an offline
    user's.  An ACE without credentials is 400; only the owner reads or
    writes (403).
    """
    alice, alice_node = yield online_user(rvp, "alice", "pw-alice")
    bob, bob_node = yield online_user(rvp, "bob", "pw-bob")
    reply = yield bob.subscribe("/instmsg/aliases/alice", bob.principal)
    assert state_in(reply.xml()) == "online"
    reply = yield alice.read_acl("/instmsg/aliases/alice")
    assert reply.status == 200
    aces = reply.xml().findall("a:acl/a:ace", NS)
    everyone = [a for a in aces if a.find("a:principal/a:allprincipals", NS) is not None]
    assert everyone[0].find("a:grant/a:presence", NS) is not None
    reply = yield alice.write_acl("/instmsg/aliases/alice", ace(alice.url("bob"), deny=("send-to", "presence"))
                                  + ace(None, grant=("list", "read", "send-to", "presence")))
    assert reply.status == 200
    user = yield rvp.frontend.home.store.load_user("alice@example.com")
    assert set(user.lists["BL"]) == {"bob@example.com"}
    [told] = yield bob_node.wait_for(1)
    assert state_in(told.xml()) == "offline"
    reply = yield bob.propfind("/instmsg/aliases/alice", ["r:state"])
    assert state_in(reply.xml()) == "offline"
    reply = yield bob.send_message("/instmsg/aliases/alice", bob.url("alice"), "hi")
    assert reply.status == 412
    reply = yield alice.read_acl("/instmsg/aliases/alice")
    denied = [a for a in reply.xml().findall("a:acl/a:ace", NS) if a.find("a:deny/a:send-to", NS) is not None]
    assert [a.find("a:principal/a:rvp-principal", NS).text for a in denied] == [alice.url("bob")]
    # Allow-list only: BLP BL with carol allowed; bob unblocked but not allowed.
    reply = yield alice.write_acl("/instmsg/aliases/alice", ace(alice.url("carol"), grant=("send-to", "presence"))
                                  + ace(None, grant=("list",), deny=("send-to", "presence")))
    assert reply.status == 200
    user = yield rvp.frontend.home.store.load_user("alice@example.com")
    assert (user.blp, set(user.lists["AL"]), set(user.lists["BL"])) == ("BL", {"carol@example.com"}, set())
    reply = yield alice.write_acl("/instmsg/aliases/alice", ace(alice.url("bob"), deny=("presence",), credentials=None))
    assert reply.status == 400
    reply = yield bob.read_acl("/instmsg/aliases/alice")
    assert reply.status == 403
    yield close_all(alice, bob, alice_node, bob_node)


@pytest_twisted.inlineCallbacks
def test_targets(rvp):
    """
    Absolute-form targets and the physical form are the same node; the
    alias is case-insensitive; another host's URL and non-node paths are
    404.
    """
    alice = yield client_for(rvp, "alice", "pw-alice")
    for target in (alice.url("BOB"), f"/instmsg/local/im.example.com/instmsg/aliases/bob", "/InstMsg/Aliases/Bob"):
        reply = yield alice.request("PROPFIND", target, {"Depth": "0"})
        assert reply.status == 207, target
    for target in ("http://elsewhere.example.net/instmsg/aliases/bob", "/instmsg/other/bob", "*"):
        reply = yield alice.request("PROPFIND", target, {"Depth": "0"})
        assert reply.status == 404, target
    yield alice.close()


@pytest_twisted.inlineCallbacks
def test_bad_input_gets_4xx_and_pipelining_keeps_order(rvp):
    """
    Malformed XML, a DTD (entity expansion), a body over the limit, a
    malformed request line and oversized headers each get their 4xx, never
    a traceback; two requests in one write are answered in order.
    """
    alice = yield client_for(rvp, "alice", "pw-alice")
    reply = yield alice.request("PROPPATCH", "/instmsg/aliases/alice", {}, b"<d:propertyupdate xmlns:d='DAV:'><d:set>")
    assert reply.status == 400
    bomb = (b"<?xml version='1.0'?><!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]>"
            b"<d:propertyupdate xmlns:d='DAV:'>&b;</d:propertyupdate>")
    reply = yield alice.request("PROPPATCH", "/instmsg/aliases/alice", {}, bomb)
    assert reply.status == 400
    reply = yield alice.request("NOTIFY", "/instmsg/aliases/alice", {}, b"<r:notification xmlns:r='x'/>")
    assert reply.status == 400
    yield alice.close()
    raw = RvpClient(rvp.port)
    yield raw.connect()
    reply = yield raw.send_raw(b"NOTIFY /instmsg/aliases/bob HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
    assert reply.status == 413 and reply.header("RVP-Notifications-Version") == "0.2"
    yield raw.connection.closed
    yield raw.connect()
    reply = yield raw.send_raw(b"SUBSCRIBE  /x HTTP/1.1\r\n\r\n")
    assert reply.status == 400
    yield raw.connection.closed
    yield raw.connect()
    reply = yield raw.send_raw(b"SUBSCRIBE /x HTTP/1.1\r\nX: " + b"y" * 70000 + b"\r\n\r\n")
    assert reply.status == 431
    yield raw.connection.closed
    yield raw.connect()
    raw.connection.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nCOPY / HTTP/1.1\r\nHost: x\r\n\r\n")
    first = yield raw.connection.next_reply()
    second = yield raw.connection.next_reply()
    assert (first.status, second.status) == (501, 405)
    yield raw.close()
