"""
RVP's XML bodies: a hardened parser into a small element tree, and a writer
that emits the exact prefixes clients match on (``d:``, ``r:``, ``a:``).

Parsing refuses any document type declaration (and so every entity
definition and external reference), and bounds nesting depth and element
count; the HTTP layer bounds the size.  Elements are matched by local name
only: the sources use several prefixes and at least one wrong namespace
spelling for the same elements, and RVP's names do not collide in ways that
matter (``d:timeout`` and ``r:timeout`` mean the same).
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union
from xml.parsers import expat

import attrs

DAV = "DAV:"
RVP = "http://schemas.microsoft.com/rvp/"
ACL = "http://schemas.microsoft.com/rvp/acl/"
NAMESPACES = (("d", DAV), ("r", RVP), ("a", ACL))

MAX_DEPTH = 32
MAX_ELEMENTS = 20000


class XmlError(ValueError):
    """
    A body that is not acceptable XML (malformed, a DTD, too deep, too big).
    """


@attrs.define
class Element:
    """
    One parsed element: C{namespace} ("" if none), C{name} (local name),
    C{children} in order and C{text} (character data directly inside).
    """

    namespace: str
    name: str
    children: list["Element"] = attrs.Factory(list)
    text: str = ""

    def find(self, name: str) -> Optional["Element"]:
        for child in self.children:
            if child.name == name:
                return child
        return None

    def find_all(self, name: str) -> list["Element"]:
        return [child for child in self.children if child.name == name]

    def path(self, *names: str) -> Optional["Element"]:
        element: Optional[Element] = self
        for name in names:
            if element is None:
                return None
            element = element.find(name)
        return element

    def child_text(self, name: str) -> Optional[str]:
        child = self.find(name)
        return child.text if child is not None else None

    def first_child(self) -> Optional["Element"]:
        return self.children[0] if self.children else None


def parse(body: bytes) -> Element:
    """
    Parse C{body} into its root L{Element}; raise L{XmlError} for anything
    malformed or dangerous.
    """
    if not body.strip():
        raise XmlError("empty body")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    root: list[Element] = []
    count = [0]
    texts: list[list[str]] = []

    def refuse(*_args):
        raise XmlError("document type declarations and entities are not accepted")

    def start(qname: str, _attributes) -> None:
        count[0] += 1
        if count[0] > MAX_ELEMENTS:
            raise XmlError("too many elements")
        if len(stack) >= MAX_DEPTH:
            raise XmlError("nested too deeply")
        namespace, _, local = qname.rpartition(" ")
        element = Element(namespace, local)
        if stack:
            stack[-1].children.append(element)
        else:
            root.append(element)
        stack.append(element)
        texts.append([])

    def end(_qname: str) -> None:
        element = stack.pop()
        element.text = "".join(texts.pop())

    def characters(data: str) -> None:
        if texts:
            texts[-1].append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(body, True)
    except expat.ExpatError as error:
        raise XmlError(str(error)) from None
    except RecursionError:
        raise XmlError("nested too deeply") from None
    if not root:
        raise XmlError("no root element")
    return root[0]


# Writing.  A node is ("d:name", [children]) or ("d:name", "text") or a
# CData for mime-data; the root gets the three namespace declarations.


@attrs.frozen
class CData:
    text: str


Node = Union[tuple, CData, str]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside one section: split it across two.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _write(node: Node, out: list[str], declarations: str = "") -> None:
    if isinstance(node, CData):
        out.append(_cdata(node.text))
        return
    if isinstance(node, str):
        out.append(escape(node))
        return
    name, content = node
    if content is None or content == "" or content == []:
        out.append(f"<{name}{declarations}/>")
        return
    out.append(f"<{name}{declarations}>")
    if isinstance(content, (str, CData)):
        _write(content, out)
    else:
        for child in content:
            _write(child, out)
    out.append(f"</{name}>")


def document(root: tuple) -> bytes:
    """
    Serialise C{root} as a whole document, the namespaces declared on the
    root in single quotes as Exchange does.
    """
    declarations = "".join(f" xmlns:{prefix}='{uri}'" for prefix, uri in NAMESPACES)
    out = ['<?xml version="1.0"?>\n']
    _write(root, out, declarations)
    return "".join(out).encode("utf-8")


def element(name: str, *children: Node) -> tuple:
    return (name, list(children))


def text_element(name: str, text: str) -> tuple:
    return (name, text)


def walk(element_: Element) -> Iterator[Element]:
    yield element_
    for child in element_.children:
        yield from walk(child)


def to_node(parsed: Element, prefixes: Sequence[tuple[str, str]] = NAMESPACES) -> tuple:
    """
    A parsed element back as a writable node with our own prefixes (used to
    relay a property update as received).  Elements of an unknown namespace
    keep their local name only.
    """
    prefix = ""
    for candidate, uri in prefixes:
        if _same_namespace(parsed.namespace, uri):
            prefix = candidate + ":"
    name = prefix + parsed.name
    if parsed.children:
        return (name, [to_node(child, prefixes) for child in parsed.children])
    return (name, parsed.text)


def _same_namespace(given: str, known: str) -> bool:
    return given.lower().rstrip("/") == known.lower().rstrip("/")
