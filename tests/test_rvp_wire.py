"""
The RVP front-end's parsers without sockets: HTTP request framing, the
hardened XML reader, Digest header parsing and checking, principal URLs,
and the leased-state and subscription tables on task.Clock.  Hypothesis
checks that no input makes a parser fail other than by its own error.
"""

import hashlib

from hypothesis import given, settings, strategies as st
from twisted.internet import task

from msnp.rvp import xmldoc
from msnp.rvp.digest import DigestAuthority, handle_for_username, parse_authorization
from msnp.rvp.httpwire import HttpError, Limits, Request, RequestParser, split_target
from msnp.rvp.principals import Principals, Site, alias_of_path
from msnp.rvp.state import PresenceTable, SubscriptionTable
from msnp.store.records import digest_verifier

PIPELINE = (
    b"SUBSCRIBE /instmsg/aliases/bob HTTP/1.1\r\nHost: im\r\nNotification-Type: pragma/notify\r\n"
    b"Content-Length: 0\r\n\r\n"
    b"NOTIFY http://im/instmsg/aliases/bob HTTP/1.1\r\nContent-Length: 5\r\nX-Folded: a\r\n b\r\n\r\nhello"
    b"PROPPATCH / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
    b"ACL / HTTP/1.0\r\n\r\n"
)


def feed_all(parser, chunks):
    results = []
    for chunk in chunks:
        results.extend(parser.feed(chunk))
    return results


def test_pipeline_parsed_whole():
    """
    Content-Length, folded headers, chunked bodies with trailers and
    HTTP/1.0 requests, in one stream.
    """
    requests = RequestParser().feed(PIPELINE)
    assert [(r.method, r.target, r.body) for r in requests] == [
        ("SUBSCRIBE", "/instmsg/aliases/bob", b""),
        ("NOTIFY", "http://im/instmsg/aliases/bob", b"hello"),
        ("PROPPATCH", "/", b"abcde"),
        ("ACL", "/", b""),
    ]
    assert requests[1].headers.get("x-folded") == "a b"
    assert requests[0].keep_alive and not requests[3].keep_alive


@given(st.lists(st.integers(min_value=1, max_value=len(PIPELINE)), max_size=12))
def test_any_split_gives_the_same_requests(cuts):
    """
    However the bytes arrive, the same requests come out.
    """
    points = sorted(set(cuts))
    chunks = [PIPELINE[a:b] for a, b in zip([0] + points, points + [len(PIPELINE)])]
    assert feed_all(RequestParser(), chunks) == RequestParser().feed(PIPELINE)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_requests_or_one_error(data):
    """
    Random input yields requests and at most one HttpError, which ends the
    stream; nothing else is raised.
    """
    parser = RequestParser(Limits(max_request_line=200, max_header_line=200, max_body=100))
    results = parser.feed(data) + parser.feed(b"\r\n\r\n")
    errors = [r for r in results if isinstance(r, HttpError)]
    assert len(errors) <= 1
    if errors:
        assert results[-1] is errors[0] and 400 <= errors[0].status < 600
    assert all(isinstance(r, (Request, HttpError)) for r in results)


def test_http_errors():
    """
    The status each kind of bad framing gets.
    """
    limits = Limits(max_request_line=50, max_header_line=60, max_headers=3, max_header_bytes=200, max_body=10)
    cases = {
        b"FOO\r\n\r\n": 400,
        b"GET / HTTP/2.0\r\n\r\n": 505,
        b"GET /" + b"a" * 60 + b" HTTP/1.1\r\n": 414,
        b"GET / HTTP/1.1\r\nX: " + b"a" * 70 + b"\r\n": 431,
        b"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n": 431,
        b"GET / HTTP/1.1\r\nContent-Length: 11\r\n\r\n": 413,
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n": 501,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n": 400,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n": 413,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n": 400,
        b"GET / HTTP/1.1\r\n bad\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n": 400,
    }
    for data, status in cases.items():
        [error] = RequestParser(limits).feed(data)
        assert isinstance(error, HttpError) and error.status == status, data


def test_targets_split():
    assert split_target("/instmsg/aliases/bob?x") .path == "/instmsg/aliases/bob"
    target = split_target("HTTP://Im.Example.com:8080/instmsg/aliases/bob")
    assert (target.host, target.port, target.path) == ("im.example.com", 8080, "/instmsg/aliases/bob")
    assert split_target("http://host") .path == "/"
    for bad in ("*", "ftp://x/", "http://:80/", "http://h:x/", "http://h:0/"):
        assert split_target(bad) is None, bad


def test_xml_namespaces_cdata_and_refusals():
    """
    Names are matched by local name whatever the prefix; CDATA text comes
    back whole; DTDs, external entities, undefined entities and excessive
    depth are refused.
    """
    root = xmldoc.parse(b"<?xml version='1.0'?><Z:notification xmlns:Z='http://schemas.microsoft.com/rvp/' "
                        b"xmlns:D='DAV:'><Z:message><Z:msgbody><Z:mime-data><![CDATA[a <b> ]]]]><![CDATA[>\r\nc]]>"
                        b"</Z:mime-data></Z:msgbody></Z:message></Z:notification>")
    assert root.name == "notification" and root.namespace == xmldoc.RVP
    assert root.path("message", "msgbody", "mime-data").text == "a <b> ]]>\nc"
    for bad in (
        b"<!DOCTYPE x [<!ENTITY e 'x'>]><x>&e;</x>",
        b"<!DOCTYPE x SYSTEM 'file:///etc/passwd'><x/>",
        b"<x>&undefined;</x>",
        b"<a>" * 40 + b"</a>" * 40,
        b"",
        b"<x>",
    ):
        try:
            xmldoc.parse(bad)
        except xmldoc.XmlError:
            continue
        raise AssertionError(bad)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: ("<r:x xmlns:r='r'>" + t + "</r:x>").encode())))
def test_xml_parser_raises_only_its_own_error(data):
    try:
        xmldoc.parse(data)
    except xmldoc.XmlError:
        pass


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_written_text_reads_back(text):
    """
    Text and CDATA we write come back as written (XML normalises CR).
    """
    body = xmldoc.document(xmldoc.element("r:notification", xmldoc.text_element("d:href", text),
                                          ("r:mime-data", xmldoc.CData(text))))
    root = xmldoc.parse(body)
    assert root.child_text("href") == text
    assert root.child_text("mime-data") == text
    assert body.startswith(b"<?xml version=\"1.0\"?>\n<r:notification xmlns:d='DAV:' xmlns:r=")


@given(st.text(max_size=200))
def test_authorization_parser_never_raises(text):
    result = parse_authorization(text)
    assert result is None or isinstance(result[1], dict)


@given(st.dictionaries(st.sampled_from(["username", "realm", "nonce", "uri", "cnonce", "opaque"]),
                       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)))
def test_authorization_round_trip(params):
    """
    Quoted values written with \\ and \" escaped come back as they were.
    """
    header = "Digest " + ", ".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in params.items())
    assert parse_authorization(header) == ("Digest", params)


def digest_params(authority, username, password, method="NOTIFY", uri="/instmsg/aliases/bob", nc="00000001"):
    nonce = authority.new_nonce()
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1 = md5(f"{username}:example.com:{password}")
    response = md5(f"{ha1}:{nonce}:{nc}:c:auth:{md5(f'{method}:{uri}')}")
    return {"username": username, "realm": "example.com", "nonce": nonce, "uri": uri, "qop": "auth",
            "nc": nc, "cnonce": "c", "response": response}


def test_digest_check():
    """
    The stored verifier checks each username form; the MD5
    password-equivalent stands in for a missing verifier; a forged nonce,
    a wrong method and an old nonce fail (the last as stale).
    """
    clock = task.Clock()
    authority = DigestAuthority("example.com", clock)
    secrets = (digest_verifier("alice@example.com", "pw"), "")
    for username in ("alice", "EXAMPLE\\alice", "alice@example.com"):
        assert authority.check("NOTIFY", digest_params(authority, username, "pw"), secrets, "a").handle == "a"
    assert authority.check("NOTIFY", digest_params(authority, "Alice", "pw"), secrets, "a").handle is None
    assert authority.check("NOTIFY", digest_params(authority, "Alice", "pw"), ("", "pw"), "a").handle == "a"
    params = digest_params(authority, "alice", "pw")
    assert authority.check("PROPFIND", params, secrets, "a").handle is None
    # The last hex digit changed (to "1" when it already is "0").
    last = params["nonce"][-1]
    forged = dict(params, nonce=params["nonce"][:-1] + ("1" if last == "0" else "0"))
    assert authority.check("NOTIFY", forged, secrets, "a").handle is None
    params = digest_params(authority, "alice", "pw")
    clock.advance(301)
    result = authority.check("NOTIFY", params, secrets, "a")
    assert result.handle is None and result.stale


def test_usernames_and_principals():
    assert handle_for_username("EXAMPLE\\Alice", "example.com") == "alice@example.com"
    assert handle_for_username("example.com\\alice", "example.com") == "alice@example.com"
    assert handle_for_username("alice@other.org", "example.com") is None
    assert handle_for_username("\\", "example.com") is None
    principals = Principals("example.com", Site("im.example.com"), {"other.org": "http://im.other.org:8080"})
    assert principals.url_of("Bob@example.com") == "http://im.example.com/instmsg/aliases/bob"
    assert principals.url_of("zed@other.org") == "http://im.other.org:8080/instmsg/aliases/zed"
    assert principals.handle_of_url("http://IM.example.com:80/instmsg/aliases/Bob") == "bob@example.com"
    assert principals.handle_of_url("http://im.other.org:8080/instmsg/local/x/instmsg/aliases/zed") == "zed@other.org"
    assert principals.handle_of_url("http://im.other.org/instmsg/aliases/zed") is None
    assert alias_of_path("/instmsg/aliases/a%40b") is None
    assert alias_of_path("/instmsg/aliases/") is None


def test_presence_views_and_leases():
    """
    Shared states reach all views, offline and idle stay private to one,
    a lapsed lease restores the default and the view dies.
    """
    clock = task.Clock()
    changes = []
    table = PresenceTable(clock, lambda handle, state: changes.append(state))
    one = table.set_state("a", None, "online", "offline", 100)
    two = table.set_state("a", None, "busy", "offline", 200)
    assert table.published("a") == "busy"
    table.set_state("a", one.view_id, "idle", "offline", 100)
    assert table.published("a") == "busy"
    table.set_state("a", two.view_id, "idle", "offline", 200)
    assert table.published("a") == "idle"
    table.set_state("a", two.view_id, "away", "offline", 200)
    clock.advance(100)
    assert set(table.views("a")) == {two.view_id}
    clock.advance(100)
    assert table.published("a") == "offline" and table.views("a") == {}
    assert changes == ["online", "busy", "idle", "away", "offline"]


def test_subscription_table_sweeps_by_clock():
    clock = task.Clock()
    expired = []
    table = SubscriptionTable(clock, expired.append, max_per_node=2)
    first = table.add("n", "update/propchange", "cb", "p", 50)
    table.add("n", "pragma/notify", "cb", "p", 80)
    assert table.add("n", "x", "cb", "p", 10) is None
    clock.advance(40)
    table.renew(first.sub_id, 50)
    clock.advance(41)
    assert [s.kind for s in expired] == ["pragma/notify"]
    clock.advance(10)
    assert table.all() == [] and len(expired) == 2


def test_peer_located_by_srv_then_domain():
    """
    A domain without --rvp-peer is looked up as _rvp._tcp.DOMAIN (the best
    priority wins, port kept unless 80); without a record the domain
    itself is used.  A located domain's URLs then map to handles.
    """
    from twisted.internet import defer
    from twisted.names import dns, error

    from msnp.rvp.frontend import RvpFrontEnd, RvpSettings

    class Resolver:
        asked = []

        def lookupService(self, name):
            self.asked.append(name)
            if name == "_rvp._tcp.other.org":
                answers = [
                    dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(20, 0, 80, "backup.other.org")),
                    dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(10, 5, 8080, "im.other.org.")),
                ]
                return defer.succeed((answers, [], []))
            return defer.fail(error.DNSNameError(name))

    class Reactor:
        def resolve(self, host):
            return defer.succeed({"im.other.org": "192.0.2.7", "plain.net": "192.0.2.8"}[host])

    resolver = Resolver()
    class Home:
        def bind(self, frontend):
            pass

    frontend = RvpFrontEnd(RvpSettings("example.com", Site("im.example.com")), Home(), Reactor(), task.Clock(),
                           outbound=object(), resolver=resolver)
    assert fired(frontend.locate("Other.org")) == "http://im.other.org:8080"
    assert fired(frontend.locate("plain.net")) == "http://plain.net"
    assert resolver.asked == ["_rvp._tcp.other.org", "_rvp._tcp.plain.net"]
    assert frontend.principals.handle_of_url("http://im.other.org:8080/instmsg/aliases/zed") == "zed@other.org"
    assert frontend.settings.peer_addresses == {"192.0.2.7": "other.org", "192.0.2.8": "plain.net"}


def fired(d):
    """
    The result of a Deferred that has already fired (the fakes answer at once).
    """
    results = []
    d.addBoth(results.append)
    [result] = results
    return result


def test_rvp_options(tmp_path):
    """
    --rvp-peer is repeatable and checked; --rvp needs --rvp-domain; the
    service carries domain, host (with an explicit port) and peers.
    """
    import pytest
    from twisted.python import usage

    from msnp.tap import Options, check_options, makeService

    options = Options()
    options.parseOptions(["--rvp", "tcp:0:interface=127.0.0.1", "--rvp-domain", "Example.com", "--rvp-host", "im.example.com:8080",
                          "--rvp-peer", "other.org=http://im.other.org/", "--rvp-peer", "third.net=http://10.0.0.1:81",
                          "--db", str(tmp_path / "x.sqlite")])
    assert options["rvp-peer"] == {"other.org": "http://im.other.org", "third.net": "http://10.0.0.1:81"}
    service = makeService(options)
    [rvp] = [child for child in service.messenger if child.__class__.__name__ == "RvpService"]
    assert rvp.frontend.principals.url_of("a@example.com") == "http://im.example.com:8080/instmsg/aliases/a"
    assert rvp.frontend.principals.url_of("z@third.net") == "http://10.0.0.1:81/instmsg/aliases/z"
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--rvp-peer", "nourl"])
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--rvp-peer", "x.org=ftp://x"])
    for argv in (["--rvp", "tcp:80"], ["--rvp", "tcp:80", "--rvp-domain", "e.com", "--rvp-host", "h:x"]):
        options = Options()
        options.parseOptions(argv + ["--db", str(tmp_path / "y.sqlite")])
        with pytest.raises(usage.UsageError):
            check_options(options)
