"""
The address book (C{abservice.asmx}) and Sharing (C{SharingService.asmx})
web services of MSNP13+ clients, over the core's contact lists.

The address book is the forward list with its groups, plus the "Me"
contact carrying the user's own settings; Sharing's memberships are the
allow, block and reverse lists (nobody is ever pending here).  Every edit
goes through L{msnp.core.lists.ContactLists}, so what a WLM user changes
here reaches users of every dialect (an MSNP7 user sees the reverse-list
change, and the other way round), and is committed before it is
answered.  Contacts and groups are named by the GUIDs MSNP10+ already
uses (L{msnp.msn.dialects.contact_id}, L{msnp.msn.dialects.group_guid}).

Requests asking for changes only (C{deltasOnly}) get the whole book:
libpurple treats any fault there but C{ABDoesNotExist} as fatal.
"""

from __future__ import annotations

import hashlib
import struct
import time
from xml.sax.saxutils import escape

from twisted.internet.defer import Deferred, succeed

from msnp.core import errors as core_errors
from msnp.msn import dialects, safexml, wire
from msnp.msn.soap import NS_AB, SOAPFault, SOAPService, new_cache_key
from msnp.store.records import canonical_handle

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
GROUP_TYPE = "c8529ce2-6ead-434d-881f-341e17db3ff8"
ROLE_LISTS = {"Allow": "AL", "Block": "BL", "Reverse": "RL"}
_OPPOSITE = {"AL": "BL", "BL": "AL"}
BLP_VALUES = {"AL": "1", "BL": "2"}
GTC_VALUES = {"A": "1", "N": "2"}


def cid(handle: str) -> int:
    """
    The account's CID: a stable signed 64-bit number derived from the
    handle (clients only compare it).
    """
    return struct.unpack("<q", hashlib.sha256(canonical_handle(handle).encode("utf-8")).digest()[:8])[0]


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _annotation(name: str, value: str) -> str:
    return f"<Annotation><Name>{name}</Name><Value>{escape(value)}</Value></Annotation>"


def _bool(value: bool) -> str:
    return "true" if value else "false"


_CONTACT_TAIL = (
    "<IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled>"
    "<isMessengerUser>{messenger}</isMessengerUser><isFavorite>false</isFavorite><isSmtp>false</isSmtp>"
    "<hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState><birthdate>0001-01-01T00:00:00</birthdate>"
    "<primaryEmailType>ContactEmailPersonal</primaryEmailType><PrimaryLocation>ContactLocationPersonal</PrimaryLocation>"
    "<PrimaryPhone>ContactPhonePersonal</PrimaryPhone><IsPrivate>false</IsPrivate><Gender>Unspecified</Gender>"
    "<TimeZone>None</TimeZone>"
)


def _contact(contact_guid: str, info: str, changed: str) -> str:
    return (
        f"<Contact><contactId>{contact_guid}</contactId><contactInfo>{info}</contactInfo>"
        f"<propertiesChanged /><fDeleted>false</fDeleted><lastChange>{changed}</lastChange></Contact>"
    )


def me_contact(user, changed: str) -> str:
    """
    The "Me" contact: the user's name and CID, and the privacy settings
    as annotations (MSN.IM.BLP 1 = allow, 2 = block; MSN.IM.GTC).
    """
    annotations = (
        _annotation("MSN.IM.MBEA", "0")
        + _annotation("MSN.IM.GTC", GTC_VALUES.get(user.gtc, "0"))
        + _annotation("MSN.IM.BLP", BLP_VALUES.get(user.blp, "0"))
    )
    name = escape(user.friendly_name)
    info = (
        f"<annotations>{annotations}</annotations><contactType>Me</contactType><quickName>{name}</quickName>"
        f"<passportName>{escape(user.handle)}</passportName><IsPassportNameHidden>false</IsPassportNameHidden>"
        f"<displayName>{name}</displayName><puid>0</puid><CID>{cid(user.handle)}</CID>"
        + _CONTACT_TAIL.format(messenger="false")
    )
    return _contact(dialects.contact_id(user.handle, user.handle), info, changed)


def forward_contact(user, contact: str, changed: str) -> str:
    owner = user.handle
    name = escape(user.lists["FL"].get(contact, contact))
    groups = sorted(g for g in user.memberships.get(contact, ()) if g != 0 and g in user.groups)
    group_ids = ""
    if groups:
        group_ids = "<groupIds>" + "".join(f"<guid>{dialects.group_guid(owner, g)}</guid>" for g in groups) + "</groupIds>"
    info = (
        f"<contactType>Regular</contactType><quickName>{name}</quickName>"
        f"<passportName>{escape(contact)}</passportName><IsPassportNameHidden>false</IsPassportNameHidden>"
        f"<displayName>{name}</displayName><puid>0</puid>{group_ids}<CID>{cid(contact)}</CID>"
        + _CONTACT_TAIL.format(messenger="true")
    )
    return _contact(dialects.contact_id(owner, contact), info, changed)


def group_entry(user, group_id: int, changed: str) -> str:
    return (
        f"<Group><groupId>{dialects.group_guid(user.handle, group_id)}</groupId><groupInfo>"
        f"<annotations>{_annotation('MSN.IM.Display', '1')}</annotations><groupType>{GROUP_TYPE}</groupType>"
        f"<name>{escape(user.groups[group_id])}</name><IsNotMobileVisible>false</IsNotMobileVisible>"
        "<IsPrivate>false</IsPrivate><IsFavorite>false</IsFavorite></groupInfo>"
        f"<propertiesChanged /><fDeleted>false</fDeleted><lastChange>{changed}</lastChange></Group>"
    )


def ab_info(user, changed: str, tag: str = "ab") -> str:
    return (
        f"<{tag}><abId>{EMPTY_GUID}</abId><abInfo><ownerPuid>0</ownerPuid><OwnerCID>{cid(user.handle)}</OwnerCID>"
        f"<ownerEmail>{escape(user.handle)}</ownerEmail><fDefault>true</fDefault><joinedNamespace>false</joinedNamespace>"
        "<IsBot>false</IsBot><IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false</SubscribeExternalPartner>"
        "<NotifyExternalPartner>false</NotifyExternalPartner><AddressBookType>Individual</AddressBookType></abInfo>"
        f"<lastChange>{changed}</lastChange><DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged>"
        f"<createDate>2003-01-01T00:00:00</createDate><propertiesChanged /></{tag}>"
    )


def address_book(user, changed: str, paged: bool = False) -> str:
    """
    The result of ABFindAll (or, with C{paged}, ABFindContactsPaged, whose
    element names are capitalised and which adds an empty CircleResult).
    """
    groups = "".join(group_entry(user, g, changed) for g in sorted(user.groups) if g != 0)
    contacts = "".join(forward_contact(user, c, changed) for c in user.lists["FL"]) + me_contact(user, changed)
    if paged:
        return (
            f'<ABFindContactsPagedResponse xmlns="{NS_AB}"><ABFindContactsPagedResult>'
            f"<Groups>{groups}</Groups><Contacts>{contacts}</Contacts>"
            "<CircleResult><Circles /></CircleResult>"
            f"{ab_info(user, changed, 'Ab')}</ABFindContactsPagedResult></ABFindContactsPagedResponse>"
        )
    return (
        f'<ABFindAllResponse xmlns="{NS_AB}"><ABFindAllResult>'
        f"<groups>{groups}</groups><contacts>{contacts}</contacts>{ab_info(user, changed)}"
        "</ABFindAllResult></ABFindAllResponse>"
    )


def _member(role: str, user, contact: str, changed: str) -> str:
    return (
        f'<Member xsi:type="PassportMember"><MembershipId>{role}/{dialects.contact_id(user.handle, contact)}</MembershipId>'
        f"<Type>Passport</Type><State>Accepted</State><Deleted>false</Deleted><LastChanged>{changed}</LastChanged>"
        f"<JoinedDate>{changed}</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Changes />"
        f"<PassportName>{escape(contact)}</PassportName><IsPassportNameHidden>false</IsPassportNameHidden>"
        f"<PassportId>0</PassportId><CID>{cid(contact)}</CID><PassportChanges /><LookedupByCID>false</LookedupByCID></Member>"
    )


def memberships(user, changed: str) -> str:
    """
    The result of FindMembership: the Messenger service's Allow, Block,
    Reverse and Pending memberships.  Pending is who added the user and
    awaits an answer: on the reverse list, on neither the allow nor the
    block list (what MSNP2-12 clients work out for themselves; WLM and
    libpurple ask the user about Pending members).
    """
    lists = user.lists
    pending = [c for c in lists["RL"] if c not in lists["AL"] and c not in lists["BL"]]
    parts = []
    for role, lst in (*ROLE_LISTS.items(), ("Pending", None)):
        members = "".join(_member(role, user, c, changed) for c in (lists[lst] if lst else pending))
        parts.append(
            f"<Membership><MemberRole>{role}</MemberRole><Members>{members}</Members>"
            "<MembershipIsComplete>true</MembershipIsComplete></Membership>"
        )
    return (
        f'<FindMembershipResponse xmlns="{NS_AB}"><FindMembershipResult><Services><Service>'
        f"<Memberships>{''.join(parts)}</Memberships>"
        "<Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId /></Handle><InverseRequired>false</InverseRequired>"
        "<AuthorizationCriteria>Everyone</AuthorizationCriteria><IsBot>false</IsBot></Info>"
        f"<Changes /><LastChange>{changed}</LastChange><Deleted>false</Deleted></Service></Services>"
        f"<OwnerNamespace><Info><Handle><Id>{EMPTY_GUID}</Id><IsPassportNameHidden>false</IsPassportNameHidden><CID>0</CID></Handle>"
        f"<CreatorPuid>0</CreatorPuid><CreatorCID>{cid(user.handle)}</CreatorCID>"
        f"<CreatorPassportName>{escape(user.handle)}</CreatorPassportName>"
        "<CircleAttributes><IsPresenceEnabled>false</IsPresenceEnabled><Domain>WindowsLive</Domain></CircleAttributes>"
        "<MessengerApplicationServiceCreated>false</MessengerApplicationServiceCreated></Info>"
        f"<Changes /><CreateDate>2003-01-01T00:00:00</CreateDate><LastChange>{changed}</LastChange></OwnerNamespace>"
        "</FindMembershipResult></FindMembershipResponse>"
    )


def _result(name: str, inner: str = "") -> str:
    if not inner:
        return f'<{name}Response xmlns="{NS_AB}" />'
    return f'<{name}Response xmlns="{NS_AB}"><{name}Result>{inner}</{name}Result></{name}Response>'


def _fault_for(failure, **codes):
    """
    The core's refusals as the address book's faults (C{codes}: the
    refusal's class name → (errorcode, text)).
    """
    error = failure.value
    for kind, (errorcode, text) in codes.items():
        if type(error).__name__ == kind:
            raise SOAPFault(errorcode, text)
    if isinstance(error, core_errors.ListFull):
        raise SOAPFault("QuotaLimitReached", "List is full")
    if isinstance(error, core_errors.TooManyGroups):
        raise SOAPFault("QuotaLimitReached", "Too many groups")
    return failure


def parse_email(text: str) -> str:
    """
    A passport name from a request, or the fault clients expect for it.
    """
    if "@" not in text:
        raise SOAPFault("BadEmailArgument", "Malformed email Argument Email missing '@' character")
    if not wire.handle_has_domain(text):
        raise SOAPFault("BadEmailArgument", "Malformed email Argument Email missing '.' character")
    if not wire.is_valid_handle(text):
        raise SOAPFault("InvalidPassportUser", f"The Passport user specified is invalid SignInName: {text}")
    return canonical_handle(text)


class _ListsService(SOAPService):
    """
    What the two services share: finding the caller's lists and the
    service header.
    """

    def __init__(self, service_tokens, clock, messenger, config):
        super().__init__(service_tokens, clock)
        self._messenger = messenger
        self._config = config

    def header(self) -> str:
        return (
            f'<ServiceHeader xmlns="{NS_AB}"><Version>15.01.1408.0000</Version>'
            f"<CacheKey>12r1:{new_cache_key()}</CacheKey><CacheKeyChanged>true</CacheKeyChanged>"
            f"<PreferredHostName>{escape(self._config.passport_site)}</PreferredHostName>"
            f"<SessionId>{new_cache_key()[:16]}</SessionId></ServiceHeader>"
        )

    def _me(self, handle: str) -> Deferred:
        def found(me):
            if me is None:
                raise SOAPFault("ABDoesNotExist", "Address book does not exist")
            return me

        return self._messenger.service_user(handle).addCallback(found)

    def _now(self) -> str:
        return _timestamp(self._clock.seconds())

    def _contact_by_guid(self, user, contact_guid: str) -> str:
        contact = dialects.find_contact(user, contact_guid) if contact_guid else None
        if contact is None or contact not in user.lists["FL"]:
            raise SOAPFault("ContactDoesNotExist", "Contact does not exist")
        return contact

    def _group_by_guid(self, user, guid: str) -> int:
        group_id = dialects.find_group(user, guid) if guid else None
        if group_id is None or group_id == 0:
            raise SOAPFault("GroupDoesNotExist", "Group does not exist")
        return group_id


def _chain(steps) -> Deferred:
    """
    Run the callables in C{steps} one after the other (each may return a
    Deferred); fires when the last is done.
    """
    d = succeed(None)
    for step in steps:
        d.addCallback(lambda _, step=step: step())
    return d


class SharingService(_ListsService):
    """
    C{/abservice/SharingService.asmx}: FindMembership, AddMember,
    DeleteMember.
    """

    def op_FindMembership(self, handle, operation):
        return self._me(handle).addCallback(lambda me: memberships(me.user, self._now()))

    def _members(self, operation) -> list[tuple[str, list[str]]]:
        """
        (role, [passport name or membership id]) per Membership.
        """
        found = []
        container = safexml.child(operation, "memberships")
        for membership in safexml.children(container, "Membership"):
            role = safexml.text(safexml.child(membership, "MemberRole"))
            names = []
            for member in safexml.children(safexml.child(membership, "Members"), "Member"):
                name = safexml.text(safexml.child(member, "PassportName"))
                names.append(name or "#" + safexml.text(safexml.child(member, "MembershipId")))
            found.append((role, names))
        if not found:
            raise SOAPFault("BadArgument", "No membership named")
        return found

    def _member_handle(self, user, role: str, name: str) -> str:
        if name.startswith("#"):
            # Role/contact-guid, as FindMembership wrote it.
            guid = name[1:].partition("/")[2]
            contact = dialects.find_contact(user, guid)
            if contact is None:
                raise SOAPFault("MemberDoesNotExist", "Member does not exist")
            return contact
        return parse_email(name)

    def _edited_members(self, user, requested):
        """
        (list, contact) for each member of an AddMember or DeleteMember
        request whose role is kept here (Allow, Block); Reverse and Pending
        are acknowledgements and change nothing.
        """
        for role, names in requested:
            if role in ("Reverse", "Pending"):
                continue
            lst = ROLE_LISTS.get(role)
            if lst not in ("AL", "BL"):
                raise SOAPFault("BadArgument", f"Role {role} cannot be edited")
            for name in names:
                yield lst, self._member_handle(user, role, name)

    def op_AddMember(self, handle, operation):
        """
        Allow or block (moving the contact off the opposite list first);
        Reverse and Pending are acknowledgements of someone who added the
        user and change nothing kept here.
        """
        requested = self._members(operation)

        def edit(me):
            user = me.user
            lists = self._messenger.lists
            steps = []
            for lst, contact in self._edited_members(user, requested):

                def add(lst=lst, contact=contact):
                    if contact in user.lists[lst]:
                        return None
                    first = succeed(None)
                    if contact in user.lists[_OPPOSITE[lst]]:
                        first = lists.remove(me, _OPPOSITE[lst], contact)
                    return first.addCallback(lambda _: lists.add(me, lst, contact, contact))

                steps.append(add)
            return _chain(steps).addCallbacks(
                lambda _: _result("AddMember"),
                lambda f: _fault_for(f, NoSuchUser=("UserDoesNotExist", "User does not exist")),
            )

        return self._me(handle).addCallback(edit)

    def op_DeleteMember(self, handle, operation):
        requested = self._members(operation)

        def edit(me):
            user = me.user
            lists = self._messenger.lists
            steps = []
            for lst, contact in self._edited_members(user, requested):
                if contact not in user.lists[lst]:
                    raise SOAPFault("MemberDoesNotExist", "Member does not exist")
                steps.append(lambda lst=lst, contact=contact: lists.remove(me, lst, contact) if contact in user.lists[lst] else None)
            return _chain(steps).addCallbacks(lambda _: _result("DeleteMember"), _fault_for)

        return self._me(handle).addCallback(edit)


class AddressBookService(_ListsService):
    """
    C{/abservice/abservice.asmx}: the forward list, its groups and the
    user's own contact.
    """

    def op_ABFindAll(self, handle, operation):
        return self._me(handle).addCallback(lambda me: address_book(me.user, self._now()))

    def op_ABFindContactsPaged(self, handle, operation):
        return self._me(handle).addCallback(lambda me: address_book(me.user, self._now(), paged=True))

    def op_ABAdd(self, handle, operation):
        # Every account has its book; asking for it again changes nothing.
        return self._me(handle).addCallback(lambda me: _result("ABAdd", EMPTY_GUID))

    def op_ABContactAdd(self, handle, operation):
        """
        Add the contact to the forward list (group 0 holds it for older
        dialects), and to the allow list when the client asks the service
        to manage it; answers the contact's GUID.
        """
        contact_element = safexml.path(operation, "contacts", "Contact")
        info = safexml.child(contact_element, "contactInfo")
        contact = parse_email(safexml.text(safexml.child(info, "passportName")))
        manage_allow = safexml.text(safexml.path(operation, "options", "EnableAllowListManagement")).lower() == "true"

        def edit(me):
            user = me.user
            owner = user.handle
            contact_guid = dialects.contact_id(owner, contact)
            if contact == owner:
                raise SOAPFault("InvalidPassportUser", "Cannot add oneself")
            if contact in user.lists["FL"]:
                raise SOAPFault("ContactAlreadyExists", "Contact Already Exists", conflict=contact_guid)
            lists = self._messenger.lists
            group = 0 if 0 in user.groups else None
            d = lists.add(me, "FL", contact, contact, group)
            if manage_allow:
                d.addCallback(
                    lambda _: None
                    if contact in user.lists["AL"] or contact in user.lists["BL"]
                    else lists.add(me, "AL", contact, contact)
                )
            return d.addCallbacks(
                lambda _: _result("ABContactAdd", f"<guid>{contact_guid}</guid>"),
                lambda f: _fault_for(
                    f, NoSuchUser=("InvalidPassportUser", f"The Passport user specified is invalid SignInName: {contact}")
                ),
            )

        return self._me(handle).addCallback(edit)

    def op_ABContactDelete(self, handle, operation):
        guids = [safexml.text(safexml.child(c, "contactId")) for c in safexml.children(safexml.child(operation, "contacts"), "Contact")]
        if not guids:
            raise SOAPFault("BadArgument", "No contact named")

        def edit(me):
            user = me.user
            contacts = [self._contact_by_guid(user, guid) for guid in guids]
            lists = self._messenger.lists
            steps = [lambda c=c: lists.remove(me, "FL", c) if c in user.lists["FL"] else None for c in contacts]
            return _chain(steps).addCallbacks(lambda _: _result("ABContactDelete"), _fault_for)

        return self._me(handle).addCallback(edit)

    def op_ABContactUpdate(self, handle, operation):
        """
        The Me contact: display name (the friendly name) and the
        MSN.IM.BLP/GTC annotations (the privacy settings).  Another
        contact: its display name.
        """
        updates = safexml.children(safexml.child(operation, "contacts"), "Contact")
        if not updates:
            raise SOAPFault("BadArgument", "No contact named")

        def edit(me):
            user = me.user
            lists = self._messenger.lists
            steps = []
            for contact_element in updates:
                info = safexml.child(contact_element, "contactInfo")
                name_element = safexml.child(info, "displayName")
                contact_type = safexml.text(safexml.child(info, "contactType"))
                guid = safexml.text(safexml.child(contact_element, "contactId"))
                is_me = contact_type == "Me" or guid == dialects.contact_id(user.handle, user.handle)
                if is_me:
                    if name_element is not None and name_element.text:
                        name = _checked_name(name_element.text)
                        steps.append(lambda name=name: lists.set_friendly_name(me, name) if name != user.friendly_name else None)
                    for annotation in safexml.children(safexml.child(info, "annotations"), "Annotation"):
                        key = safexml.text(safexml.child(annotation, "Name"))
                        value = safexml.text(safexml.child(annotation, "Value"))
                        setting = {"MSN.IM.BLP": ("blp", {"1": "AL", "2": "BL"}), "MSN.IM.GTC": ("gtc", {"1": "A", "2": "N"})}.get(key)
                        if setting is None or value not in setting[1]:
                            continue
                        field, mapped = setting[0], setting[1][value]
                        steps.append(
                            lambda field=field, mapped=mapped: lists.set_privacy(me, field, mapped)
                            if getattr(user, field) != mapped
                            else None
                        )
                    continue
                contact = self._contact_by_guid(user, guid)
                if name_element is not None and name_element.text:
                    name = _checked_name(name_element.text)
                    steps.append(lambda contact=contact, name=name: lists.rename_contact(me, contact, name))
            return _chain(steps).addCallbacks(lambda _: _result("ABContactUpdate"), _fault_for)

        return self._me(handle).addCallback(edit)

    def _group_name(self, text: str) -> str:
        name = text.strip()
        if not name:
            raise SOAPFault("BadArgument", "Group name is empty")
        if len(name.encode("utf-8")) > self._config.max_group_name_bytes:
            raise SOAPFault("BadArgumentLength", "Group name too long")
        return name

    def op_ABGroupAdd(self, handle, operation):
        name = self._group_name(safexml.text(safexml.path(operation, "groupInfo", "GroupInfo", "name")))

        def edit(me):
            user = me.user
            if name in user.groups.values():
                raise SOAPFault("GroupAlreadyExists", "Group Already Exists")
            return self._messenger.lists.add_group(me, name).addCallbacks(
                lambda edit: _result("ABGroupAdd", f"<guid>{dialects.group_guid(user.handle, edit.group_id)}</guid>"),
                _fault_for,
            )

        return self._me(handle).addCallback(edit)

    def op_ABGroupUpdate(self, handle, operation):
        groups = safexml.children(safexml.child(operation, "groups"), "Group")
        if not groups:
            raise SOAPFault("BadArgument", "No group named")

        def edit(me):
            user = me.user
            steps = []
            for group in groups:
                group_id = self._group_by_guid(user, safexml.text(safexml.child(group, "groupId")))
                name_element = safexml.path(group, "groupInfo", "name")
                if name_element is None:
                    continue
                name = self._group_name(name_element.text or "")
                steps.append(lambda g=group_id, n=name: self._messenger.lists.rename_group(me, g, n))
            return _chain(steps).addCallbacks(lambda _: _result("ABGroupUpdate"), _fault_for)

        return self._me(handle).addCallback(edit)

    def op_ABGroupDelete(self, handle, operation):
        """
        Delete groups; their contacts stay in the address book (kept in
        group 0, which older dialects show as their catch-all).
        """
        guids = [safexml.text(g) for g in safexml.children(safexml.path(operation, "groupFilter", "groupIds"), "guid")]
        if not guids:
            raise SOAPFault("BadArgument", "No group named")

        def edit(me):
            user = me.user
            group_ids = [self._group_by_guid(user, guid) for guid in guids]
            lists = self._messenger.lists
            steps = []
            for group_id in group_ids:
                for contact, groups in list(user.memberships.items()):
                    if group_id in groups and 0 in user.groups and 0 not in groups:
                        steps.append(lambda c=contact: lists.add_to_group(me, c, 0) if 0 not in user.memberships.get(c, ()) else None)
                steps.append(lambda g=group_id: lists.remove_group(me, g))
            return _chain(steps).addCallbacks(lambda _: _result("ABGroupDelete"), _fault_for)

        return self._me(handle).addCallback(edit)

    def _group_contact_args(self, operation):
        guids = [safexml.text(g) for g in safexml.children(safexml.path(operation, "groupFilter", "groupIds"), "guid")]
        contacts = safexml.children(safexml.child(operation, "contacts"), "Contact")
        if len(guids) != 1 or not contacts:
            raise SOAPFault("BadArgument", "One group and at least one contact must be named")
        return guids[0], contacts

    def op_ABGroupContactAdd(self, handle, operation):
        """
        Put contacts in a group: named by contact id, or by passport name
        (a new contact, added to the forward list in that group).
        """
        guid, contact_elements = self._group_contact_args(operation)

        def edit(me):
            user = me.user
            group_id = self._group_by_guid(user, guid)
            lists = self._messenger.lists
            steps = []
            last = []
            for element in contact_elements:
                contact_guid = safexml.text(safexml.child(element, "contactId"))
                if contact_guid:
                    contact = self._contact_by_guid(user, contact_guid)
                    if group_id in user.memberships.get(contact, ()):
                        continue
                    steps.append(lambda c=contact: lists.add_to_group(me, c, group_id))
                else:
                    contact = parse_email(safexml.text(safexml.path(element, "contactInfo", "passportName")))
                    if contact in user.lists["FL"]:
                        raise SOAPFault("ContactAlreadyExists", "Contact Already Exists", conflict=dialects.contact_id(user.handle, contact))
                    steps.append(lambda c=contact: lists.add(me, "FL", c, c, group_id))
                last.append(contact)
            result = f"<guid>{dialects.contact_id(user.handle, last[-1])}</guid>" if last else ""
            return _chain(steps).addCallbacks(
                lambda _: _result("ABGroupContactAdd", result),
                lambda f: _fault_for(f, NoSuchUser=("InvalidPassportUser", "The Passport user specified is invalid")),
            )

        return self._me(handle).addCallback(edit)

    def op_ABGroupContactDelete(self, handle, operation):
        guid, contact_elements = self._group_contact_args(operation)

        def edit(me):
            user = me.user
            group_id = self._group_by_guid(user, guid)
            lists = self._messenger.lists
            steps = []
            for element in contact_elements:
                contact = self._contact_by_guid(user, safexml.text(safexml.child(element, "contactId")))
                if group_id not in user.memberships.get(contact, ()):
                    raise SOAPFault("ContactDoesNotExist", "Contact is not in the group")
                steps.append(lambda c=contact: lists.remove_from_group(me, c, group_id))
            return _chain(steps).addCallbacks(lambda _: _result("ABGroupContactDelete"), _fault_for)

        return self._me(handle).addCallback(edit)


def _checked_name(text: str) -> str:
    name = text.strip()
    if not name or len(wire.url_encode(name)) > wire.MAX_NAME_BYTES:
        raise SOAPFault("BadArgumentLength", "Name is empty or too long")
    return name
