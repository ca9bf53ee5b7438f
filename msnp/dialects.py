"""
What differs between MSNP dialects, kept as data.

Handlers ask the L{Dialect} chosen by VER how a line looks or whether a
command exists; they never compare version numbers themselves.
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs

from msnp import wire

# Notification-server commands a client may send, by the first and last
# dialect that has them (None: still present in MSNP12).
_NS_COMMANDS: dict[str, tuple[int, Optional[int]]] = {
    "VER": (2, None),
    "INF": (2, 7),
    "CVR": (2, None),
    "USR": (2, None),
    "SYN": (2, None),
    "LST": (2, 8),
    "ADD": (2, 9),
    "REM": (2, None),
    "GTC": (2, None),
    "BLP": (2, None),
    "REA": (2, 9),
    "CHG": (2, None),
    "XFR": (2, None),
    "PNG": (2, None),
    "OUT": (2, None),
    "URL": (2, None),
    "FND": (2, None),
    "SND": (2, 4),
    "IMS": (3, None),
    "PRP": (5, None),
    "CHL": (6, None),
    "QRY": (6, None),
    "LSG": (7, 8),
    "ADG": (7, None),
    "RMG": (7, None),
    "REG": (7, None),
    "ADC": (10, None),
    "SBP": (10, None),
    "UUX": (11, None),
}

# Commands that ended with a dialect: a client still sending them is broken
# or hostile, and the original servers hung up on it.
_CLOSE_WHEN_RETIRED = frozenset({"ADD", "INF", "REA", "LST", "LSG"})

# Phone and mobile properties stored for PRP/BPR.
PHONE_KEYS = ("PHH", "PHW", "PHM", "MOB", "MBE")
CONTACT_PHONE_KEYS = ("PHH", "PHW", "PHM", "MOB")
# MBE (mobile device enabled) is set by the service, never by a client.
SETTABLE_PHONE_KEYS = CONTACT_PHONE_KEYS


@attrs.frozen
class Dialect:
    """
    One MSNPn dialect.
    """

    version: int

    @property
    def name(self) -> str:
        return f"MSNP{self.version}"

    def has_command(self, name: str) -> bool:
        span = _NS_COMMANDS.get(name)
        if span is None:
            return False
        first, last = span
        return self.version >= first and (last is None or self.version <= last)

    def closes_on(self, name: str) -> bool:
        """
        Whether the original service dropped a client sending C{name} in this
        dialect (a command this dialect retired).
        """
        span = _NS_COMMANDS.get(name)
        return span is not None and name in _CLOSE_WHEN_RETIRED and span[1] is not None and self.version > span[1]

    # Login

    @property
    def uses_md5(self) -> bool:
        return self.version <= 7

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

    def iln(self, trid: int, status: str, handle: str, encoded_name: str, caps: int = 0, msnobj: str = "") -> bytes:
        return wire.format_line("ILN", trid, status, handle, encoded_name, *self._presence_extra(caps, msnobj))

    def nln(self, status: str, handle: str, encoded_name: str, caps: int = 0, msnobj: str = "") -> bytes:
        return wire.format_line("NLN", None, status, handle, encoded_name, *self._presence_extra(caps, msnobj))

    def fln(self, handle: str) -> bytes:
        return wire.format_line("FLN", None, handle)

    def _presence_extra(self, caps: int, msnobj: str) -> Sequence[object]:
        if self.version < 8:
            return ()
        if self.version >= 9 and msnobj:
            return (caps, msnobj)
        return (caps,)

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

    def _participant_extra(self, caps: int) -> Sequence[object]:
        return (caps,) if self.version >= 12 else ()

    def iro(self, trid: int, index: int, total: int, handle: str, encoded_name: str, caps: int = 0) -> bytes:
        return wire.format_line("IRO", trid, index, total, handle, encoded_name, *self._participant_extra(caps))

    def joi(self, handle: str, encoded_name: str, caps: int = 0) -> bytes:
        return wire.format_line("JOI", None, handle, encoded_name, *self._participant_extra(caps))


ALL_DIALECTS = {n: Dialect(n) for n in range(2, 13)}


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
    lines = []
    for index, (handle, name) in enumerate(entries.items(), 1):
        extra = ()
        if lst == "FL" and dialect.has_groups:
            extra = (",".join(str(g) for g in sorted(user.memberships.get(handle, ()))) or "0",)
        lines.append(wire.format_line("LST", trid, lst, version, index, total, handle, wire.url_encode(name), *extra))
        if lst == "FL" and dialect.has_phone_properties:
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
    body = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8")
    return wire.format_payload("MSG", None, ("Hotmail", "Hotmail"), body)
