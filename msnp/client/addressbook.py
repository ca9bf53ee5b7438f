"""
The contact lists of an MSNP13+ user, read as Windows Live Messenger reads
them: C{FindMembership} of the Sharing service (who I allow, block, and who
has me: AL, BL, RL) and C{ABFindAll} of the address book (my contacts, their
names and groups, and the privacy setting on the "Me" contact), each over
verified TLS with the C{contacts.msn.com} token.  L{initial_adl} is the
C{ADL} payload a client sends the notification server after reading them.
"""

from __future__ import annotations

from typing import Union
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

import attrs

from msnp.client.sso import SSOError, post
from msnp.msn import safexml

NS_AB = "http://www.msn.com/webservices/AddressBook"
SHARING_PATH = "/abservice/SharingService.asmx"
ADDRESS_BOOK_PATH = "/abservice/abservice.asmx"
# An address book of a few thousand contacts is well under this.
MAX_ANSWER = 8 * 1024 * 1024

_ROLES = {"Allow": "AL", "Block": "BL", "Reverse": "RL", "Pending": "PL"}
# The list bits of ADL and RML: a client names FL, AL and BL; RL and PL
# only come from the server.
LIST_BITS = {"FL": 1, "AL": 2, "BL": 4, "RL": 8, "PL": 16}
_CLIENT_LISTS = ("FL", "AL", "BL")


class AddressBookError(SSOError):
    """
    A web service answered with a fault or with something that is not its
    answer.
    """


@attrs.define
class Entry:
    """
    One person on my lists: which lists, the name I gave them, their groups
    (GUIDs).
    """

    handle: str
    lists: set = attrs.Factory(set)
    name: str = ""
    groups: set = attrs.Factory(set)


@attrs.define
class AddressBook:
    """
    What the web services say: the entries by handle, the groups (GUID →
    name), my own name and privacy setting (C{AL}: everyone else may see
    me, C{BL}: only my allow list).
    """

    entries: dict = attrs.Factory(dict)
    groups: dict = attrs.Factory(dict)
    my_name: str = ""
    blp: str = "AL"

    def entry(self, handle: str) -> Entry:
        handle = handle.lower()
        if handle not in self.entries:
            self.entries[handle] = Entry(handle)
        return self.entries[handle]


def service_url(nexus: str, path: str) -> str:
    """
    A web service's address on the Passport site named by C{nexus}.
    """
    parts = urlsplit(nexus)
    return urlunsplit((parts.scheme or "https", parts.netloc, path, "", ""))


def request(action: str, token: str, inner: str = "", scenario: str = "Initial") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soap:Header><ABApplicationHeader xmlns="{NS_AB}">'
        "<ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId><IsMigration>false</IsMigration>"
        f"<PartnerScenario>{scenario}</PartnerScenario></ABApplicationHeader>"
        f'<ABAuthHeader xmlns="{NS_AB}"><ManagedGroupRequest>false</ManagedGroupRequest>'
        f"<TicketToken>{escape(token)}</TicketToken></ABAuthHeader></soap:Header>"
        f'<soap:Body><{action} xmlns="{NS_AB}">{inner}</{action}></soap:Body></soap:Envelope>'
    ).encode("utf-8")


async def _call(reactor, url: str, action: str, token: str, inner: str, trust):
    code, data = await post(reactor, url, request(action, token, inner), trust, f"{NS_AB}/{action}")
    root = safexml.parse_xml(data, AddressBookError, MAX_ANSWER)
    fault = safexml.find(root, "Fault")
    if code != 200 or fault is not None:
        raise AddressBookError(f"{action} answered {code}: {fault_reason(fault)}")
    return root


def fault_reason(fault) -> str:
    """
    What a SOAP fault says: its error code (the web services' own, or the
    SOAP one) and text.
    """
    code = safexml.text(safexml.find(fault, "errorcode")) or safexml.text(safexml.find(fault, "faultcode"))
    text = safexml.text(safexml.find(fault, "faultstring"))
    return " ".join(part for part in (code, text) if part) or "no reason given"


def read_memberships(root, book: AddressBook) -> None:
    for item in root.iter():
        if safexml.local(item.tag) != "Membership":
            continue
        lst = _ROLES.get(safexml.text(safexml.child(item, "MemberRole")))
        if lst is None:
            continue
        for member in safexml.children(safexml.child(item, "Members"), "Member"):
            handle = safexml.text(safexml.child(member, "PassportName"))
            if handle and safexml.text(safexml.child(member, "Deleted")) != "true":
                book.entry(handle).lists.add(lst)


def read_address_book(root, book: AddressBook) -> None:
    for group in root.iter():
        if safexml.local(group.tag) != "Group":
            continue
        guid = safexml.text(safexml.child(group, "groupId"))
        name = safexml.text(safexml.path(group, "groupInfo", "name"))
        if guid:
            book.groups[guid] = name
    for contact in root.iter():
        if safexml.local(contact.tag) != "Contact":
            continue
        info = safexml.child(contact, "contactInfo")
        kind = safexml.text(safexml.child(info, "contactType"))
        if kind == "Me":
            book.my_name = safexml.text(safexml.child(info, "displayName"))
            for annotation in safexml.children(safexml.child(info, "annotations"), "Annotation"):
                if safexml.text(safexml.child(annotation, "Name")) == "MSN.IM.BLP":
                    book.blp = "BL" if safexml.text(safexml.child(annotation, "Value")) == "2" else "AL"
            continue
        handle = safexml.text(safexml.child(info, "passportName"))
        if not handle or safexml.text(safexml.child(info, "isMessengerUser")) == "false":
            continue
        entry = book.entry(handle)
        entry.lists.add("FL")
        entry.name = safexml.text(safexml.child(info, "displayName")) or handle
        entry.groups = {safexml.text(g) for g in safexml.children(safexml.child(info, "groupIds"), "guid")}


async def fetch(reactor, nexus: str, token: str, trust: Union[None, str, bytes] = None) -> AddressBook:
    """
    My lists as the Sharing service and the address book on the Passport
    site named by C{nexus} give them.
    """
    book = AddressBook()
    services = '<serviceFilter><Types><ServiceType>Messenger</ServiceType></Types></serviceFilter>'
    root = await _call(reactor, service_url(nexus, SHARING_PATH), "FindMembership", token, services, trust)
    read_memberships(root, book)
    inner = "<abId>00000000-0000-0000-0000-000000000000</abId><abView>Full</abView><deltasOnly>false</deltasOnly>"
    root = await _call(reactor, service_url(nexus, ADDRESS_BOOK_PATH), "ABFindAll", token, inner, trust)
    read_address_book(root, book)
    return book


def render_ml(entries, initial: bool = False) -> bytes:
    """
    The C{<ml>} document of ADL or RML for (handle, bits) C{entries}, one
    C{<d>} per domain in the order they first appear; C{l="1"} on the root
    marks the initial dump.
    """
    domains: dict[str, list[str]] = {}
    for handle, bits in entries:
        user, _, host = handle.rpartition("@")
        domains.setdefault(host, []).append(f'<c n={quoteattr(user)} l="{bits}" t="1"/>')
    body = "".join(f"<d n={quoteattr(host)}>{''.join(items)}</d>" for host, items in domains.items())
    return (('<ml l="1">' if initial else "<ml>") + body + "</ml>").encode("utf-8")


def initial_adl(book: AddressBook) -> bytes:
    """
    The C{ADL} payload of the initial dump: every contact on FL, AL or BL
    with its bits, marked C{l="1"}.
    """
    entries = []
    for entry in sorted(book.entries.values(), key=lambda e: e.handle):
        bits = sum(LIST_BITS[lst] for lst in _CLIENT_LISTS if lst in entry.lists)
        if bits:
            entries.append((entry.handle, bits))
    return render_ml(entries, initial=True)


def adl(handle: str, lists) -> bytes:
    """
    The C{ADL} (or C{RML}) payload putting C{handle} on (or off) C{lists}.
    """
    return render_ml([(handle.lower(), sum(LIST_BITS[lst] for lst in lists))])
