"""
Passport 1.4 over real TLS: the nexus header with its exact case, the
login's success and failure answers, and tickets at the notification
server (forged, foreign, reused, expired).
"""

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers

from msnclient import connect
from msnp.msn import passport, passport_http
from msnp.msn.auth import PassportTickets
from msnp.config import ServerConfig
from msnp.tap import Options, config_from_options
from twn import authorization, passport_login, pp_server, raw_https_get, read_body, twn_login  # noqa: F401 (fixture)


@pytest_twisted.inlineCallbacks
def test_nexus_header_has_exact_case_on_the_wire(pp_server):
    """
    The nexus answers 200 with a header spelled exactly PassportURLs (the
    official client matches it case-sensitively) naming the login address
    without a scheme.
    """
    data = yield raw_https_get(pp_server, "/rdr/pprdr.asp")
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 200 OK"
    urls = [line for line in head if line.lower().startswith(b"passporturls:")]
    assert len(urls) == 1
    assert urls[0].startswith(b"PassportURLs: DARealm=Passport.Net,")
    assert f"DALogin=127.0.0.1:{pp_server.passport_port}/login2.srf,".encode() in urls[0]


def test_exact_case_channel_keeps_other_headers():
    """
    The channel restores only the names it knows; other headers keep
    twisted.web's spelling.
    """
    from twisted.web.http_headers import Headers as H

    channel = passport_http.ExactCaseHTTPChannel()
    transport = StringTransport()
    channel.makeConnection(transport)
    headers = H({b"PassportURLs": [b"a=b"], b"content-type": [b"text/html"]})
    channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", headers)
    written = transport.value()
    assert b"\r\nPassportURLs: a=b\r\n" in written
    assert b"\r\nContent-Type: text/html\r\n" in written
    channel.connectionLost(None)


@pytest_twisted.inlineCallbacks
def test_login_success_returns_ticket(pp_server):
    """
    The right password: 200, text/html, Authentication-Info with
    da-status=success and the ticket quoted in from-PP.
    """
    response, ticket = yield passport_login(pp_server, "alice@example.com", "pw-alice")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html"]
    info = response.headers.getRawHeaders(b"authentication-info")[0].decode()
    assert info.startswith("Passport1.4 da-status=success,")
    assert ticket.startswith("t=") and "&p=" in ticket
    assert f"from-PP='{ticket}'" in info


@pytest_twisted.inlineCallbacks
def test_login_failures_get_401(pp_server):
    """
    A wrong password, an unknown account and a request without a Passport
    header all get 401 with da-status=failed and no ticket.
    """
    for handle, password in (("alice@example.com", "wrong"), ("nobody@example.com", "pw-alice")):
        response, ticket = yield passport_login(pp_server, handle, password)
        assert response.code == 401 and ticket is None
        assert response.headers.getRawHeaders(b"www-authenticate")[0].startswith(b"Passport1.4 da-status=failed")
    agent = pp_server.agent()
    for headers in (Headers(), Headers({b"Authorization": [b"Basic YWxpY2U6eA=="]})):
        response = yield agent.request(b"GET", pp_server.url("/login2.srf"), headers)
        yield read_body(response)
        assert response.code == 401
        assert response.headers.getRawHeaders(b"www-authenticate")[0].startswith(b"Passport1.4 da-status=failed")
    assert len(pp_server.service.tickets) == 0


@pytest_twisted.inlineCallbacks
def test_password_with_separators(pp_server):
    """
    A password containing a comma and an equals sign arrives URL-encoded
    and is checked as typed.
    """
    yield pp_server.store.set_password("carol@example.com", "a,b=c d")
    response, ticket = yield passport_login(pp_server, "carol@example.com", "a,b=c d")
    assert response.code == 200 and ticket


@pytest_twisted.inlineCallbacks
def test_ticket_logs_in_once(pp_server):
    """
    A ticket logs its account in (MSNP8 USR OK shape); presenting it again
    fails with 911 and the server hangs up.
    """
    response, ticket = yield passport_login(pp_server, "alice@example.com", "pw-alice")
    for attempt in range(2):
        client = yield connect(pp_server.notification_port)
        client.send("VER 1 MSNP8 CVR0")
        yield client.expect_line("VER 1 MSNP8")
        client.send("USR 2 TWN I alice@example.com")
        yield client.expect(r"USR 2 TWN S lc=1033,id=507,\S+")
        client.send(f"USR 3 TWN S {ticket}")
        if attempt == 0:
            yield client.expect_line("USR 3 OK alice@example.com Alice 1 0")
            yield client.next()
            yield client.disconnect()
        else:
            yield client.expect_line("911 3")
            yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_forged_and_foreign_tickets_are_refused(pp_server):
    """
    A made-up ticket, and Alice's real ticket presented for Bob, get 911
    and a close; Alice's ticket is then used up.
    """
    response, alices = yield passport_login(pp_server, "alice@example.com", "pw-alice")
    for handle, ticket in (
        ("alice@example.com", "t=forged&p=forged"),
        ("alice@example.com", alices.split("&")[0] + "&p=wrong"),
        ("bob@example.com", alices),
    ):
        client = yield connect(pp_server.notification_port)
        client.send("VER 1 MSNP9 CVR0")
        yield client.expect_line("VER 1 MSNP9")
        client.send(f"USR 2 TWN I {handle}")
        yield client.expect(r"USR 2 TWN S \S+")
        client.send(f"USR 3 TWN S {ticket}")
        yield client.expect_line("911 3")
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_wrong_package_for_dialect(pp_server):
    """
    MD5 in MSNP8 and TWN in MSNP7 are refused with 911 and a close; a
    ticket without USR TWN I first likewise.
    """
    for dialect, line in (("MSNP8", "USR 2 MD5 I alice@example.com"), ("MSNP7", "USR 2 TWN I alice@example.com"), ("MSNP10", "USR 2 TWN S t=x&p=y")):
        client = yield connect(pp_server.notification_port)
        client.send(f"VER 1 {dialect}")
        yield client.expect_line(f"VER 1 {dialect}")
        client.send(line)
        yield client.expect_line("911 2")
        yield client.expect_close()


@pytest_twisted.inlineCallbacks
def test_inf_closes_in_msnp8(pp_server):
    """
    INF left the protocol with MSNP8: the server hangs up without an answer.
    """
    client = yield connect(pp_server.notification_port)
    client.send("VER 1 MSNP8 CVR0")
    yield client.expect_line("VER 1 MSNP8")
    client.send("INF 2")
    rest = yield client.expect_close()
    assert rest == []


@pytest_twisted.inlineCallbacks
def test_full_twn_login_msnp12(pp_server):
    """
    The whole MSNP12 login through the helper: USR OK without a name, SBS
    0 null, then the profile.
    """
    client = yield twn_login(pp_server, "bob@example.com", "pw-bob", "MSNP12")
    yield client.disconnect()


@pytest.mark.parametrize("server_config", [ServerConfig(md5_login=False)])
@pytest_twisted.inlineCallbacks
def test_md5_switched_off(pp_server):
    """
    With MD5 login off, an MSNP7 MD5 login is refused with 911 and a close
    while Passport logins still work.
    """
    client = yield connect(pp_server.notification_port)
    client.send("VER 1 MSNP7")
    yield client.expect_line("VER 1 MSNP7")
    client.send("USR 2 MD5 I alice@example.com")
    yield client.expect_line("911 2")
    yield client.expect_close()
    client = yield twn_login(pp_server, "alice@example.com", "pw-alice", "MSNP8")
    yield client.disconnect()


def test_no_md5_option_offers_only_passport_dialects():
    """
    --no-md5 turns MD5 login off and offers MSNP8-MSNP18 only; without
    --passport no Passport login runs.
    """
    options = Options()
    options.parseOptions(["--no-md5"])
    config = config_from_options(options)
    assert not config.md5_login and config.supported_dialects == tuple(range(8, 19))
    assert options["passport"] is None
    options = Options()
    options.parseOptions(["--passport", "ssl:1443:privateKey=k.pem:certKey=c.pem"])
    config = config_from_options(options)
    assert config.md5_login and config.supported_dialects == tuple(range(2, 19)) and config.passport_port == 1443


def test_tickets_expire_are_bound_and_single_use():
    """
    A ticket works once, only for its account, and not after its lifetime.
    """
    clock = task.Clock()
    tickets = PassportTickets(60, clock.seconds)
    first = tickets.issue("Alice@Example.com")
    assert tickets.redeem(first, "alice@example.com")
    assert not tickets.redeem(first, "alice@example.com")
    second = tickets.issue("alice@example.com")
    assert not tickets.redeem(second, "bob@example.com")
    third = tickets.issue("alice@example.com")
    clock.advance(61)
    assert not tickets.redeem(third, "alice@example.com")
    assert not tickets.redeem("t=&p=", "alice@example.com")
    assert not tickets.redeem("garbage", "alice@example.com")
    assert len({tickets.issue("alice@example.com") for _ in range(200)}) == 200


def test_authorization_parsing():
    """
    The Passport1.4 header is split on commas and URL-decoded; other
    schemes and undecodable headers are not accepted.
    """
    fields = passport.parse_authorization(authorization("a@b.com", "p%,=w"))
    assert fields["sign-in"] == "a@b.com" and fields["pwd"] == "p%,=w" and fields["id"] == "507"
    assert passport.parse_authorization(b"Basic abc") is None
    assert passport.parse_authorization(None) is None
    assert passport.parse_authorization(b"Passport1.4 \xff") is None


@pytest.mark.parametrize("server_config", [ServerConfig(passport_ticket_lifetime=-1)])
@pytest_twisted.inlineCallbacks
def test_expired_ticket_is_refused(pp_server):
    """
    A ticket past its lifetime (here: expired when issued) gets 911 and a
    close at the notification server.
    """
    response, ticket = yield passport_login(pp_server, "alice@example.com", "pw-alice")
    assert response.code == 200 and ticket
    client = yield connect(pp_server.notification_port)
    client.send("VER 1 MSNP11 CVR0")
    yield client.expect_line("VER 1 MSNP11")
    client.send("USR 2 TWN I alice@example.com")
    yield client.expect(r"USR 2 TWN S \S+")
    client.send(f"USR 3 TWN S {ticket}")
    yield client.expect_line("911 3")
    yield client.expect_close()
