"""
The Redis directory between two nodes (two directory objects, as two
processes would have) on the test run's own redis-server: a login on one
node replaces the same account's endpoint on the other, events reach
endpoints wherever they live, presence and switchboard cookies are read on
any node, session ids are claimed once, a node started again forgets
what its earlier run left, a node that stops renewing its lease is reaped
and fenced, and a node puts back what an emptied Redis lost.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from zope.interface import implementer
from zope.interface.verify import verifyObject

from msnp.core import events
from msnp.core.endpoints import EndpointRecord, IEndpoint
from msnp.core.presence import PresenceRecord
from msnp.core.privacy import PrivacyView
from msnp.directory import codec
from msnp.directory.interface import DirectoryUnavailable, IDirectory
from msnp.directory.redis import RedisDirectory
from msnp.directory.redisurl import parse_redis_url
from msnp.msn.switchboard import SwitchboardTicket

ALICE = "alice@example.com"
BOB = "bob@example.com"


@implementer(IEndpoint)
class RecordingEndpoint:
    """
    An endpoint that keeps what it receives; C{next_event} waits for one.
    """

    def __init__(self, endpoint_id: str, handle: str):
        self.endpoint_id = endpoint_id
        self.handle = handle
        self.received = []
        self._waiting = []

    def receive(self, event) -> None:
        self.received.append(event)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    @defer.inlineCallbacks
    def next_event(self, timeout: float = 5.0):
        while not self.received:
            d = defer.Deferred()
            self._waiting.append(d)
            timer = reactor.callLater(timeout, d.cancel)
            try:
                yield d
            except defer.CancelledError:
                raise AssertionError(f"{self.endpoint_id}: no event within {timeout}s")
            finally:
                if timer.active():
                    timer.cancel()
        return self.received.pop(0)


def record(endpoint_id: str, handle: str, protocol: str = "msn") -> EndpointRecord:
    node = endpoint_id.rsplit("/", 1)[0]
    return EndpointRecord(endpoint_id, handle, node, protocol, "MSNP12", "7.5", "127.0.0.1:5000", 1000.0)


@pytest.fixture
def redis_url(redis_server):
    redis_server.command("FLUSHALL")
    return redis_server.url


@pytest.fixture
def nodes(redis_url):
    """
    Two started directories, nodes "n1" and "n2".
    """
    started = [RedisDirectory(redis_url, "n1", reactor), RedisDirectory(redis_url, "n2", reactor)]
    for directory in started:
        pytest_twisted.blockon(directory.start())
    yield started
    for directory in started:
        pytest_twisted.blockon(directory.stop())


def test_parse_redis_url():
    assert parse_redis_url("redis://127.0.0.1:6390/2") == {
        "host": "127.0.0.1", "port": 6390, "dbid": 2, "password": None, "username": None, "sentinels": None,
        "service": None,
    }
    assert parse_redis_url("redis://:s%40cret@cache.example.net")["password"] == "s@cret"
    assert parse_redis_url("redis://cache.example.net")["port"] == 6379
    for bad in ("http://host/0", "redis:///0", "redis://host/zero", "redis://host:port/0"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


def test_values_survive_the_codec():
    """
    Events, records and tickets come back equal; render caches stay
    behind; a class outside msnp is refused.
    """
    presence = PresenceRecord(
        ALICE, "n1/1", "NLN", "Alice", 0x50000000, "<msnobj/>", b"<Data>\x00\xff</Data>", False,
        PrivacyView("BL", frozenset({BOB}), frozenset({"eve@example.com"})),
    )
    values = [
        presence,
        events.PresenceChanged(ALICE, None, "Alice", 3, "", True),
        events.PersonalMessageChanged(ALICE, b"\x00\x01"),
        events.ReverseListChanged(ALICE, BOB, "Bob", True, 7),
        events.Ring(BOB, "123", "127.0.0.1:1865", ALICE, "Alice"),
        events.Kicked(events.REPLACED),
        record("n1/4", ALICE),
        SwitchboardTicket(ALICE, "Alice", 12, 0, 1234.5, "99", "Alice"),
    ]
    for value in values:
        assert codec.loads(codec.dumps(value)) == value
    # A view of a signed-in user's own lists travels as sets.
    lists = {"AL": {BOB: BOB}, "BL": {}}
    live = PrivacyView("AL", lists["AL"].keys(), lists["BL"].keys())
    assert codec.loads(codec.dumps(live)) == PrivacyView("AL", frozenset({BOB}), frozenset())
    changed = events.PresenceChanged(ALICE, "NLN")
    changed.rendered["x"] = b"cached"
    assert "cached" not in codec.dumps(changed)
    with pytest.raises(codec.DecodeError):
        codec.loads('{"$a":"os:system","f":{}}')


def test_provides_idirectory(nodes):
    assert verifyObject(IDirectory, nodes[0])


@pytest_twisted.inlineCallbacks
def test_login_on_another_node_replaces_the_endpoint(nodes):
    """
    The same account signing in on n2 takes its MSN endpoint on n1 out of
    the directory and n1's endpoint is told it was replaced; an endpoint of
    another protocol stays.
    """
    n1, n2 = nodes
    old = RecordingEndpoint("n1/1", ALICE)
    sip = RecordingEndpoint("n1/2", ALICE)
    assert (yield n1.attach(old, record("n1/1", ALICE))) == []
    assert (yield n1.attach(sip, record("n1/2", ALICE, "sip"))) == []
    new = RecordingEndpoint("n2/1", ALICE)
    replaced = yield n2.attach(new, record("n2/1", ALICE))
    assert replaced == [record("n1/1", ALICE)]
    assert (yield old.next_event()) == events.Kicked(events.REPLACED)
    assert len(n1) == 1
    assert sorted(r.endpoint_id for r in (yield n1.endpoints_of(ALICE))) == ["n1/2", "n2/1"]
    assert sip.received == [] and new.received == []
    assert sorted(r.endpoint_id for r in (yield n2.all_endpoints())) == ["n1/2", "n2/1"]
    n2.detach("n2/1")
    assert [r.endpoint_id for r in (yield n1.endpoints_of(ALICE))] == ["n1/2"]


@pytest_twisted.inlineCallbacks
def test_events_reach_endpoints_on_any_node(nodes):
    n1, n2 = nodes
    alice = RecordingEndpoint("n1/1", ALICE)
    bob = RecordingEndpoint("n2/1", BOB)
    yield n1.attach(alice, record("n1/1", ALICE))
    yield n2.attach(bob, record("n2/1", BOB))
    online = events.PresenceChanged(ALICE, "NLN", "Alice")
    n1.deliver([BOB, ALICE, "nobody@example.com"], online)
    assert alice.received == [online]  # at once, without Redis
    assert (yield bob.next_event()) == online
    ring = events.Ring(BOB, "17", "127.0.0.1:1865", ALICE, "Alice")
    n1.deliver_to("n2/1", ring)
    assert (yield bob.next_event()) == ring
    # In order, per destination node.
    sequence = [events.PropertyChanged(ALICE, "PHH", str(i)) for i in range(20)]
    for event in sequence:
        n1.deliver([BOB], event)
    received = []
    for _ in sequence:
        received.append((yield bob.next_event()))
    assert received == sequence


@pytest_twisted.inlineCallbacks
def test_domain_route_of_a_node_takes_its_handles_without_endpoints(nodes):
    """
    A federation edge on n1 routes partner.example: events raised on n1
    for its handles reach the route, unless the handle has an endpoint.
    """
    n1, n2 = nodes
    routed = RecordingEndpoint("n1/sip", "*@partner.example")
    n1.route_domain("partner.example", lambda handle: routed)
    own = RecordingEndpoint("n1/2", "lee@partner.example")
    yield n1.attach(own, record("n1/2", "lee@partner.example"))
    event = events.PropertyChanged(ALICE, "PHH", "1")
    n1.deliver(["kim@partner.example", "lee@partner.example"], event)
    assert routed.received == [event] and own.received == [event]
    n1.unroute_domain("partner.example")
    n1.deliver(["kim@partner.example"], event)
    assert routed.received == [event]


@pytest_twisted.inlineCallbacks
def test_presence_is_read_on_any_node(nodes):
    n1, n2 = nodes
    presence = PresenceRecord(ALICE, "n1/1", "BSY", "Alice", privacy=PrivacyView("BL", frozenset({BOB}), frozenset()))
    n1.publish_presence(presence)
    # A read on the same node follows its own writes; then the other node
    # sees them too.
    assert (yield n1.presence_of([ALICE])) == {ALICE: presence}
    assert (yield n2.presence_of([ALICE, BOB])) == {ALICE: presence}
    assert (yield n2.presence_of([])) == {}
    # Withdrawn only by the endpoint that published it.
    n2.withdraw_presence(ALICE, "n2/9")
    assert (yield n2.presence_of([ALICE])) == {ALICE: presence}
    n1.withdraw_presence(ALICE, "n1/1")
    assert (yield n1.presence_of([ALICE])) == {}
    assert (yield n2.presence_of([ALICE])) == {}


@pytest_twisted.inlineCallbacks
def test_cookies_and_session_ids_are_shared(nodes):
    n1, n2 = nodes
    now = reactor.seconds()
    ticket = SwitchboardTicket(ALICE, "Alice", 7, 0, now + 60, None, "Alice")
    yield n1.add_cookie("1.2.3", ticket, now)
    assert (yield n2.redeem_cookie("1.2.3", now)) == ticket
    assert (yield n1.redeem_cookie("1.2.3", now)) is None
    yield n1.add_cookie("4.5.6", ticket, now)
    assert (yield n2.redeem_cookie("4.5.6", now + 61)) is None
    assert (yield n1.claim_session_id("42", "127.0.0.1:1865")) is True
    assert (yield n2.claim_session_id("42", "127.0.0.1:2865")) is False
    n1.release_session_id("42")
    assert (yield n1.claim_session_id("42", "127.0.0.1:1865")) is True


@pytest_twisted.inlineCallbacks
def test_node_started_again_forgets_its_earlier_run(redis_url):
    """
    A node that died without detaching (its records still in Redis) is
    started again under the same id: its old endpoints and the presence
    they published are gone, others' stay.
    """
    first = RedisDirectory(redis_url, "n1", reactor)
    other = RedisDirectory(redis_url, "n2", reactor)
    yield first.start()
    yield other.start()
    try:
        yield first.attach(RecordingEndpoint("n1/1", ALICE), record("n1/1", ALICE))
        first.publish_presence(PresenceRecord(ALICE, "n1/1", "NLN", "Alice"))
        yield other.attach(RecordingEndpoint("n2/1", BOB), record("n2/1", BOB))
        other.publish_presence(PresenceRecord(BOB, "n2/1", "NLN", "Bob"))
        assert list((yield first.presence_of([ALICE]))) == [ALICE]
        assert list((yield other.presence_of([BOB]))) == [BOB]
        # Gone without a word: only its connections close.
        yield first._redis.disconnect()
        yield first._reader.disconnect()
        first._running = False
        yield first._reading
        again = RedisDirectory(redis_url, "n1", reactor)
        yield again.start()
        try:
            assert (yield other.endpoints_of(ALICE)) == []
            assert list((yield other.presence_of([ALICE, BOB]))) == [BOB]
            assert [r.endpoint_id for r in (yield again.endpoints_of(BOB))] == ["n2/1"]
        finally:
            yield again.stop()
    finally:
        yield other.stop()


@pytest_twisted.inlineCallbacks
def test_node_without_lease_is_reaped_and_fenced(redis_url):
    """
    n1 stops renewing its lease (as if frozen): n2 reaps it, handing over
    the presence its users had published and removing their endpoints;
    n1's next write is refused, it drops its endpoints (told the server is
    going down) and refuses logins until it rejoins.
    """
    from msnp.directory.redis import Fenced

    n1 = RedisDirectory(redis_url, "n1", reactor, lease=0.6)
    n2 = RedisDirectory(redis_url, "n2", reactor, lease=0.6)
    reaped = defer.Deferred()
    n2.on_reaped = reaped.callback
    for directory in (n1, n2):
        yield directory.start()
        yield directory.hold_lease(lambda: "127.0.0.1:1864")
    try:
        assert sorted(node for node, _, _ in (yield n2.live_nodes())) == ["n1", "n2"]
        alice = RecordingEndpoint("n1/1", ALICE)
        yield n1.attach(alice, record("n1/1", ALICE))
        presence = PresenceRecord(ALICE, "n1/1", "NLN", "Alice")
        n1.publish_presence(presence)
        assert (yield n2.presence_of([ALICE])) == {ALICE: presence}
        n1._beating.stop()
        timer = reactor.callLater(20, reaped.cancel)
        records = yield reaped
        timer.cancel()
        assert records == [presence]
        assert (yield n2.endpoints_of(ALICE)) == []
        assert (yield n2.presence_of([ALICE])) == {}
        assert [node for node, _, _ in (yield n2.live_nodes())] == ["n2"]
        # The frozen node writes again: refused, and it fences itself.
        n1.publish_presence(PresenceRecord(ALICE, "n1/1", "BSY", "Alice"))
        assert (yield alice.next_event()) == events.Kicked(events.SHUTDOWN)
        assert len(n1) == 0 and n1.fenced_count == 1
        assert (yield n2.presence_of([ALICE])) == {}
        with pytest.raises(Fenced):
            yield n1.attach(RecordingEndpoint("n1/2", BOB), record("n1/2", BOB))
    finally:
        yield n1.stop()
        yield n2.stop()


@pytest_twisted.inlineCallbacks
def test_node_puts_back_what_redis_lost(redis_url, redis_server):
    """
    Redis emptied (as a restarted server without persistence is): at its
    next beat the node finds its lease missing without a tombstone and
    puts back its lease, endpoints and the presence they published.
    """
    n1 = RedisDirectory(redis_url, "n1", reactor, lease=0.6)
    yield n1.start()
    yield n1.hold_lease(lambda: "127.0.0.1:1864")
    try:
        yield n1.attach(RecordingEndpoint("n1/1", ALICE), record("n1/1", ALICE))
        presence = PresenceRecord(ALICE, "n1/1", "NLN", "Alice")
        n1.publish_presence(presence)
        yield n1.presence_of([ALICE])
        redis_server.command("FLUSHALL")
        for _ in range(200):
            if (yield n1.presence_of([ALICE])):
                break
            yield deferLater(reactor, 0.05, lambda: None)
        assert (yield n1.presence_of([ALICE])) == {ALICE: presence}
        assert [r.endpoint_id for r in (yield n1.endpoints_of(ALICE))] == ["n1/1"]
        assert [node for node, _, _ in (yield n1.live_nodes())] == ["n1"]
    finally:
        yield n1.stop()



@pytest_twisted.inlineCallbacks
def test_login_refused_while_redis_is_away_then_service_resumes(redis_url, redis_server, monkeypatch):
    """
    With Redis stopped, an attach (a login) is refused with
    DirectoryUnavailable once it has waited ATTACH_TIMEOUT, and nothing is
    kept of it; Redis started again, the next attach succeeds on the same
    directory, reconnected by itself.
    """
    from msnp.directory import redis as redis_directory
    from msnp.directory.interface import DirectoryUnavailable

    monkeypatch.setattr(redis_directory, "ATTACH_TIMEOUT", 0.5)
    n1 = RedisDirectory(redis_url, "n1", reactor)
    yield n1.start()
    try:
        redis_server.stop()
        try:
            with pytest.raises(DirectoryUnavailable):
                yield n1.attach(RecordingEndpoint("n1/1", ALICE), record("n1/1", ALICE))
            assert len(n1) == 0
        finally:
            redis_server.start()
        monkeypatch.setattr(redis_directory, "ATTACH_TIMEOUT", 30)
        yield n1.attach(RecordingEndpoint("n1/2", ALICE), record("n1/2", ALICE))
        assert [r.endpoint_id for r in (yield n1.endpoints_of(ALICE))] == ["n1/2"]
    finally:
        yield n1.stop()


@pytest_twisted.inlineCallbacks
def test_points_of_presence_stay_side_by_side(nodes):
    """
    Endpoints naming different instances (MSNP16+ machine GUIDs) stay side
    by side across nodes; the same instance (in any case) replaces its old
    endpoint, and an endpoint without one replaces them all.
    """
    n1, n2 = nodes
    first = RecordingEndpoint("n1/1", ALICE)
    second = RecordingEndpoint("n2/1", ALICE)
    assert (yield n1.attach(first, pop_record("n1/1", "A80DD24A-0000-0000-0000-000000000001"))) == []
    assert (yield n2.attach(second, pop_record("n2/1", "A80DD24A-0000-0000-0000-000000000002"))) == []
    again = RecordingEndpoint("n2/2", ALICE)
    replaced = yield n2.attach(again, pop_record("n2/2", "a80dd24a-0000-0000-0000-000000000001"))
    assert [r.endpoint_id for r in replaced] == ["n1/1"]
    assert (yield first.next_event()) == events.Kicked(events.REPLACED)
    single = RecordingEndpoint("n1/3", ALICE)
    replaced = yield n1.attach(single, record("n1/3", ALICE))
    assert sorted(r.endpoint_id for r in replaced) == ["n2/1", "n2/2"]
    n1.detach("n1/3")


def pop_record(endpoint_id: str, instance: str) -> EndpointRecord:
    return EndpointRecord(endpoint_id, ALICE, endpoint_id.split("/")[0], "msn", "MSNP18", instance=instance)


@defer.inlineCallbacks
def event_within(endpoint, seconds: float):
    """
    The next event C{endpoint} receives, or None when none comes within
    C{seconds}.
    """
    try:
        return (yield endpoint.next_event(timeout=seconds))
    except AssertionError:
        return None


@defer.inlineCallbacks
def node_with_alice_and_bob(redis_url, lease: float, sweep: float):
    """
    Node n1 holding its lease, with alice (n1/1) and bob (n1/2) attached.
    """
    n1 = RedisDirectory(redis_url, "n1", reactor, lease=lease, sweep=sweep)
    yield n1.start()
    yield n1.hold_lease(lambda: "127.0.0.1:1864")
    alice = RecordingEndpoint("n1/1", ALICE)
    bob = RecordingEndpoint("n1/2", BOB)
    yield n1.attach(alice, record("n1/1", ALICE))
    yield n1.attach(bob, record("n1/2", BOB))
    return n1, alice, bob


@pytest_twisted.inlineCallbacks
def test_sweep_closes_an_endpoint_replaced_elsewhere(redis_url, redis_server):
    """
    Another node's login took alice's place in Redis and its kick never
    arrived: n1's sweep finds her record gone while its lease is in place,
    and her endpoint is told it was replaced (OUT OTH); bob's, whose
    record is there, is left alone.
    """
    n1, alice, bob = yield node_with_alice_and_bob(redis_url, lease=3.0, sweep=0.2)
    try:
        # What a login on n2 does, without the kick.
        redis_server.command("HDEL", f"ep:{ALICE}", "n1/1")
        redis_server.command("HSET", f"ep:{ALICE}", "n2/1", codec.dumps(record("n2/1", ALICE)))
        assert (yield alice.next_event(timeout=10)) == events.Kicked(events.REPLACED)
        assert len(n1) == 1 and n1.swept_count == 1
        assert (yield event_within(bob, 1.0)) is None
        assert [r.endpoint_id for r in (yield n1.endpoints_of(ALICE))] == ["n2/1"]
    finally:
        yield n1.stop()


@pytest_twisted.inlineCallbacks
def test_sweep_leaves_endpoints_redis_lost_to_be_put_back(redis_url, redis_server):
    """
    Redis emptied: the records are gone with the lease, so nothing was
    replaced.  The sweep closes nobody; the beat puts alice back.  But an
    endpoint whose user meanwhile signed in elsewhere with the same
    protocol is not put back: it is told it was replaced.
    """
    n1, alice, bob = yield node_with_alice_and_bob(redis_url, lease=0.6, sweep=0.1)
    try:
        redis_server.command("FLUSHALL")
        redis_server.command("HSET", f"ep:{BOB}", "n2/1", codec.dumps(record("n2/1", BOB)))
        assert (yield bob.next_event(timeout=10)) == events.Kicked(events.REPLACED)
        assert (yield event_within(alice, 1.0)) is None
        assert [r.endpoint_id for r in (yield n1.endpoints_of(ALICE))] == ["n1/1"]
        assert [r.endpoint_id for r in (yield n1.endpoints_of(BOB))] == ["n2/1"]
    finally:
        yield n1.stop()


@pytest_twisted.inlineCallbacks
def test_leases_say_which_roles_a_node_serves(redis_url):
    """
    A switchboard-only node holds a lease naming its switchboard and
    participants: it is a live switchboard, not a notification node; a
    node with both roles is both.
    """
    n1 = RedisDirectory(redis_url, "n1", reactor)
    n2 = RedisDirectory(redis_url, "n2", reactor)
    n3 = RedisDirectory(redis_url, "n3", reactor)
    for directory in (n1, n2, n3):
        yield directory.start()
    try:
        yield n1.hold_lease(switchboard=lambda: ("127.0.0.1:1865", 3))
        yield n2.hold_lease(lambda: "127.0.0.1:1864")
        yield n3.hold_lease(lambda: "127.0.0.1:2864", lambda: ("127.0.0.1:2865", 0))
        assert sorted((yield n1.live_nodes())) == [("n2", "127.0.0.1:1864", 0), ("n3", "127.0.0.1:2864", 0)]
        assert sorted((yield n2.live_switchboards())) == [("n1", "127.0.0.1:1865", 3), ("n3", "127.0.0.1:2865", 0)]
    finally:
        for directory in (n1, n2, n3):
            yield directory.stop()


def test_choose_switchboard_takes_the_less_loaded_of_two():
    import random

    from msnp.directory.placement import choose_switchboard

    assert choose_switchboard([]) is None
    only = ("sb1", "127.0.0.1:1865", 40)
    assert choose_switchboard([only]) == only
    idle, busy = ("sb1", "a:1", 0), ("sb2", "b:1", 9)
    assert {choose_switchboard([idle, busy], random.Random(seed)) for seed in range(20)} == {idle}
    three = [("sb1", "a:1", 0), ("sb2", "b:1", 5), ("sb3", "c:1", 9)]
    picks = {choose_switchboard(three, random.Random(seed)) for seed in range(200)}
    # The busiest is never the less loaded of a pair; the others are picked.
    assert picks == set(three[:2])


_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)


@given(
    sentinels=st.lists(st.tuples(_HOSTS, st.one_of(st.none(), st.integers(1, 65535))), min_size=1, max_size=4),
    service=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
    db=st.one_of(st.none(), st.integers(0, 15)),
    password=st.one_of(st.none(), st.text(min_size=1, max_size=12)),
)
def test_sentinel_urls_read_back(sentinels, service, db, password):
    """
    A redis+sentinel URL made of any Sentinel addresses, service, database
    and password reads back as them.
    """
    from urllib.parse import quote

    hosts = ",".join(host if port is None else f"{host}:{port}" for host, port in sentinels)
    auth = f":{quote(password, safe='')}@" if password is not None else ""
    url = f"redis+sentinel://{auth}{hosts}/{service}" + (f"/{db}" if db is not None else "")
    settings = parse_redis_url(url)
    assert settings["sentinels"] == [(host.strip("[]"), 26379 if port is None else port) for host, port in sentinels]
    assert settings["service"] == service
    assert settings["dbid"] == (db or 0)
    assert settings["password"] == password


@given(st.text(max_size=80))
def test_redis_urls_are_read_or_refused(text):
    """
    Any text is either read as a URL's settings or refused with
    ValueError, never another error.
    """
    for url in (text, "redis://" + text, "redis+sentinel://" + text):
        try:
            settings = parse_redis_url(url)
        except ValueError:
            continue
        assert isinstance(settings["port"], int) and isinstance(settings["dbid"], int)


def test_asking_before_start_is_directory_unavailable():
    """
    The ports listen before the directory has connected: a login that
    arrives in between asks a directory with no connection yet, and must
    be told the directory is unavailable (MSNP 601), not fail with an
    AttributeError (500).  Announcing calls are dropped quietly then.
    """
    directory = RedisDirectory("redis://127.0.0.1:1/0", "n1", reactor)
    asked = [
        directory.live_nodes(),
        directory.live_switchboards(),
        directory.attach(RecordingEndpoint("n1/1", "alice@example.com"), record("n1/1", "alice@example.com")),
        directory.endpoints_of("alice@example.com"),
        directory.all_endpoints(),
        directory.presence_of(["alice@example.com"]),
        directory.add_cookie("c", object(), 0.0),
        directory.redeem_cookie("c", 0.0),
        directory.claim_session_id("1", "127.0.0.1:1864"),
    ]
    for d in asked:
        failure = []
        d.addErrback(failure.append)
        assert failure and failure[0].check(DirectoryUnavailable), d
    directory.deliver(["alice@example.com"], events.Kicked(events.KICKED))
    directory.withdraw_presence("alice@example.com", "n1/1")
    directory.release_session_id("1")
