"""
XML from clients, parsed without trusting it: no DOCTYPE (so no entity is
declared or expanded, and nothing external is fetched), a cap on size and
on nesting depth, and one exception for every way a document can be bad.
Used for Passport SOAP, the web services and the MSNP13+ list payloads.
"""

from __future__ import annotations

from typing import Optional
from xml.etree.ElementTree import TreeBuilder
from xml.parsers import expat

# Deeper documents are refused: no request of any client nests half as deep.
MAX_DEPTH = 64


class MalformedXML(ValueError):
    """
    The document is not well-formed, declares a DOCTYPE, is too large or
    too deep.
    """


def parse_xml(data: bytes, error: type = MalformedXML, max_bytes: Optional[int] = None):
    """
    The element tree of C{data}; raises C{error} (a L{ValueError}
    subclass) for anything that is not a plain, small document.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise error("document too large")

    def refuse(*args):
        raise error("DOCTYPE refused")

    builder = TreeBuilder()
    depth = [0]

    def start(name, attrs):
        depth[0] += 1
        if depth[0] > MAX_DEPTH:
            raise error("document nested too deep")
        builder.start(_clark(name), {_clark(k): v for k, v in attrs.items()})

    def end(name):
        depth[0] -= 1
        builder.end(_clark(name))

    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    # Expat gives "uri}local"; ElementTree spells it "{uri}local".
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except (expat.ExpatError, AssertionError, UnicodeError) as e:
        raise error(str(e)) from None


def _clark(name: str) -> str:
    return "{" + name if "}" in name else name


def local(tag) -> str:
    """
    An element's name without its namespace.
    """
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def child(element, name: str):
    """
    The first child of C{element} named C{name} (matched by local name:
    clients spell the same elements with default namespaces or prefixes).
    """
    if element is None:
        return None
    for item in element:
        if local(item.tag) == name:
            return item
    return None


def children(element, name: str) -> list:
    if element is None:
        return []
    return [item for item in element if local(item.tag) == name]


def path(element, *names):
    for name in names:
        element = child(element, name)
    return element


def text(element, default: str = "") -> str:
    if element is None or element.text is None:
        return default
    return element.text.strip()


def find(element, name: str):
    """
    The first descendant of C{element} named C{name}, at any depth.
    """
    if element is None:
        return None
    for item in element.iter():
        if item is not element and local(item.tag) == name:
            return item
    return None
