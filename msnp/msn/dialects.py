"""
What differs between MSNP dialects, kept as data.

Handlers ask the L{Dialect} chosen by VER how a line looks or whether a
command exists; they never compare version numbers themselves.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Optional, Sequence

import attrs

from msnp.core import status as statuses
from msnp.msn import errors, wire

# What a dialect that lacks a command answers it with.
UNKNOWN = "unknown"  # 200, as for any command the dialect never had
CLOSE = "close"  # hang up: the original servers dropped clients sending it


@attrs.frozen
class NSCommand:
    """
    One notification-server command a client may send: the first and last
    dialect that have it (C{last} None: still present in the newest), whether
    the client's line ends with a payload length, and the answer in a
    dialect before C{first} or after C{last} (L{UNKNOWN}, L{CLOSE} or an
    error number).
    """

    first: int
    last: Optional[int] = None
    payload: bool = False
    before: object = UNKNOWN
    after: object = UNKNOWN


_NS_COMMANDS: dict[str, NSCommand] = {
    "VER": NSCommand(2),
    "INF": NSCommand(2, 7, after=CLOSE),
    "CVR": NSCommand(2),
    "USR": NSCommand(2),
    # From MSNP13 the lists live in the SOAP address book and reach the
    # server with ADL/RML: SYN is answered 502 there, GTC hangs up (as
    # Escargot does), the other list commands are unknown.
    "SYN": NSCommand(2, 12, after=errors.COMMAND_DISABLED),
    # Client-initiated LST/LSG ended with MSNP8, ADD and REA with MSNP9.
    "LST": NSCommand(2, 8, after=CLOSE),
    "ADD": NSCommand(2, 9, after=CLOSE),
    "REM": NSCommand(2, 12),
    "GTC": NSCommand(2, 12, after=CLOSE),
    "BLP": NSCommand(2),
    "REA": NSCommand(2, 9, after=CLOSE),
    "CHG": NSCommand(2),
    "XFR": NSCommand(2),
    "PNG": NSCommand(2),
    "OUT": NSCommand(2),
    "URL": NSCommand(2),
    "FND": NSCommand(2),
    "SND": NSCommand(2, 4),
    "IMS": NSCommand(3),
    "PRP": NSCommand(5),
    # SDC t target lcid library client-id X X name length, then the text
    # added to the invitation (length 0: none).
    "SDC": NSCommand(5, payload=True),
    # PAG t handle length: a page to a mobile device; MSNP9 answers 715 and
    # wants PGD t handle device length instead.
    "PAG": NSCommand(5, 8, payload=True, after=errors.NOT_EXPECTED),
    "PGD": NSCommand(9, payload=True),
    "QRY": NSCommand(6, payload=True),
    "LSG": NSCommand(7, 8, after=CLOSE),
    "ADG": NSCommand(7, 12),
    "RMG": NSCommand(7, 12),
    "REG": NSCommand(7, 12),
    "ADC": NSCommand(10, 12),
    "SBP": NSCommand(10, 12),
    "UUX": NSCommand(11, payload=True),
    # GCF t filename (no payload; the answer has one).  Older dialects
    # never had it and were dropped for sending it; from MSNP13 only the
    # server sends it (its policies, at login).
    "GCF": NSCommand(11, 12, before=CLOSE, after=CLOSE),
    # MSNP13+: list membership pushed as XML, and notifications relayed
    # to a contact's endpoints.
    "ADL": NSCommand(13, payload=True),
    "RML": NSCommand(13, payload=True),
    "UUN": NSCommand(13, payload=True),
    # MSNP14+: which network a contact is on; messages to other networks
    # (and, at MSNP18, offline messages).
    "FQY": NSCommand(14, payload=True),
    "UUM": NSCommand(14, payload=True),
    # MSNP18 circles (group chats): not offered, answered 502.
    "PUT": NSCommand(18, payload=True),
    "SDG": NSCommand(18, payload=True),
}

# Client lines whose last parameter is a payload length, whatever the
# dialect: the payload is read (and skipped when refused) so that its bytes
# are never taken for commands.  MSG is framed too: the NS hangs up on it,
# but only after reading it whole.
NS_PAYLOAD_COMMANDS = frozenset(name for name, spec in _NS_COMMANDS.items() if spec.payload) | {"MSG"}


def is_ns_command(name: str) -> bool:
    """
    Whether some dialect's notification server knows C{name}.
    """
    return name in _NS_COMMANDS


# GCF Shields.xml (MSNP11-12): the client's shields configuration.  No
# client version is denied and nothing is blocked.
SHIELDS_CONFIG = b'<?xml version="1.0" encoding="utf-8"?><config><shield></shield><block></block></config>'
SHIELDS_FILE = "Shields.xml"
# GCF 0 at MSNP13+ logins: the client's policies, with the same empty
# shields (the official service also sent ABCH, error-table and P2P
# policies; clients run with their defaults without them).
LOGIN_POLICIES = b'<Policies><Policy type="SHIELDS"><config><shield></shield><block></block></config></Policy></Policies>'

# SDC's parameters before the payload length: target (address or FND
# index), LCID, library, client id, X, X, the sender's friendly name.
SDC_PARAMETERS = 7

# PGD device types: 1 a mobile device, 2 a Web Watch.
PAGE_DEVICES = ("1", "2")

# Phone and mobile properties stored for PRP/BPR.
PHONE_KEYS = ("PHH", "PHW", "PHM", "MOB", "MBE")
CONTACT_PHONE_KEYS = ("PHH", "PHW", "PHM", "MOB")
# MBE (mobile device enabled) is set by the service, never by a client.
SETTABLE_PHONE_KEYS = CONTACT_PHONE_KEYS


@attrs.frozen(eq=False)
class Dialect:
    """
    One MSNPn dialect.  Compared and hashed by identity (one instance per
    version, in L{ALL_DIALECTS}): events keep their rendered lines keyed by
    dialect, and a hash computed in Python showed in every fan-out.
    """

    version: int

    @property
    def name(self) -> str:
        return f"MSNP{self.version}"

    def has_command(self, name: str) -> bool:
        spec = _NS_COMMANDS.get(name)
        if spec is None:
            return False
        return self.version >= spec.first and (spec.last is None or self.version <= spec.last)

    def answer_when_absent(self, name: str) -> object:
        """
        How this dialect answers C{name} when it does not have it:
        L{UNKNOWN} (200), L{CLOSE}, or an error number.
        """
        spec = _NS_COMMANDS.get(name)
        if spec is None:
            return UNKNOWN
        if self.version < spec.first:
            return spec.before
        if spec.last is not None and self.version > spec.last:
            return spec.after
        return UNKNOWN

    # Login

    @property
    def security_packages(self) -> str:
        return "MD5"

    @property
    def has_phone_properties(self) -> bool:
        return self.version >= 5

    def bpr_update(self, version: int, handle: str, key: str, encoded_value: str) -> Optional[bytes]:
        """
        A contact's changed phone property pushed outside SYN: C{BPR V
        handle key value} with the receiver's list version (MSNP5-MSNP9);
        None where this dialect has no such line.
        """
        if not 5 <= self.version <= 9:
            return None
        return wire.format_line("BPR", None, version, handle, key, encoded_value or None)

    @property
    def has_groups(self) -> bool:
        return self.version >= 7

    @property
    def has_challenges(self) -> bool:
        return self.version >= 6

    @property
    def has_url_site_id(self) -> bool:
        return self.version >= 3

    # MSNP8+ (Passport, merged lists, contact ids)

    @property
    def auth_package(self) -> str:
        """
        The one login package of this dialect: MD5 until MSNP7, Passport
        (TWN) from MSNP8, single sign-on (SSO) from MSNP15.
        """
        if self.version <= 7:
            return "MD5"
        return "TWN" if self.version <= 14 else "SSO"

    @property
    def sends_login_policies(self) -> bool:
        """
        MSNP13+: C{GCF 0 <Policies>} comes before C{USR ... S}.
        """
        return self.version >= 13

    @property
    def requires_machine_guid(self) -> bool:
        """
        MSNP16+: C{USR SSO S} names the client's machine GUID, the endpoint
        of multiple points of presence.
        """
        return self.version >= 16

    @property
    def has_multiple_points_of_presence(self) -> bool:
        return self.version >= 16

    @property
    def lists_in_address_book(self) -> bool:
        """
        MSNP13+: no SYN; the lists are read and edited over SOAP and pushed
        to the server with ADL/RML.
        """
        return self.version >= 13

    @property
    def has_capabilities_ex(self) -> bool:
        """
        MSNP16+: capabilities are written C{caps:capsex}.
        """
        return self.version >= 16

    @property
    def presence_network_id(self) -> bool:
        """
        MSNP14-17 name a contact's network after its handle in ILN, NLN,
        FLN and UBX; MSNP18 prefixes it (C{1:handle}).
        """
        return 14 <= self.version <= 17

    @property
    def prefixed_handles(self) -> bool:
        return self.version >= 18

    @property
    def initial_presence_as_nln(self) -> bool:
        """
        MSNP18 shows contacts already online with NLN, not ILN.
        """
        return self.version >= 18

    @property
    def echoes_own_presence(self) -> bool:
        """
        MSNP16+: the user's own presence (UBX) goes to their endpoints.
        """
        return self.version >= 16

    def presence_handle(self, handle: str) -> str:
        """
        A contact as presence lines name it: C{1:handle} at MSNP18.
        """
        return f"1:{handle}" if self.prefixed_handles else handle

    def capabilities(self, caps: int, caps_ex: int = 0) -> str:
        return f"{caps}:{caps_ex}" if self.has_capabilities_ex else str(caps)

    @property
    def uses_msnp11_challenge(self) -> bool:
        return self.version >= 11

    @property
    def merges_lists(self) -> bool:
        """
        SYN sends one LST per contact with a list bitmask (MSNP8+).
        """
        return self.version >= 8

    @property
    def chg_details(self) -> int:
        """
        Parameters CHG may carry after the state: none until MSNP7,
        capabilities from MSNP8, an MSN object too from MSNP9.
        """
        return 0 if self.version < 8 else 1 if self.version == 8 else 2

    @property
    def echoes_out(self) -> bool:
        """
        Whether the client's OUT is echoed before the server hangs up: the
        draft's rule, kept until MSNP7.  From MSNP8 the server just closes,
        as the 2003 servers did; Twisted's MSNP8 client takes a bare OUT
        for a malformed line.
        """
        return self.version < 8

    @property
    def has_contact_ids(self) -> bool:
        """
        ADC, N=/F=/C= list lines, contacts and groups named by GUID and
        list edits answered without a list version (MSNP10+).
        """
        return self.version >= 10

    @property
    def has_network_ids(self) -> bool:
        return self.version >= 12

    @property
    def sends_sbs(self) -> bool:
        return self.version >= 11

    @property
    def has_personal_messages(self) -> bool:
        """
        UUX/UBX personal message and current media (MSNP11+).
        """
        return self.version >= 11

    @property
    def has_pending_list(self) -> bool:
        """
        PL, the list of users who added this one and were not yet answered
        (MSNP10+).  Nobody is ever put on it here (see msnp8-12.md).
        """
        return self.version >= 10

    def config_file(self, trid: int, filename: Optional[str], payload: bytes) -> bytes:
        """
        The answer to C{GCF t filename}: the file as the payload; without a
        file name, the policies sent at MSNP13+ logins (C{GCF 0 len}).
        """
        return wire.format_payload("GCF", trid, (filename,) if filename else (), payload)

    def versioned(self, version: int) -> tuple:
        """
        The list-version parameter of a reply to a list edit: present until
        MSNP9, gone from MSNP10.
        """
        return () if self.has_contact_ids else (version,)

    def reverse_list_added(self, version: int, handle: str, encoded_name: str) -> bytes:
        if self.has_contact_ids:
            return wire.format_line("ADC", 0, "RL", f"N={handle}", f"F={encoded_name}")
        return wire.format_line("ADD", 0, "RL", version, handle, encoded_name)

    def reverse_list_removed(self, version: int, handle: str) -> bytes:
        return wire.format_line("REM", 0, "RL", *self.versioned(version), handle)

    def list_removed(self, owner: str, version: int, lst: str, contact: str) -> bytes:
        """
        C{REM 0}: C{contact} left C{owner}'s list C{lst} from outside the
        session (a deleted account).
        """
        if lst == "RL":
            return self.reverse_list_removed(version, contact)
        if lst == "FL" and self.has_contact_ids:
            return wire.format_line("REM", 0, "FL", contact_id(owner, contact))
        return wire.format_line("REM", 0, lst, *self.versioned(version), contact)

    def adg(self, trid: int, version: int, encoded_name: str, group: object) -> bytes:
        if self.has_contact_ids:
            return wire.format_line("ADG", trid, encoded_name, group)
        return wire.format_line("ADG", trid, version, encoded_name, group, 0)

    def reg(self, trid: int, version: int, group: object, encoded_name: str) -> bytes:
        if self.has_contact_ids:
            return wire.format_line("REG", trid, group, encoded_name)
        return wire.format_line("REG", trid, version, group, encoded_name, 0)

    def sync_current(self, trid: int, version: int) -> bytes:
        """
        The whole answer to a SYN from a client that is up to date.
        """
        if self.has_contact_ids:
            return wire.format_line("SYN", trid, version, version)
        return wire.format_line("SYN", trid, version)

    def ubx(self, handle: str, payload: bytes) -> bytes:
        """
        C{UBX handle len} (MSNP11-13), C{UBX handle 1 len} (14-17),
        C{UBX 1:handle len} (18).
        """
        network = (1,) if self.presence_network_id else ()
        return wire.format_payload("UBX", None, (self.presence_handle(handle), *network), payload)

    def xfr_ns(self, trid: int, address: str, current: str) -> bytes:
        if self.version == 2:
            return wire.format_line("XFR", trid, "NS", address)
        if self.version <= 6:
            return wire.format_line("XFR", trid, "NS", address, 0)
        return wire.format_line("XFR", trid, "NS", address, 0, current)

    def usr_ok(self, trid: int, handle: str, encoded_name: str, verified: bool = True) -> bytes:
        flag = 1 if verified else 0
        if self.version <= 5:
            return wire.format_line("USR", trid, "OK", handle, encoded_name)
        if self.version <= 7:
            return wire.format_line("USR", trid, "OK", handle, encoded_name, flag)
        if self.version <= 9:
            return wire.format_line("USR", trid, "OK", handle, encoded_name, flag, 0)
        return wire.format_line("USR", trid, "OK", handle, flag, 0)

    # Presence

    def iln(self, trid: int, status: str, handle: str, encoded_name: str, caps: int = 0, msnobj: str = "", caps_ex: int = 0) -> bytes:
        """
        A contact already online when this user signs in or adds them;
        MSNP18 sends it as NLN.
        """
        if self.initial_presence_as_nln:
            return self.nln(status, handle, encoded_name, caps, msnobj, caps_ex)
        return wire.format_line("ILN", trid, status, *self._presence_who(handle), encoded_name, *self._presence_extra(caps, msnobj, caps_ex))

    def nln(self, status: str, handle: str, encoded_name: str, caps: int = 0, msnobj: str = "", caps_ex: int = 0) -> bytes:
        return wire.format_line("NLN", None, status, *self._presence_who(handle), encoded_name, *self._presence_extra(caps, msnobj, caps_ex))

    def _presence_who(self, handle: str) -> tuple:
        if self.presence_network_id:
            return (handle, 1)
        return (self.presence_handle(handle),)

    def chg(self, trid: int, state: str, caps: int = 0, msnobj: str = "", given: Sequence[str] = (), caps_ex: int = 0) -> bytes:
        """
        The reply to the client's C{CHG}: the state, then from MSNP8 the
        client's capabilities (0 when it gave none) and from MSNP9 its MSN
        object when it gave one, as in this dialect's ILN/NLN.  Before MSNP8
        the parameters C{given} after the state are echoed as they came; from
        MSNP13 a client's C{0} for no MSN object is echoed too (the reply
        echoes what the client sent, as WLM's servers did).
        """
        extra = self._presence_extra(caps, msnobj, caps_ex) if self.version >= 8 else tuple(given)
        if self.version >= 13 and not msnobj and len(given) >= 2 and given[1] == "0":
            extra = (*extra, "0")
        return wire.format_line("CHG", trid, state, *extra)

    def fln(self, handle: str) -> bytes:
        """
        C{FLN handle} until MSNP13, C{FLN handle 1 0} at 14-15,
        C{FLN handle 1 0:0} at 16-17, C{FLN 1:handle 0:0} at 18.
        """
        if self.version < 14:
            return wire.format_line("FLN", None, handle)
        return wire.format_line("FLN", None, *self._presence_who(handle), self.capabilities(0))

    def _presence_extra(self, caps: int, msnobj: str, caps_ex: int = 0) -> Sequence[object]:
        if self.version < 8:
            return ()
        shown = self.capabilities(caps, caps_ex)
        if self.version >= 9 and msnobj:
            return (shown, msnobj)
        return (shown,)

    def qng(self, seconds: int) -> bytes:
        if self.version >= 9:
            return wire.format_line("QNG", None, seconds)
        return wire.format_line("QNG", None)

    # Switchboard

    @property
    def msg_ack_types(self) -> frozenset:
        """
        The acknowledgement letters a switchboard MSG may carry; D (binary
        data, answered with ACK or 282) arrived with MSNP9.
        """
        return frozenset("UNAD") if self.version >= 9 else frozenset("UNA")

    def _participant_extra(self, caps: int, caps_ex: int = 0) -> Sequence[object]:
        return (self.capabilities(caps, caps_ex),) if self.version >= 12 else ()

    def iro(self, trid: int, index: int, total: int, handle: str, encoded_name: str, caps: int = 0, caps_ex: int = 0) -> bytes:
        return wire.format_line("IRO", trid, index, total, handle, encoded_name, *self._participant_extra(caps, caps_ex))

    def joi(self, handle: str, encoded_name: str, caps: int = 0, caps_ex: int = 0) -> bytes:
        return wire.format_line("JOI", None, handle, encoded_name, *self._participant_extra(caps, caps_ex))

    def _switchboard_extra(self, host: str) -> tuple:
        # MSNP13 adds the host the client shows; MSNP14 a trailing 1.
        if self.version < 13:
            return ()
        return ("U", host) if self.version == 13 else ("U", host, 1)

    def xfr_sb(self, trid: int, address: str, cookie: str) -> bytes:
        return wire.format_line("XFR", trid, "SB", address, "CKI", cookie, *self._switchboard_extra("messenger.msn.com"))

    def rng(self, session_id: str, address: str, cookie: str, caller: str, encoded_caller_name: str) -> bytes:
        return wire.format_line(
            "RNG", None, session_id, address, "CKI", cookie, caller, encoded_caller_name,
            *self._switchboard_extra("messenger.hotmail.com"),
        )

    # Reading the server's side (clients)

    @property
    def server_lines(self) -> wire.ServerLines:
        """
        How a client of this dialect reads server lines
        (L{wire.parse_server_line}): from MSNP8 on, C{SYN} sends the list
        lines without TrIDs; from MSNP13 there is no SYN, and ADL, RML,
        FQY, UBN and UBM come with payloads.
        """
        if self.version >= 13:
            return wire.SERVER_LINES_MSNP13
        return wire.SERVER_LINES_MSNP8 if self.version >= 8 else wire.SERVER_LINES_MSNP2


ALL_DIALECTS = {n: Dialect(n) for n in range(2, 19)}


def choose_dialect(offered: Sequence[str], supported: Sequence[int]) -> Optional[Dialect]:
    """
    Pick the best dialect both sides speak.  Dialect names are not
    case-sensitive; the client's own order is only a preference, the highest
    common version wins.
    """
    versions = set()
    for token in offered:
        token = token.upper()
        if token.startswith("MSNP") and token[4:].isdigit():
            versions.add(int(token[4:]))
    common = versions & set(supported)
    if not common:
        return None
    return ALL_DIALECTS[max(common)]


# Contact lists as SYN and LST show them.

LIST_ORDER = ("FL", "AL", "BL", "RL")


# Contact names recur in the lists of everyone who has that contact, and a
# login storm renders the same few thousand names again and again.  Only
# short names are kept, so the cache stays a few MB at worst.
_encoded_short_name = functools.lru_cache(maxsize=8192)(wire.url_encode)


def encoded_name(name: str) -> str:
    return _encoded_short_name(name) if len(name) <= 64 else wire.url_encode(name)


def _group_numbers(groups) -> str:
    if not groups:
        return "0"
    if len(groups) == 1:
        for group in groups:
            return str(group)
    return ",".join(str(g) for g in sorted(groups))


def list_lines(dialect: Dialect, trid: int, user, lst: str, contact_properties: dict) -> list[bytes]:
    """
    The C{LST} lines of one list (MSNP2-MSNP8 style: one line per entry with
    index and total, or the empty-list form), each FL entry followed by its
    BPR lines from MSNP5.
    """
    entries = user.lists[lst]
    version = user.version
    total = len(entries)
    if total == 0:
        return [wire.format_line("LST", trid, lst, version, 0, 0)]
    # format_line's shape, with the parts every line shares built once.
    head = f"LST {trid} {lst} {version} "
    tail = f" {total} "
    grouped = lst == "FL" and dialect.has_groups
    phoned = lst == "FL" and dialect.has_phone_properties and contact_properties
    memberships = user.memberships
    lines = []
    for index, (handle, name) in enumerate(entries.items(), 1):
        text = f"{head}{index}{tail}{handle} {encoded_name(name)}"
        if grouped:
            text = f"{text} {_group_numbers(memberships.get(handle))}"
        lines.append(f"{text}\r\n".encode("utf-8"))
        if phoned:
            phones = contact_properties.get(handle, {})
            for key in CONTACT_PHONE_KEYS:
                if phones.get(key):
                    lines.append(wire.format_line("BPR", None, version, handle, key, wire.url_encode(phones[key])))
    return lines


def group_lines(dialect: Dialect, trid: int, user) -> list[bytes]:
    groups = sorted(user.groups.items())
    total = len(groups)
    return [
        wire.format_line("LSG", trid, user.version, index, total, group_id, wire.url_encode(name), 0)
        for index, (group_id, name) in enumerate(groups, 1)
    ]


def property_lines(dialect: Dialect, trid: int, user) -> list[bytes]:
    lines = []
    for key in PHONE_KEYS:
        value = user.properties.get(key)
        lines.append(wire.format_line("PRP", trid, user.version, key, wire.url_encode(value) if value else None))
    return lines


def sync_lines(dialect: Dialect, trid: int, user, contact_properties: dict) -> list[bytes]:
    """
    The full answer to a SYN from a client whose list version is stale.
    """
    if dialect.merges_lists:
        return merged_sync_lines(dialect, trid, user, contact_properties)
    version = user.version
    lines = [
        wire.format_line("SYN", trid, version),
        wire.format_line("GTC", trid, version, user.gtc),
        wire.format_line("BLP", trid, version, user.blp),
    ]
    if dialect.has_phone_properties:
        lines.extend(property_lines(dialect, trid, user))
    if dialect.has_groups:
        lines.extend(group_lines(dialect, trid, user))
    for lst in LIST_ORDER:
        lines.extend(list_lines(dialect, trid, user, lst, contact_properties))
    return lines


def profile_message(dialect: Dialect, login_time: int, client_ip: str = "", client_port: int = 0) -> bytes:
    """
    The C{text/x-msmsgsprofile} message sent right after login.
    """
    headers = [
        "MIME-Version: 1.0",
        "Content-Type: text/x-msmsgsprofile; charset=UTF-8",
        f"LoginTime: {login_time}",
    ]
    if dialect.version >= 3:
        headers += [
            "EmailEnabled: 0",
            "MemberIdHigh: 0",
            "MemberIdLow: 0",
            "lang_preference: 1033",
            "preferredEmail: ",
            "country: ",
            "PostalCode: ",
            "Gender: ",
            "Kid: 0",
            "Age: ",
            "BDayPre: ",
            "Birthday: ",
            "Wallet: ",
            "Flags: 1027",
            "sid: 507",
            "kv: 2",
            "MSPAuth: ",
        ]
    if dialect.version >= 8:
        headers += [f"ClientIP: {client_ip}", f"ClientPort: {((client_port & 0xFF) << 8) | ((client_port >> 8) & 0xFF)}"]
    if dialect.version >= 10:
        headers.append("ABCHMigrated: 1")
    if dialect.version >= 13:
        # Multiple points of presence from MSNP16: several endpoints of one
        # account stay signed in side by side.
        headers.append(f"MPOPEnabled: {1 if dialect.has_multiple_points_of_presence else 0}")
    body = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8")
    return wire.format_payload("MSG", None, ("Hotmail", "Hotmail"), body)


# MSNP10+ names contacts and groups by GUID.  They are derived from the
# owner and the contact (or group number), so they need no storage, stay the
# same across restarts and mean nothing outside the owner's own list.
_ID_NAMESPACE = uuid.UUID("6d736e70-6964-5f6e-616d-657370616365")


_ID_PREFIX = _ID_NAMESPACE.bytes


def _name_uuid(name: str) -> str:
    """
    C{str(uuid.uuid5(_ID_NAMESPACE, name))} without building a UUID object:
    SYN derives one per contact.
    """
    digest = bytearray(hashlib.sha1(_ID_PREFIX + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def contact_id(owner: str, contact: str) -> str:
    return _name_uuid(f"contact\0{owner}\0{contact}")


def group_guid(owner: str, group_id: int) -> str:
    return _name_uuid(f"group\0{owner}\0{group_id}")


def find_contact(user, contact_guid: str) -> Optional[str]:
    """
    The handle on any of C{user}'s lists whose contact id is C{contact_guid}.
    """
    for lst in LIST_ORDER:
        for handle in user.lists[lst]:
            if contact_id(user.handle, handle) == contact_guid:
                return handle
    return None


def find_group(user, guid: str) -> Optional[int]:
    for group_id in user.groups:
        if group_guid(user.handle, group_id) == guid:
            return group_id
    return None


LIST_BITS = {"FL": 1, "AL": 2, "BL": 4, "RL": 8}


def _contacts_with_bits(user) -> list[tuple[str, str, int]]:
    """
    Every contact on any list, once, with its name (the FL name first) and
    its list bitmask.
    """
    merged: dict[str, list] = {}
    for lst in LIST_ORDER:
        for handle, name in user.lists[lst].items():
            entry = merged.setdefault(handle, [name, 0])
            entry[1] |= LIST_BITS[lst]
    return [(handle, name, bits) for handle, (name, bits) in merged.items()]


def _visible_groups(dialect: Dialect, user) -> list[tuple[int, str]]:
    # Group 0 is the catch-all of MSNP7-9; MSNP10+ clients keep ungrouped
    # contacts in their own built-in group, so it is not listed to them.
    return [(g, name) for g, name in sorted(user.groups.items()) if not (dialect.has_contact_ids and g == 0)]


def merged_sync_lines(dialect: Dialect, trid: int, user, contact_properties: dict) -> list[bytes]:
    """
    The full answer to a stale SYN from MSNP8 on: counts on the SYN line,
    then GTC, BLP, PRP, LSG, and one LST per contact with its list bitmask
    (BPR lines after it), none of them with a TrID.
    """
    owner = user.handle
    groups = _visible_groups(dialect, user)
    shown_groups = {g for g, _ in groups}
    contacts = _contacts_with_bits(user)
    version = user.version
    if dialect.has_contact_ids:
        lines = [wire.format_line("SYN", trid, version, version, len(contacts), len(groups))]
    else:
        lines = [wire.format_line("SYN", trid, version, len(contacts), len(groups))]
    lines.append(wire.format_line("GTC", None, user.gtc))
    lines.append(wire.format_line("BLP", None, user.blp))
    if dialect.has_contact_ids:
        lines.append(wire.format_line("PRP", None, "MFN", encoded_name(user.friendly_name)))
    for key in PHONE_KEYS:
        value = user.properties.get(key)
        if value:
            lines.append(wire.format_line("PRP", None, key, wire.url_encode(value)))
    for group_id, name in groups:
        if dialect.has_contact_ids:
            lines.append(wire.format_line("LSG", None, encoded_name(name), group_guid(owner, group_id)))
        else:
            lines.append(wire.format_line("LSG", None, group_id, encoded_name(name), 0))
    for handle, name, bits in contacts:
        in_fl = bool(bits & LIST_BITS["FL"])
        member_of = sorted(g for g in user.memberships.get(handle, ()) if g in shown_groups) if in_fl else []
        if dialect.has_contact_ids:
            fields = [f"N={handle}", f"F={encoded_name(name)}"]
            if in_fl:
                fields.append(f"C={contact_id(owner, handle)}")
            fields.append(bits)
            if dialect.has_network_ids:
                fields.append(1)
            if member_of:
                fields.append(",".join(group_guid(owner, g) for g in member_of))
        else:
            fields = [handle, encoded_name(name), bits]
            if in_fl:
                fields.append(",".join(str(g) for g in member_of) or "0")
        lines.append(wire.format_line("LST", None, *fields))
        if in_fl:
            for key, value in sorted(contact_properties.get(handle, {}).items()):
                if key in CONTACT_PHONE_KEYS:
                    lines.append(wire.format_line("BPR", None, key, wire.url_encode(value)))
    return lines


# MSN's status codes for the core's presence states.
STATUS_OF_CODE = {
    "NLN": statuses.ONLINE,
    "BSY": statuses.BUSY,
    "IDL": statuses.IDLE,
    "BRB": statuses.BE_RIGHT_BACK,
    "AWY": statuses.AWAY,
    "PHN": statuses.ON_THE_PHONE,
    "LUN": statuses.OUT_TO_LUNCH,
    "HDN": statuses.HIDDEN,
}
CODE_OF_STATUS = {status: code for code, status in STATUS_OF_CODE.items()}


def maintenance_notice(minutes: int) -> bytes:
    """
    The system message warning that the server goes down for maintenance
    in C{minutes} (C{application/x-msmsgssystemmessage}, Type 1); the
    client shows its own text for it.
    """
    payload = (
        "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\n"
        f"Type: 1\r\nArg1: {minutes}\r\n"
    ).encode("ascii")
    return wire.format_payload("MSG", None, ("Hotmail", "Hotmail"), payload)
