"""
The Passport HTTPS site beyond the Microsoft nexus and login: request
targets in absolute form (RFC 9112 section 3.2.2) and with doubled slashes
(libpurple's C{POST //RST.srf}) on every path and method,
Escargot's nexus (/nexus-mock), login (/login) and header login
(/NotRST.srf) under the same checker, throttle and ticket rules, the
configuration and pages MSN Messenger 5-7.5 fetch at start-up, and one log
line per refused request.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from msnp.config import ServerConfig
from msnp.msn.passport_http import merge_slashes, origin_form
from test_passport_rst import rst_envelope
from twn import authorization, parse_response, pp_server, raw_https_request, twn_start, twn_with_ticket  # noqa: F401

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


def request_bytes(method: str, target: str, headers: dict = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@defer.inlineCallbacks
def ask(server, method: str, target: str, headers: dict = None, body: bytes = b""):
    """
    One request over a fresh TLS connection; returns (status, headers, body).
    """
    data = yield raw_https_request(server, request_bytes(method, target, headers, body))
    return parse_response(data)


def absolute(server, path: str, scheme: str = "https") -> str:
    return f"{scheme}://127.0.0.1:{server.passport_port}{path}"


# Every path the site serves, with each method it answers (and one it
# refuses), with what the request needs to succeed.
ROUTES = [
    ("GET", "/rdr/pprdr.asp", {}, b""),
    ("GET", "/nexus-mock", {}, b""),
    ("GET", "/login2.srf", {"Authorization": authorization("alice@example.com", "pw-alice").decode()}, b""),
    ("GET", "/login", {"Authorization": authorization("alice@example.com", "pw-alice").decode()}, b""),
    ("POST", "/RST.srf", {"Content-Type": "text/xml"}, rst_envelope("alice@example.com", "pw-alice")),
    ("GET", "/RST.srf", {}, b""),
    ("POST", "/NotRST.srf", {"X-User": "alice@example.com", "X-Password": "pw-alice"}, b""),
    ("OPTIONS", "/NotRST.srf", {}, b""),
    ("GET", "/Config/MsgrConfig.asmx", {}, b""),
    ("POST", "/Config/MsgrConfig.asmx", {"Content-Type": "text/xml"}, b"<soap:Envelope/>"),
    ("GET", "/config/MsgrConfig.asmx", {}, b""),
    ("GET", "/etc/MsgrConfig", {}, b""),
    ("POST", "/etc/MsgrConfig", {}, b""),
    ("GET", "/svcs/mms/tabs.asp", {}, b""),
    ("GET", "/svcs/mms/portal.asp", {}, b""),
    ("HEAD", "/rdr/pprdr.asp", {}, b""),
    ("DELETE", "/login2.srf", {}, b""),
    ("GET", "/no/such/page", {}, b""),
]

# Headers whose value differs from one answer to the next by design.
VARYING = {"date", "authentication-info", "x-token", "content-length"}


@pytest.mark.parametrize("method, path, headers, body", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
@pytest_twisted.inlineCallbacks
def test_absolute_form_is_answered_as_origin_form(pp_server, method, path, headers, body):
    """
    A request whose target names scheme and authority gets the answer its
    origin form gets: same status, same headers (but the date and the
    tickets), same body where it carries no ticket.
    """
    plain = yield ask(pp_server, method, path, headers, body)
    full = yield ask(pp_server, method, absolute(pp_server, path), headers, body)
    assert full[0] == plain[0]
    assert {k: v for k, v in full[1].items() if k not in VARYING} == {k: v for k, v in plain[1].items() if k not in VARYING}
    if path != "/RST.srf" or method != "POST":
        assert full[2] == plain[2]
    assert plain[0] != 404 or path == "/no/such/page"


@pytest_twisted.inlineCallbacks
def test_absolute_form_scheme_case_and_query(pp_server):
    """
    The scheme is matched without case, the query survives, and a target
    with no path is the root.
    """
    code, headers, _ = yield ask(pp_server, "GET", absolute(pp_server, "/rdr/pprdr.asp?x=1", scheme="HTTPS"))
    assert code == 200 and "passporturls" in headers
    code, _, _ = yield ask(pp_server, "GET", f"http://127.0.0.1:{pp_server.passport_port}")
    assert code == 404


@given(
    scheme=st.sampled_from([b"http", b"https", b"HTTP", b"Https"]),
    authority=st.from_regex(rb"\A[a-z0-9.\-]{1,20}(:[0-9]{1,5})?\Z"),
    path=st.from_regex(rb"\A(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*(\?[A-Za-z0-9/?=&%-]*)?\Z"),
)
def test_origin_form_strips_scheme_and_authority(scheme, authority, path):
    """
    Property: an absolute-form target gives back its path and query (C{/}
    in front when the path was empty) and its authority; the origin form of
    an origin-form target is itself.
    """
    target, named = origin_form(scheme + b"://" + authority + path)
    assert named == authority
    assert target == (path if path.startswith(b"/") else b"/" + path)
    assert origin_form(target) == (target, None)


@given(st.binary(max_size=60))
def test_origin_form_never_fails(target):
    """
    Property: any bytes give a target starting as they did or with C{/}.
    """
    result, authority = origin_form(target)
    assert result == target if authority is None else result.startswith(b"/")


@pytest.mark.parametrize("method, path, headers, body", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
@pytest_twisted.inlineCallbacks
def test_doubled_slashes_are_answered_as_one(pp_server, method, path, headers, body):
    """
    libpurple 2.5-2.10 writes C{POST /%s} around paths that already start
    with C{/}: a target with runs of slashes gets the answer of the same
    target with single slashes, in origin and in absolute form.
    """
    doubled = "/" + path.replace("/", "//")
    plain = yield ask(pp_server, method, path, headers, body)
    for target in (doubled, absolute(pp_server, doubled)):
        got = yield ask(pp_server, method, target, headers, body)
        assert got[0] == plain[0]
        assert {k: v for k, v in got[1].items() if k not in VARYING} == {k: v for k, v in plain[1].items() if k not in VARYING}
        if path != "/RST.srf" or method != "POST":
            assert got[2] == plain[2]


@pytest_twisted.inlineCallbacks
def test_libpurple_rst_target_logs_in(pp_server):
    """
    libpurple 2.10's single sign-on request, C{POST //RST.srf}, gets the
    security tokens (it was 404, and libpurple waited for ever).
    """
    code, _, body = yield ask(
        pp_server, "POST", "//RST.srf", {"Content-Type": "text/xml"}, rst_envelope("alice@example.com", "pw-alice")
    )
    assert code == 200
    assert b"RequestSecurityTokenResponseCollection" in body and b"BinarySecurityToken" in body


@pytest_twisted.inlineCallbacks
def test_libpurple_address_book_target_reaches_the_service(pp_server):
    """
    The web services behind the site are reached the same way:
    C{POST //abservice/abservice.asmx} is answered by the address book,
    exactly as its single-slash path is.
    """
    envelope = b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>'
    headers = {"Content-Type": "text/xml", "SOAPAction": "http://www.msn.com/webservices/AddressBook/ABFindAll"}
    plain = yield ask(pp_server, "POST", "/abservice/abservice.asmx", headers, envelope)
    doubled = yield ask(pp_server, "POST", "//abservice/abservice.asmx", headers, envelope)
    assert plain[0] != 404
    assert (doubled[0], doubled[2]) == (plain[0], plain[2])


@given(st.binary(max_size=60))
def test_merge_slashes_leaves_no_run_in_the_path_and_keeps_the_query(target):
    """
    Property: the path part has no C{//} left, the query is untouched,
    the result is a fixed point, and with every C{/} taken out the path
    is what it was.
    """
    path, mark, query = target.partition(b"?")
    merged = merge_slashes(target)
    new_path, new_mark, new_query = merged.partition(b"?")
    assert b"//" not in new_path
    assert (new_mark, new_query) == (mark, query)
    assert merge_slashes(merged) == merged
    assert new_path.replace(b"/", b"") == path.replace(b"/", b"")
    assert (b"/" in new_path) == (b"/" in path)


@pytest_twisted.inlineCallbacks
def test_escargot_nexus_names_login_with_scheme_and_microsoft_nexus_without(pp_server):
    """
    /nexus-mock names https://HOST:PORT/login; /rdr/pprdr.asp keeps the
    Microsoft form, host:port/login2.srf with no scheme.
    """
    port = pp_server.passport_port
    code, headers, _ = yield ask(pp_server, "GET", "/nexus-mock")
    assert code == 200
    fields = dict(item.split("=", 1) for item in headers["passporturls"].split(","))
    assert fields["DALogin"] == f"https://127.0.0.1:{port}/login"
    code, headers, _ = yield ask(pp_server, "GET", "/rdr/pprdr.asp")
    fields = dict(item.split("=", 1) for item in headers["passporturls"].split(","))
    assert fields["DALogin"] == f"127.0.0.1:{port}/login2.srf"


def _ticket(headers) -> str:
    return re.search(r"from-PP='([^']*)'", headers["authentication-info"]).group(1)


@pytest_twisted.inlineCallbacks
def test_escargot_login_issues_a_ticket_that_logs_in_once(pp_server):
    """
    GET /login answers like login2.srf: the ticket logs in at the
    notification server once; a wrong password gets 401 and no ticket.
    """
    code, headers, _ = yield ask(pp_server, "GET", "/login", {"Authorization": authorization("bob@example.com", "wrong").decode()})
    assert code == 401 and "da-status=failed" in headers["www-authenticate"] and "authentication-info" not in headers
    code, headers, _ = yield ask(pp_server, "GET", "/login", {"Authorization": authorization("bob@example.com", "pw-bob").decode()})
    assert code == 200
    ticket = _ticket(headers)
    client, answer = yield twn_with_ticket(pp_server, "bob@example.com", ticket, "MSNP8")
    assert answer.text.startswith("USR 4 OK bob@example.com")
    yield client.disconnect()
    client, answer = yield twn_with_ticket(pp_server, "bob@example.com", ticket, "MSNP8")
    assert answer.text == "911 4"
    yield client.wait_closed()


@pytest_twisted.inlineCallbacks
def test_header_login_gives_x_token(pp_server):
    """
    POST /NotRST.srf with X-User/X-Password: X-Token holds a ticket that
    logs in; a wrong password gets 200 without X-Token; missing headers get
    400; the CORS preflight names the headers.
    """
    code, headers, body = yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "carol@example.com", "X-Password": "pw-carol"})
    assert code == 200 and body == b""
    assert headers["access-control-expose-headers"] == "X-Token"
    client, answer = yield twn_with_ticket(pp_server, "carol@example.com", headers["x-token"], "MSNP12")
    assert answer.text == "USR 4 OK carol@example.com 1 0"
    yield client.disconnect()
    code, headers, _ = yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "carol@example.com", "X-Password": "pw-wrong"})
    assert code == 200 and "x-token" not in headers
    code, headers, _ = yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "carol@example.com"})
    assert code == 400 and "x-token" not in headers
    code, headers, _ = yield ask(pp_server, "OPTIONS", "/NotRST.srf")
    assert code == 200
    assert headers["access-control-allow-headers"] == "X-User, X-Password, Content-Type"
    assert headers["access-control-allow-methods"] == "POST"
    code, headers, _ = yield ask(pp_server, "GET", "/NotRST.srf")
    assert code == 405 and "x-token" not in headers
    assert len(pp_server.service.tickets) == 0


@pytest_twisted.inlineCallbacks
def test_header_login_ticket_is_bound_to_its_account(pp_server):
    """
    An X-Token ticket is the account's: presented for another handle it is
    refused (911), like any Passport ticket.
    """
    _, headers, _ = yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "carol@example.com", "X-Password": "pw-carol"})
    client, answer = yield twn_with_ticket(pp_server, "dave@example.com", headers["x-token"], "MSNP9")
    assert answer.text == "911 4"
    yield client.wait_closed()


@pytest.mark.parametrize("server_config", [ServerConfig(login_failures_per_account=2)])
@pytest.mark.parametrize("path", ["/login", "/NotRST.srf"])
@pytest_twisted.inlineCallbacks
def test_escargot_logins_count_toward_the_account_delay(pp_server, path):
    """
    Wrong passwords at /login and /NotRST.srf are the account's failed
    logins, as at login2.srf: past the free ones the next one is delayed.
    """
    for _ in range(2):
        if path == "/login":
            code, _, _ = yield ask(pp_server, "GET", path, {"Authorization": authorization("bob@example.com", "wrong").decode()})
            assert code == 401
        else:
            code, headers, _ = yield ask(pp_server, "POST", path, {"X-User": "bob@example.com", "X-Password": "wrong"})
            assert code == 200 and "x-token" not in headers
    assert pp_server.service.notification.login_throttle.record_failure("bob@example.com", None) > 0


@pytest.mark.parametrize("path", ["/Config/MsgrConfig.asmx", "/config/MsgrConfig.asmx", "/etc/MsgrConfig"])
@pytest_twisted.inlineCallbacks
def test_msgr_config_get_and_post(pp_server, path):
    """
    GET gives the MsgrConfig document, POST (SOAP GetClientConfig) the same
    document inside a GetClientConfigResponse envelope; both are XML with
    no tabs.  A method the site does not implement is 501.
    """
    code, headers, body = yield ask(pp_server, "GET", path + "?ver=7.5.0324")
    assert code == 200 and headers["content-type"].startswith("text/xml")
    config = ET.fromstring(body)
    assert config.tag == "MsgrConfig"
    assert config.find("Simple/Config/ExpiresInDays").text == "0"
    assert list(config.find("TabConfig/msntabdata")) == []
    code, headers, body = yield ask(pp_server, "POST", path, {"Content-Type": "text/xml; charset=utf-8"}, b"<x/>")
    assert code == 200 and headers["content-type"].startswith("text/xml")
    envelope = ET.fromstring(body)
    result = envelope.find(f"{SOAP}Body/{{http://www.msn.com/webservices/Messenger/Client}}GetClientConfigResponse/"
                           "{http://www.msn.com/webservices/Messenger/Client}GetClientConfigResult")
    assert ET.tostring(ET.fromstring(result.text)) == ET.tostring(config)
    code, _, _ = yield ask(pp_server, "PUT", path)
    assert code == 501


@pytest_twisted.inlineCallbacks
def test_tab_and_portal_pages(pp_server):
    """
    /svcs/mms/tabs.asp lists no tab; /svcs/mms/portal.asp is an empty page.
    """
    code, headers, body = yield ask(pp_server, "GET", "/svcs/mms/tabs.asp")
    assert code == 200 and headers["content-type"] == "text/xml"
    tabs = ET.fromstring(b"<tabs>" + body.split(b"?>", 1)[1] + b"</tabs>")
    assert [child.tag for child in tabs] == ["msntabsettings", "msntabdata"]
    assert list(tabs.find("msntabdata")) == []
    code, headers, body = yield ask(pp_server, "GET", "/svcs/mms/portal.asp")
    assert code == 200 and headers["content-type"] == "text/html" and b"<html>" in body


def _refusal_lines(events) -> list[str]:
    return [formatEvent(e) for e in events if "passport request refused" in (e.get("log_format") or "")]


@pytest_twisted.inlineCallbacks
def test_each_refused_request_is_logged_once_without_secrets(pp_server):
    """
    An unknown path, a refused login at each login, a bad request and a
    malformed HTTP request each leave exactly one line with the client's
    address and the reason; no password or ticket is in any log event,
    and a served request leaves no refusal line.
    """
    events: list = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield ask(pp_server, "GET", "/rdr/pprdr.asp")
        _, headers, _ = yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "alice@example.com", "X-Password": "pw-alice"})
        assert _refusal_lines(events) == []
        yield ask(pp_server, "GET", "/no/such/page?pwd=secret-in-query")
        yield ask(pp_server, "GET", "/login2.srf", {"Authorization": authorization("bob@example.com", "pw-wrong-1").decode()})
        yield ask(pp_server, "GET", "/login", {"Authorization": authorization("bob@example.com", "pw-wrong-2").decode()})
        yield ask(pp_server, "POST", "/NotRST.srf", {"X-User": "bob@example.com", "X-Password": "pw-wrong-3"})
        yield ask(pp_server, "POST", "/RST.srf", {}, rst_envelope("bob@example.com", "pw-wrong-4"))
        yield ask(pp_server, "POST", "/RST.srf", {}, b"not xml")
        yield raw_https_request(pp_server, b"GET /rdr/pprdr.asp HTTP/1.1\r\nBroken header line\r\n\r\n")
        d = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)
        yield d
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = _refusal_lines(events)
    assert len(lines) == 7, lines
    assert all(line.startswith("passport request refused from 127.0.0.1: ") for line in lines), lines
    reasons = [line.split(": ", 1)[1] for line in lines]
    assert reasons[0] == "unknown path (GET /no/such/page)"
    assert reasons[1:5] == [
        "refused login for bob@example.com: wrong password (GET /login2.srf)",
        "refused login for bob@example.com: wrong password (GET /login)",
        "refused login for bob@example.com: wrong password (POST /NotRST.srf)",
        "refused login for bob@example.com: wrong password (POST /RST.srf)",
    ]
    assert reasons[5].startswith("bad request: ") and reasons[5].endswith("(POST /RST.srf)")
    assert reasons[6] == "bad request (malformed HTTP)"
    text = "\n".join(formatEvent(e) + repr(sorted((k, v) for k, v in e.items() if not k.startswith("log_"))) for e in events)
    for secret in ("pw-alice", "pw-wrong-1", "pw-wrong-2", "pw-wrong-3", "pw-wrong-4", "secret-in-query", headers["x-token"]):
        assert secret not in text, secret
