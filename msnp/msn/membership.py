"""
The XML of MSNP13+ list commands: C{ADL}/C{RML} (list membership) and
C{FQY} (which network a contact is on), read from clients and written
back, without I/O.

    <ml l="1"><d n="example.com"><c n="bob" l="3" t="1"/></d></ml>

One C{<d>} per domain, one C{<c>} per local part, C{l} the list bits
(FL=1, AL=2, BL=4; RL=8 and PL=16 only ever come from the server), C{t}
the network (1: Windows Live, the only one served here).  C{l="1"} on the
root marks the client's initial dump of the lists it synchronised over
SOAP.
"""

from __future__ import annotations

from typing import Optional
from xml.sax.saxutils import quoteattr

import attrs

from msnp.msn import errors, safexml, wire
from msnp.store.records import canonical_handle

FL, AL, BL, RL, PL = 1, 2, 4, 8, 16
LIST_BITS = {"FL": FL, "AL": AL, "BL": BL}
CLIENT_BITS = FL | AL | BL
WINDOWS_LIVE = 1
# Network ids a client may name (Escargot's table): anything else is 204.
KNOWN_NETWORKS = frozenset({1, 2, 4, 8, 9, 16, 32})


class ListPayloadError(ValueError):
    """
    A payload refused with error C{code}, closing the connection when
    C{close} is set.
    """

    def __init__(self, code: int, reason: str, close: bool = False):
        super().__init__(reason)
        self.code = code
        self.close = close


@attrs.frozen
class ListEntry:
    handle: str
    bits: int = 0
    network: int = WINDOWS_LIVE


def _number(value: Optional[str], reason: str) -> Optional[int]:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 9:
        raise ListPayloadError(errors.INVALID_XML, reason, close=True)
    return int(value)


def parse(payload: bytes, with_bits: bool = True) -> tuple[bool, list[ListEntry]]:
    """
    Whether the payload is an initial dump (C{l="1"} on the root) and its
    entries, in order.  With C{with_bits} (ADL, RML) every contact needs
    list bits, and only FL, AL and BL; without (FQY) they are ignored.
    Raises L{ListPayloadError}: 241 (and a close) for XML that is bad or
    not this shape, 240 (and a close) for a domain with no contact, 204 for
    a network this server does not serve, 201 for a name that is no
    handle.
    """
    try:
        root = safexml.parse_xml(payload)
    except safexml.MalformedXML as e:
        raise ListPayloadError(errors.INVALID_XML, f"bad list XML: {e}", close=True)
    if safexml.local(root.tag) != "ml":
        raise ListPayloadError(errors.INVALID_XML, "root is not ml", close=True)
    initial = root.get("l") == "1"
    entries = []
    for domain in root:
        kind = safexml.local(domain.tag)
        if kind == "t":
            # Telephone contacts (papyon): no network here serves them.
            raise ListPayloadError(errors.INVALID_NETWORK, "telephone contacts are not served")
        if kind != "d":
            raise ListPayloadError(errors.INVALID_XML, f"unexpected element {kind!r}", close=True)
        host = domain.get("n")
        contacts = list(domain)
        if not host:
            raise ListPayloadError(errors.INVALID_XML, "domain without a name", close=True)
        if not contacts:
            raise ListPayloadError(errors.EMPTY_DOMAIN, f"no contact in {host}", close=True)
        for contact in contacts:
            if safexml.local(contact.tag) != "c" or not contact.get("n"):
                raise ListPayloadError(errors.INVALID_XML, "contact without a name", close=True)
            bits = _number(contact.get("l"), "list bits are not a number")
            network = _number(contact.get("t"), "network id is not a number")
            if with_bits:
                if bits is None or bits == 0 or bits & ~CLIENT_BITS:
                    raise ListPayloadError(errors.INVALID_XML, f"list bits {bits} refused from a client", close=True)
            network = WINDOWS_LIVE if network is None else network
            if network not in KNOWN_NETWORKS:
                raise ListPayloadError(errors.INVALID_NETWORK, f"unknown network {network}")
            handle = f"{contact.get('n')}@{host}"
            if not wire.is_valid_handle(handle):
                raise ListPayloadError(errors.INVALID_PARAMETER, "contact is not a handle")
            entries.append(ListEntry(canonical_handle(handle), bits or 0, network))
    return initial, entries


def render(entries, initial: bool = False, names: Optional[dict] = None, with_bits: bool = True) -> bytes:
    """
    The C{<ml>} document for C{entries}, grouped by domain in the order the
    domains first appear; C{names} adds C{f} (the URL-encoded friendly
    name) to the contacts named in it.
    """
    domains: dict[str, list[str]] = {}
    for entry in entries:
        user, _, host = entry.handle.rpartition("@")
        attributes = f"n={quoteattr(user)}"
        if with_bits:
            attributes += f' l="{entry.bits}"'
        attributes += f' t="{entry.network}"'
        if names and entry.handle in names:
            attributes += f" f={quoteattr(wire.url_encode(names[entry.handle]))}"
        domains.setdefault(host, []).append(f"<c {attributes}/>")
    body = "".join(f"<d n={quoteattr(host)}>{''.join(items)}</d>" for host, items in domains.items())
    head = '<ml l="1">' if initial else "<ml>"
    return f"{head}{body}</ml>".encode("utf-8")
