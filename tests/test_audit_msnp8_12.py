"""
MSNP8-MSNP12 and Passport details that third-party clients depend on.
"""

from msnp import passport
from msnp.config import ServerConfig


def test_nexus_login_address_on_port_443_has_no_port():
    """
    On the standard HTTPS port DALogin names the host alone, as the
    original did: Twisted's MSNP8 client takes everything before the path
    as the host name and always connects to 443.
    """
    config = ServerConfig(public_host="login.example.net", passport_port=443)
    urls = passport.nexus_urls(config.passport_login_address)
    assert "DALogin=login.example.net/login2.srf," in urls
    assert "DAReg=http://login.example.net/," in urls
    other = ServerConfig(public_host="login.example.net", passport_port=1443)
    assert other.passport_login_address == "login.example.net:1443/login2.srf"
