"""
MSNP8-MSNP12 and Passport details that third-party clients depend on.
"""

import pytest_twisted

from conftest import ACCOUNTS
from msnp.msn import passport
from msnp.config import ServerConfig
from twn import passport_login, pp_server  # noqa: F401 (fixture)


def test_nexus_login_address_on_port_443_has_no_port():
    """
    On the standard HTTPS port DALogin names the host alone, as the
    original did: Twisted's MSNP8 client takes everything before the path
    as the host name and always connects to 443.
    """
    config = ServerConfig(public_host="login.example.net", passport_port=443)
    urls = passport.nexus_urls(config.passport_login_address, config.passport_site)
    assert "DALogin=login.example.net/login2.srf," in urls
    assert "DAReg=http://login.example.net/," in urls
    other = ServerConfig(public_host="login.example.net", passport_port=1443)
    assert other.passport_login_address == "login.example.net:1443/login2.srf"


@pytest_twisted.inlineCallbacks
def test_login2_answers_have_an_empty_body_with_content_length(pp_server):
    """
    Success and refusal of login2.srf are headers only; the empty body is
    announced with Content-Length: 0 (as the nexus's), not chunked, for
    clients that read the response by its length.
    """
    response, ticket = yield passport_login(pp_server, "alice@example.com", ACCOUNTS["alice@example.com"][0])
    assert ticket is not None
    assert response.code == 200
    assert response.length == 0
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html"]
    response, ticket = yield passport_login(pp_server, "alice@example.com", "wrong")
    assert ticket is None
    assert response.code == 401
    assert response.length == 0
