"""
What RVP's bodies say: the documents the home server answers and sends
(multistatus, propnotification, message notification, subscription list,
ACL) and the reading of the parts of request bodies that carry a value
(a state, an ACL, a message's Session-Id).

The XML itself, the hardened parser and the prefix-exact writer, is
L{msnp.rvp.xmldoc}; which request gets which document, and what the server
does with what it reads, is L{msnp.rvp.frontend}.  A body that parses but
says something unacceptable raises L{InvalidDocument}, which the front end
answers with 400.
"""

from __future__ import annotations

import re
from typing import Optional

from msnp.rvp import xmldoc
from msnp.rvp.home import Privacy
from msnp.rvp.principals import Principals
from msnp.rvp.state import STATES
from msnp.rvp.xmldoc import CData, document, element, text_element

MAX_PRIVACY_ENTRIES = 1000
OK_STATUS = "HTTP/1.1 200 OK"
RIGHTS = ("list", "read", "write", "send-to", "receive-from", "readacl", "writeacl", "presence", "subscriptions", "subscribe-others")
CREDENTIALS = ("assertion", "digest", "ntlm")
PROPERTY_NAMES = (("d", "displayname"), ("r", "state"), ("r", "email"), ("r", "mobile-state"), ("r", "mobile-description"))


class InvalidDocument(ValueError):
    """
    A well-formed body whose content the server cannot accept; the message
    is the reason given to the client.
    """


# Properties (PROPFIND, PROPPATCH, SUBSCRIBE)


def property_nodes(properties: dict, names) -> list:
    nodes = []
    for prefix, name in names:
        if name == "state":
            nodes.append(element("r:state", (f"r:{properties['state']}", "")))
        else:
            nodes.append(text_element(f"{prefix}:{name}", properties[name]))
    return nodes


def multistatus(url: str, propstats: list) -> bytes:
    """
    A C{d:multistatus} about the node at C{url}: one C{d:propstat} per
    (properties, status) of C{propstats} that names any property.
    """
    parts = [text_element("d:href", url)]
    for props, status in propstats:
        if props:
            parts.append(element("d:propstat", element("d:prop", *props), text_element("d:status", status)))
    return document(element("d:multistatus", element("d:response", *parts)))


def leased_state(view) -> tuple:
    """
    The C{r:state} a PROPPATCH answers with: the lease as granted.
    """
    return element(
        "r:state",
        element(
            "r:leased-value",
            element("r:value", (f"r:{view.value}", "")),
            element("r:default-value", (f"r:{view.default}", "")),
            text_element("d:timeout", str(int(view.timeout))),
        ),
        text_element("r:view-id", view.view_id),
    )


def prefix_for(namespace: str) -> str:
    for prefix, uri in xmldoc.NAMESPACES:
        if namespace.lower().rstrip("/") == uri.lower().rstrip("/"):
            return prefix
    return ""


def status_of(container) -> str:
    if container is None or container.first_child() is None:
        raise InvalidDocument("a state without a status element")
    status = container.first_child().name
    if status not in STATES:
        raise InvalidDocument(f"unknown state {status}")
    return status


# Notifications (NOTIFY)


def propnotification(from_url: str, subscriber: str, state: str) -> bytes:
    """
    The C{r:propnotification} telling C{subscriber} that the principal at
    C{from_url} is now in C{state}.
    """
    contact = lambda url: element("r:contact", text_element("d:href", url), element("r:description"))
    update = element("d:propertyupdate", element("d:set", element("d:prop", element("r:state", (f"r:{state}", "")))))
    return document(
        element(
            "r:notification",
            element(
                "r:propnotification",
                element("r:notification-from", contact(from_url)),
                element("r:notification-to", contact(subscriber)),
                update,
            ),
        )
    )


def message_notification(sender_url: str, sender_name: str, recipient_url: str, mime: str) -> bytes:
    """
    The C{r:message} notification carrying C{mime} from C{sender_url} to
    C{recipient_url}.
    """
    contact = lambda url, name: element("r:contact", text_element("d:href", url), text_element("r:description", name))
    return document(
        element(
            "r:notification",
            element(
                "r:message",
                element("r:notification-from", contact(sender_url, sender_name)),
                element("r:notification-to", contact(recipient_url, "")),
                element("r:msgbody", ("r:mime-data", CData(mime))),
            ),
        )
    )


def state_name(element) -> Optional[str]:
    """
    The name of the status element inside the first r:state under
    C{element} (a leased value's own value), whatever it is.
    """
    for node in xmldoc.walk(element):
        if node.name == "state":
            first = node.first_child()
            if first is not None and first.name == "leased-value":
                value = first.find("value")
                first = value.first_child() if value is not None else None
            return first.name if first is not None else None
    return None


def state_in(update) -> Optional[str]:
    """
    The status a propnotification's property update carries, when it is
    one RVP knows.
    """
    name = state_name(update)
    return name if name in STATES else None


_SESSION_ID = re.compile(r"^Session-Id:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def session_id(mime: str) -> Optional[str]:
    head = mime.lstrip().replace("\r\n", "\n").split("\n\n", 1)[0]
    match = _SESSION_ID.search(head)
    return match.group(1) if match else None


# Principals in documents (SUBSCRIPTIONS, ACL)


def principal_text(principals: Principals, handle: str) -> str:
    """
    How a document names C{handle}: its principal URL when it is of this
    domain or a known peer's, else a C{mailto:} URL.
    """
    domain = handle.partition("@")[2]
    if domain == principals.domain or domain in principals.peers:
        return principals.url_of(handle)
    return "mailto:" + handle


def handle_of_principal(principals: Principals, text: str) -> Optional[str]:
    text = text.strip()
    if text.lower().startswith("mailto:"):
        handle = text[7:].strip().lower()
        return handle if re.fullmatch(r"[^@\s]{1,64}@[A-Za-z0-9.\-]{1,64}", handle) else None
    return principals.handle_of_url(text)


# ACL


def acl_document(principals: Principals, node: str, privacy: Privacy) -> bytes:
    """
    The C{a:rvpacl} of C{node} as its privacy settings read.
    """
    credentials = element("a:credentials", *[element(f"a:{c}") for c in CREDENTIALS])
    rights = lambda names: [element(f"a:{n}") for n in names]
    aces = []
    for handle in sorted(privacy.blocked):
        aces.append(element(
            "a:ace",
            element("a:principal", text_element("a:rvp-principal", principal_text(principals, handle)), credentials),
            element("a:grant"),
            element("a:deny", *rights(("send-to", "presence"))),
        ))
    for handle in sorted(privacy.allowed - privacy.blocked):
        aces.append(element(
            "a:ace",
            element("a:principal", text_element("a:rvp-principal", principal_text(principals, handle)), credentials),
            element("a:grant", *rights(("send-to", "presence"))),
            element("a:deny"),
        ))
    if privacy.blp == "AL":
        everyone = (rights(("list", "read", "send-to", "presence")), [])
    else:
        everyone = (rights(("list", "read")), rights(("send-to", "presence")))
    aces.append(element(
        "a:ace",
        element("a:principal", element("a:allprincipals"), credentials),
        element("a:grant", *everyone[0]),
        element("a:deny", *everyone[1]),
    ))
    aces.append(element(
        "a:ace",
        element("a:principal", text_element("a:rvp-principal", principals.url_of(node)), element("a:credentials", element("a:assertion"))),
        element("a:grant", *rights(RIGHTS)),
        element("a:deny"),
    ))
    return document(element("a:rvpacl", element("a:acl", text_element("a:inheritance", "none"), *aces)))


def privacy_from_acl(principals: Principals, node: str, root) -> Privacy:
    """
    The privacy settings an C{rvpacl} body sets for C{node}.
    """
    acl = root.find("acl")
    if acl is None:
        raise InvalidDocument("rvpacl without acl")
    blp = "AL"
    allowed, blocked = set(), set()
    for ace in acl.find_all("ace"):
        principal = ace.find("principal")
        if principal is None:
            raise InvalidDocument("ace without principal")
        if principal.find("credentials") is None:
            raise InvalidDocument("credentials not specified")
        grant = {c.name for c in (ace.find("grant") or xmldoc.Element("", "grant")).children}
        deny = {c.name for c in (ace.find("deny") or xmldoc.Element("", "deny")).children}
        denies = bool(deny & {"send-to", "presence", "all"})
        grants = bool(grant & {"send-to", "presence", "all"})
        if principal.find("allprincipals") is not None:
            blp = "BL" if denies else "AL"
            continue
        named = principal.child_text("rvp-principal")
        if named is None:
            raise InvalidDocument("ace principal names nobody")
        handle = handle_of_principal(principals, named)
        if handle is None or handle == node:
            continue  # not a user our lists can hold, or the owner
        if denies:
            blocked.add(handle)
            allowed.discard(handle)
        elif grants and handle not in blocked:
            allowed.add(handle)
    if len(allowed) > MAX_PRIVACY_ENTRIES or len(blocked) > MAX_PRIVACY_ENTRIES:
        raise InvalidDocument("too many principals in the ACL")
    return Privacy(blp, frozenset(allowed), frozenset(blocked))
