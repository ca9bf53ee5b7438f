"""
Presence documents and the MSN state mapping (RFC 3863 PIDF, RFC 4480
RPID, Microsoft's XPIDF; the table is in protocol-notes/sip.md).

Outbound, an MSN state (or None for offline) becomes a document of the
type the watcher accepts.  Inbound, a document becomes an MSN state:
parsed leniently, anything unreadable counts as offline.
"""

from __future__ import annotations

import re
from typing import Optional
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

PIDF = "application/pidf+xml"
XPIDF = "application/xpidf+xml"
SUPPORTED_TYPES = (PIDF, XPIDF)

_PIDF_NS = "urn:ietf:params:xml:ns:pidf"
_DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
_RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"

# MSN state → (note, RPID activity, XPIDF status, msnsubstatus)
_OUTBOUND = {
    "NLN": ("Online", None, "open", "online"),
    "BSY": ("Busy", "busy", "inuse", "busy"),
    "IDL": ("Idle", "away", "inactive", "idle"),
    "BRB": ("Be Right Back", "in-transit", "inactive", "berightback"),
    "AWY": ("Away", "away", "inactive", "away"),
    "PHN": ("On the Phone", "on-the-phone", "inuse", "onthephone"),
    "LUN": ("Out to Lunch", "meal", "inactive", "outtolunch"),
}

# Inbound words (note, RPID activity, msnsubstatus) → MSN state.
_INBOUND_WORDS = {
    "online": "NLN",
    "available": "NLN",
    "busy": "BSY",
    "inuse": "BSY",
    "do-not-disturb": "BSY",
    "donotdisturb": "BSY",
    "away": "AWY",
    "berightback": "BRB",
    "be right back": "BRB",
    "in-transit": "BRB",
    "onthephone": "PHN",
    "on-the-phone": "PHN",
    "on the phone": "PHN",
    "outtolunch": "LUN",
    "out to lunch": "LUN",
    "meal": "LUN",
    "idle": "IDL",
    "inactive": "IDL",
}

# Documents larger than this are not read (they come from a peer).
MAX_DOCUMENT_BYTES = 64 * 1024


def choose_type(accept: Optional[list[str]]) -> Optional[str]:
    """
    The document type for a watcher's Accept list (RFC 3856 §6.7: PIDF
    when no Accept was sent); None when it accepts none we write.
    XPIDF only when the watcher prefers it to PIDF.
    """
    if not accept:
        return PIDF
    kinds = [value.split(";")[0].strip().lower() for value in accept]
    for kind in kinds:
        if kind in SUPPORTED_TYPES:
            return kind
        if kind in ("*/*", "application/*"):
            return PIDF
    return None


# Characters XML 1.0 cannot carry.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def render(content_type: str, entity: str, status: Optional[str]) -> bytes:
    entity = _NOT_XML.sub("", entity)
    if content_type == XPIDF:
        return render_xpidf(entity, status)
    return render_pidf(entity, status)


def render_pidf(entity: str, status: Optional[str]) -> bytes:
    """
    PIDF with the basic status, the MSN wording as note, and an RPID
    activity for the states that have one.
    """
    entity = _NOT_XML.sub("", entity)
    online = _OUTBOUND.get(status) if status is not None else None
    basic = "open" if online else "closed"
    note = online[0] if online else "Offline"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<presence xmlns="{_PIDF_NS}" xmlns:dm="{_DM_NS}" xmlns:rpid="{_RPID_NS}" entity={quoteattr(entity)}>',
        '<tuple id="msn">',
        f"<status><basic>{basic}</basic></status>",
        f"<note>{escape(note)}</note>",
        "</tuple>",
    ]
    if online and online[1]:
        lines.append(f'<dm:person id="p1"><rpid:activities><rpid:{online[1]}/></rpid:activities></dm:person>')
    lines.append("</presence>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_xpidf(entity: str, status: Optional[str]) -> bytes:
    """
    Microsoft's XPIDF with C{msnsubstatus} (Windows Messenger / LCS).
    """
    entity = _NOT_XML.sub("", entity)
    online = _OUTBOUND.get(status) if status is not None else None
    xstatus, substatus = (online[2], online[3]) if online else ("closed", "offline")
    uri = quoteattr(entity + ";method=SUBSCRIBE")
    text = (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN" "xpidf.dtd">\n'
        "<presence>\n"
        f"<presentity uri={uri}/>\n"
        '<atom id="1000">\n'
        f'<address uri={quoteattr(entity)} priority="0.800000">\n'
        f'<status status="{xstatus}"/>\n'
        f'<msnsubstatus substatus="{substatus}"/>\n'
        "</address>\n"
        "</atom>\n"
        "</presence>\n"
    )
    return text.encode("utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _word_state(word: str) -> Optional[str]:
    return _INBOUND_WORDS.get(word.strip().lower())


def parse(content_type: Optional[str], body: bytes) -> Optional[str]:
    """
    The MSN state a presence document shows: None (FLN) when closed,
    empty, unreadable or of a type we do not read.
    """
    if not body or len(body) > MAX_DOCUMENT_BYTES:
        return None
    # No entity declarations from a peer: nothing to expand.
    if b"<!ENTITY" in body:
        return None
    text = re.sub(rb"<!DOCTYPE[^>]*>", b"", body, count=1)
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    if _local(root.tag) != "presence":
        return None
    basics = [e.text or "" for e in root.iter() if _local(e.tag) == "basic"]
    substatus = [e.get("substatus", "") for e in root.iter() if _local(e.tag) == "msnsubstatus"]
    xstatus = [e.get("status", "") for e in root.iter() if _local(e.tag) == "status" and e.get("status")]
    if basics:
        if not any(b.strip().lower() == "open" for b in basics):
            return None
    elif xstatus:
        if all(s.lower() == "closed" for s in xstatus):
            return None
    else:
        return None
    for word in substatus:
        if word.lower() == "offline":
            return None
        state = _word_state(word)
        if state:
            return state
    # The note first: it carries the MSN wording exactly (Idle and Away
    # share the RPID activity "away").
    for element in root.iter():
        if _local(element.tag) == "note" and element.text:
            state = _word_state(element.text)
            if state:
                return state
    for element in root.iter():
        if _local(element.tag) == "activities":
            for activity in element:
                state = _word_state(_local(activity.tag))
                if state:
                    return state
    for word in xstatus:
        state = _word_state(word)
        if state and word.lower() != "open":
            return state
    return "NLN"
