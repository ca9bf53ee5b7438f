"""
Mutual TLS between federated SIP servers, as OCS public IM connectivity
ran it (server to server, both sides presenting certificates).

C{--sip ssl:PORT:privateKey=KEY:certKey=CERT} gives the key and
certificate this server presents, both to peers connecting to it and when
it connects to peers; C{--sip-ca PEM} the authorities whose certificates
are trusted.  A peer connecting without a certificate from them is
refused in the handshake; a connection to a peer whose certificate does
not name it fails.
"""

from __future__ import annotations

import re
from typing import Optional

import attrs
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS, trustRootFromCertificates

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class TlsSettingError(ValueError):
    pass


@attrs.frozen
class TlsListener:
    """
    What an C{ssl:} endpoint description names.
    """

    port: int
    interface: str = ""
    backlog: Optional[int] = None
    private_key: str = "server.pem"
    certificate: str = ""

    @property
    def certificate_path(self) -> str:
        return self.certificate or self.private_key


_KNOWN_KEYS = {"port", "interface", "backlog", "privateKey", "certKey"}


def parse_ssl_description(description: str) -> TlsListener:
    """
    C{ssl:PORT[:interface=ADDR][:backlog=N]:privateKey=KEY[:certKey=CERT]}
    (Twisted's syntax, backslash-escaped colons in values).
    """
    parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", description)]
    if parts[0] != "ssl" or len(parts) < 2:
        raise TlsSettingError(f"not an ssl: endpoint: {description!r}")
    values = {}
    positional = []
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq:
            if key not in _KNOWN_KEYS:
                raise TlsSettingError(f"{key}= is not supported with --sip-ca in {description!r}")
            values[key] = value
        else:
            positional.append(part)
    port_text = values.get("port") or (positional[0] if positional else "")
    if len(positional) > 1 or not port_text.isdigit() or int(port_text) > 65535:
        raise TlsSettingError(f"bad port in {description!r}")
    backlog = values.get("backlog")
    if backlog is not None and not backlog.isdigit():
        raise TlsSettingError(f"bad backlog in {description!r}")
    return TlsListener(
        int(port_text),
        values.get("interface", ""),
        int(backlog) if backlog is not None else None,
        values.get("privateKey", "server.pem"),
        values.get("certKey", ""),
    )


def load_authorities(path: str) -> list[Certificate]:
    with open(path, "rb") as f:
        data = f.read()
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise TlsSettingError(f"no certificate in {path}")
    return [Certificate.loadPEM(block) for block in blocks]


class FederationTls:
    """
    One server's identity (key and certificate) and the authorities it
    trusts, as Twisted TLS options both ways.
    """

    def __init__(self, key_path: str, certificate_path: str, ca_path: str):
        try:
            with open(key_path, "rb") as f:
                key = f.read()
            with open(certificate_path, "rb") as f:
                certificate = f.read()
            self.identity = PrivateCertificate.loadPEM(key + b"\n" + certificate)
            self.authorities = load_authorities(ca_path)
        except (OSError, ValueError) as error:
            raise TlsSettingError(str(error))
        except Exception as error:  # pyOpenSSL's errors name no common base
            raise TlsSettingError(f"cannot load the key, certificate or authorities: {error}")

    def server_options(self):
        """
        For listening: present our certificate, require one from the
        authorities.
        """
        return self.identity.options(*self.authorities)

    def client_options(self, name: str):
        """
        For connecting to the peer that must be C{name}: present our
        certificate, and check theirs names C{name} and is from the
        authorities.
        """
        return optionsForClientTLS(name, trustRoot=trustRootFromCertificates(self.authorities), clientCertificate=self.identity)
