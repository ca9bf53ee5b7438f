"""
The C{--sip*} command-line options turned into L{SipSettings}: C{--sip
ENDPOINT} (tcp: or ssl:, repeatable), C{--sip-udp PORT[:interface=ADDR]},
C{--sip-domain DOMAIN} and C{--sip-peer DOMAIN[=URI]} (both repeatable),
C{--sip-ca PEM} (mutual TLS).
Every mistake is a L{SipOptionError} naming the option, before anything
listens.
"""

from __future__ import annotations

import re

from msnp.sip.grammar import is_decimal
from msnp.sip.edge import SipSettings
from msnp.sip.peers import PeerOptionError, parse_peer_option
from msnp.sip.tls import TlsSettingError, parse_ssl_description

_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9\-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]*[a-z0-9])?)*$")


class SipOptionError(ValueError):
    pass


def parse_udp(text: str) -> tuple[int, str]:
    """
    C{PORT} or C{PORT:interface=ADDR} (default interface 127.0.0.1, as
    the other listeners).
    """
    port_text, _, rest = text.partition(":")
    interface = "127.0.0.1"
    if rest:
        key, eq, value = rest.partition("=")
        if key != "interface" or not eq or not value:
            raise SipOptionError(f"--sip-udp: expected PORT[:interface=ADDR], got {text!r}")
        interface = value
    if not is_decimal(port_text) or int(port_text) > 65535:
        raise SipOptionError(f"--sip-udp: bad port {port_text!r}")
    return int(port_text), interface


def settings_from_options(streams, udp, domains, peers, public_host: str, tls_ca=None) -> SipSettings:
    """
    The edge's settings; SIP is off (C{enabled} false) when neither
    C{--sip} nor C{--sip-udp} is given.  TLS is mutual: an ssl: listener
    or a tls peer needs C{--sip-ca}, and a tls peer an ssl: listener (whose
    certificate we present).
    """
    for description in streams:
        if not description.startswith(("tcp:", "ssl:", "tcp6:")):
            raise SipOptionError(f"--sip: a tcp: or ssl: endpoint, got {description!r}")
        if description.startswith("ssl:"):
            if not tls_ca:
                raise SipOptionError("--sip ssl: needs --sip-ca (peers are known by their certificates)")
            try:
                parse_ssl_description(description)
            except TlsSettingError as error:
                raise SipOptionError(f"--sip: {error}")
    has_tls_listener = any(d.startswith("ssl:") for d in streams)
    if tls_ca and not has_tls_listener:
        raise SipOptionError("--sip-ca without an --sip ssl: listener (its certificate is the one presented)")
    udp_port, interface = parse_udp(udp) if udp else (None, "127.0.0.1")
    clean_domains = []
    for domain in domains:
        domain = domain.strip().lower()
        if not _DOMAIN.match(domain):
            raise SipOptionError(f"--sip-domain: bad domain {domain!r}")
        clean_domains.append(domain)
    parsed = []
    for text in peers:
        try:
            peer = parse_peer_option(text)
        except PeerOptionError as error:
            raise SipOptionError(f"--sip-peer: {error}")
        if peer.domain in clean_domains:
            raise SipOptionError(f"--sip-peer: {peer.domain} is one of our own --sip-domain")
        if peer.transport == "tls" and not has_tls_listener:
            raise SipOptionError(f"--sip-peer: {peer.domain} over TLS needs an --sip ssl: listener and --sip-ca")
        parsed.append(peer)
    settings = SipSettings(
        domains=clean_domains,
        peers=parsed,
        stream_endpoints=list(streams),
        udp_port=udp_port,
        udp_interface=interface,
        public_host=public_host,
        tls_ca=tls_ca or None,
    )
    if settings.enabled and not clean_domains:
        raise SipOptionError("--sip/--sip-udp need at least one --sip-domain")
    return settings
