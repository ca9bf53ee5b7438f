"""
The placeholders of a transcript line: C{{name}} captures a token the
first time it is received and stands for it afterwards; C{{*}} is any one
token; other placeholders are small expressions (string literals, names,
C{+}, calls of the helpers in L{HELPERS}) evaluated when the line is used.
Expressions are read with Python's own parser and only those node types are
evaluated, so a transcript cannot run arbitrary code.
"""

from __future__ import annotations

import ast
import hashlib
import re
from typing import Callable

from twisted.internet import defer

from msnp.client import messenger
from msnp.msn import wire

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ExpressionError(Exception):
    pass


def product_for(dialect: int) -> str:
    """
    The product id the official client of MSNP C{dialect} answers CHL with
    (the plain md5 answer until MSNP10, the keyed hash from MSNP11, the
    Windows Live Messenger keys from MSNP13).
    """
    return messenger.challenge_product(dialect)


def challenge_answer(dialect: int, text: str) -> str:
    """
    The QRY payload an official client of MSNP C{dialect} sends for the
    challenge C{text}.
    """
    return messenger.challenge_response(dialect, text)[1]


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


# Helpers every transcript may call; the engine adds the ones that need a
# client (qry, ticket, password of another account).
HELPERS: dict[str, Callable] = {
    "md5": md5_hex,
    "url": wire.url_encode,
    "len": lambda text: str(len(text.encode("utf-8"))),
    "lower": str.lower,
}


def is_identifier(text: str) -> bool:
    return bool(_IDENTIFIER.match(text))


async def evaluate(source: str, names: dict, helpers: dict) -> str:
    """
    The value of one placeholder expression as text.  A helper may return a
    Deferred or coroutine (a Passport ticket); it is awaited.
    """
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"cannot read {{{source}}}")
    value = await _eval(tree.body, names, helpers, source)
    return str(value)


async def _eval(node, names: dict, helpers: dict, source: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ExpressionError(f"{{{source}}}: nothing is known as {node.id!r} yet")
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = await _eval(node.left, names, helpers, source)
        right = await _eval(node.right, names, helpers, source)
        return str(left) + str(right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        helper = helpers.get(node.func.id)
        if helper is None:
            raise ExpressionError(f"{{{source}}}: no helper called {node.func.id!r}")
        args = [await _eval(arg, names, helpers, source) for arg in node.args]
        result = helper(*args)
        if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
            result = await result
        return result
    raise ExpressionError(f"{{{source}}}: only strings, names, + and helper calls are allowed")


async def substitute(text: str, names: dict, helpers: dict) -> str:
    """
    C{text} with every placeholder replaced by its value (a line to send).
    """
    out = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        out.append(text[position : match.start()])
        out.append(await evaluate(match.group(1), names, helpers))
        position = match.end()
    out.append(text[position:])
    return "".join(out)


async def pattern_for(text: str, names: dict, helpers: dict, rest_allowed: bool = True):
    """
    A compiled regular expression for an expected line, and the names it
    captures in order.  Bound names and expressions become literal text,
    unbound names capture one token, C{{*}} matches one token without
    capturing, and a line ending in C{...} allows anything after it.
    """
    tail = ""
    if rest_allowed and text.endswith("..."):
        text = text[:-3].rstrip()
        tail = r"(?: .*)?"
    parts = []
    captures = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        inner = match.group(1).strip()
        if inner == "*":
            parts.append(r"\S+")
        elif is_identifier(inner) and inner not in names:
            if inner in captures:
                parts.append(f"(?P={inner})")
            else:
                parts.append(f"(?P<{inner}>\\S+)")
                captures.append(inner)
        else:
            parts.append(re.escape(await evaluate(inner, names, helpers)))
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts) + tail, re.S), captures


async def payload_pattern(text: str, names: dict, helpers: dict):
    """
    Like L{pattern_for}, for payload text: placeholders may match across
    spaces within one payload line.
    """
    parts = []
    captures = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        inner = match.group(1).strip()
        if inner == "*":
            parts.append(r"[^\r\n]*")
        elif is_identifier(inner) and inner not in names:
            parts.append(f"(?P<{inner}>[^\\r\\n]*)")
            captures.append(inner)
        else:
            parts.append(re.escape(await evaluate(inner, names, helpers)))
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts), re.S), captures
