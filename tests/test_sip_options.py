"""
The --sip* options: what each accepts and the one-line refusal of each
mistake.
"""

from __future__ import annotations

import pytest

from msnp.sip.options import SipOptionError, settings_from_options


def test_off_by_default():
    assert not settings_from_options([], None, [], [], "127.0.0.1").enabled


def test_full_configuration():
    settings = settings_from_options(
        ["tcp:5060:interface=127.0.0.1", "ssl:5061:privateKey=key.pem:certKey=cert.pem"],
        "5060:interface=0.0.0.0",
        ["Example.com", "example.net"],
        ["partner.example=sip:192.0.2.7:5061;transport=tls;im=session", "srv.example"],
        "sip.example.com",
        "ca.pem",
    )
    assert settings.enabled and settings.udp_port == 5060 and settings.udp_interface == "0.0.0.0"
    assert settings.tls_ca == "ca.pem"
    assert settings.domains == ["example.com", "example.net"]
    partner, srv = settings.peers
    assert partner.domain == "partner.example" and partner.transport == "tls" and partner.session_im
    assert "im" not in partner.uri.params
    assert srv.uri is None and srv.transport == "tcp"
    assert not partner.contact_routing
    ua = settings_from_options([], "5060", ["example.com"], ["ua.example=sip:127.0.0.1:5090;route=contact"], "127.0.0.1").peers[0]
    assert ua.contact_routing and "route" not in ua.uri.params


@pytest.mark.parametrize(
    "streams, udp, domains, peers, option",
    [
        (["unix:/tmp/x"], None, ["example.com"], [], "--sip:"),
        ([], "x", ["example.com"], [], "--sip-udp"),
        ([], "5060:iface=1", ["example.com"], [], "--sip-udp"),
        (["tcp:5060"], None, [], [], "--sip-domain"),
        (["tcp:5060"], None, ["bad domain"], [], "--sip-domain"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=http://x"], "--sip-peer"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=sip:h;transport=sctp"], "--sip-peer"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=sip:h;im=pager"], "--sip-peer"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=sip:h;route=aor"], "--sip-peer"),
        (["tcp:5060"], None, ["example.com"], ["example.com=sip:h"], "--sip-peer"),
        # TLS is mutual: certificates need authorities, and a tls peer our certificate.
        (["ssl:5061:privateKey=k.pem"], None, ["example.com"], [], "--sip-ca"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=sip:h;transport=tls"], "--sip-peer"),
        (["tcp:5060"], None, ["example.com"], ["partner.example=sips:h"], "--sip-peer"),
    ],
)
def test_mistakes_name_the_option(streams, udp, domains, peers, option):
    with pytest.raises(SipOptionError) as error:
        settings_from_options(streams, udp, domains, peers, "127.0.0.1")
    assert option in str(error.value)


@pytest.mark.parametrize(
    "streams",
    [
        ["tcp:5060"],  # --sip-ca without an ssl: listener
        ["ssl:x:privateKey=k.pem"],
        ["ssl:5061:privateKey=k.pem:sslmethod=TLSv1_METHOD"],
    ],
)
def test_tls_mistakes(streams):
    with pytest.raises(SipOptionError):
        settings_from_options(streams, None, ["example.com"], [], "127.0.0.1", "ca.pem")


def test_twistd_options_build_the_sip_edge(tmp_path):
    """
    C{twistd msnp --sip ... --sip-peer ...}: repeatable options reach the
    edge's settings, and the service carries the bridged SIP edge.
    """
    from twisted.python import usage

    from msnp.tap import Options, check_options, sip_settings

    options = Options()
    options.parseOptions(
        [
            "--db", str(tmp_path / "msnp.sqlite"),
            "--sip", "tcp:0:interface=127.0.0.1", "--sip-udp", "0",
            "--sip-domain", "example.com", "--sip-domain", "example.net",
            "--sip-peer", "partner.example=sip:127.0.0.1:5070;transport=tcp", "--sip-peer", "other.example",
        ]
    )
    check_options(options)
    settings = sip_settings(options)
    assert settings.enabled and settings.stream_endpoints == ["tcp:0:interface=127.0.0.1"] and settings.udp_port == 0
    assert settings.domains == ["example.com", "example.net"]
    assert [peer.domain for peer in settings.peers] == ["partner.example", "other.example"]

    plain = Options()
    plain.parseOptions(["--db", str(tmp_path / "msnp.sqlite")])
    assert not sip_settings(plain).enabled

    wrong = Options()
    wrong.parseOptions(["--db", str(tmp_path / "msnp.sqlite"), "--sip", "tcp:5060"])
    with pytest.raises(usage.UsageError, match="--sip-domain"):
        check_options(wrong)


def test_sip_options_are_in_twistd_help():
    from msnp.tap import Options

    text = str(Options())
    for option in ("--sip=", "--sip-udp=", "--sip-domain=", "--sip-peer=", "--sip-ca="):
        assert option in text
