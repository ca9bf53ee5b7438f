"""
Reading a transcript file into steps.

A transcript is one conversation: lines a named client sends (C{alice>}),
lines it must receive (C{alice<}), payload lines after either (C{|}),
blocks of received lines in any order, and a few plain-English directives
(connecting, hanging up, being disconnected, silence, waits).  The full
format is in protocol-notes/transcripts.md; this module only parses, the
engine gives the steps their meaning.
"""

from __future__ import annotations

import ast
import re
from typing import Optional, Union

import attrs

_CLIENT = r"[A-Za-z][A-Za-z0-9_-]*"
_SEND = re.compile(rf"^({_CLIENT})>\s?(.*)$")
_EXPECT = re.compile(rf"^({_CLIENT})<\s?(.*)$")
_DURATION = r"([0-9]+(?:\.[0-9]+)?)\s*s"

_DIRECTIVES = [
    ("connect", re.compile(rf"^({_CLIENT}) connects to (\S+)$")),
    ("hang_up", re.compile(rf"^({_CLIENT}) hangs up$")),
    ("disconnected", re.compile(rf"^({_CLIENT}) is disconnected$")),
    ("silence", re.compile(rf"^({_CLIENT}) hears nothing for {_DURATION}$")),
    ("answers_challenges", re.compile(rf"^({_CLIENT}) answers challenges$")),
    ("ignores", re.compile(rf"^({_CLIENT}) ignores ([A-Z0-9]{{3}}(?:,\s*[A-Z0-9]{{3}})*)$")),
    ("raw", re.compile(rf"^({_CLIENT}) sends raw (\".*\"|'.*')$")),
    ("sign_in", re.compile(rf"^({_CLIENT}) signs in with (MSNP[0-9]+)(?: as ([A-Z]{{3}}))?$")),
    ("read_offline", re.compile(rf"^({_CLIENT}) reads offline message (\S+)$")),
    ("wait", re.compile(rf"^wait {_DURATION}$")),
    ("timeout", re.compile(rf"^timeout {_DURATION}$")),
]

ANY_ORDER = "in any order:"
# Directives that may be followed by payload lines (what they must find).
_WITH_PAYLOAD = frozenset({"read_offline"})


class TranscriptSyntaxError(Exception):
    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@attrs.define
class Send:
    """
    C{client> text}, with C{payload} the C{|} lines after it (joined with
    CRLF) or None.
    """

    client: str
    text: str
    payload: Optional[str] = None
    line: int = 0


@attrs.define
class Expect:
    """
    C{client< text}: the next line C{client} receives must match; with
    C{payload}, so must the bytes after it.
    """

    client: str
    text: str
    payload: Optional[str] = None
    line: int = 0


@attrs.define
class AnyOrder:
    """
    Received lines that may arrive in any order (per client).
    """

    expects: list
    line: int = 0


@attrs.define
class Directive:
    """
    One of the plain-English steps: C{kind} names it, C{client} is the
    client it is about (None for C{wait} and C{timeout}), C{args} the rest;
    C{payload} the C{|} lines after the directives that take them.
    """

    kind: str
    client: Optional[str]
    args: tuple
    line: int = 0
    text: str = ""
    payload: Optional[str] = None


Step = Union[Send, Expect, AnyOrder, Directive]


@attrs.define
class Transcript:
    path: str
    steps: list


def _directive(text: str, number: int, path: str) -> Directive:
    for kind, pattern in _DIRECTIVES:
        match = pattern.match(text)
        if match is None:
            continue
        groups = match.groups()
        if kind in ("wait", "timeout"):
            return Directive(kind, None, (float(groups[0]),), number, text)
        client, rest = groups[0], groups[1:]
        if kind == "silence":
            rest = (float(rest[0]),)
        elif kind == "ignores":
            rest = tuple(name.strip() for name in rest[0].split(","))
        elif kind == "raw":
            try:
                value = ast.literal_eval(rest[0])
            except (ValueError, SyntaxError):
                raise TranscriptSyntaxError(path, number, f"not a quoted string: {rest[0]}")
            rest = (value.encode("utf-8"),)
        return Directive(kind, client, tuple(rest), number, text)
    raise TranscriptSyntaxError(path, number, f"not a transcript line: {text}")


def parse(text: str, path: str = "<transcript>") -> Transcript:
    """
    The steps of a transcript.  Blank lines and lines starting with C{#}
    are skipped.
    """
    steps: list = []
    block: Optional[AnyOrder] = None
    last: Optional[Union[Send, Expect, Directive]] = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        indented = raw[:1].isspace()
        if stripped.startswith("|"):
            if last is None:
                raise TranscriptSyntaxError(path, number, "payload line without a command before it")
            content = stripped[2:] if stripped.startswith("| ") else stripped[1:]
            last.payload = content if last.payload is None else last.payload + "\r\n" + content
            continue
        if not stripped or stripped.startswith("#"):
            continue
        last = None
        if block is not None and not indented:
            block = None
        if stripped == ANY_ORDER:
            block = AnyOrder([], number)
            steps.append(block)
            continue
        send = _SEND.match(stripped)
        expect = _EXPECT.match(stripped)
        if block is not None:
            if expect is None:
                raise TranscriptSyntaxError(path, number, "only received lines (client<) go in an any-order block")
            last = Expect(expect.group(1), expect.group(2).rstrip(), None, number)
            block.expects.append(last)
            continue
        if send is not None:
            last = Send(send.group(1), send.group(2).rstrip(), None, number)
            steps.append(last)
        elif expect is not None:
            last = Expect(expect.group(1), expect.group(2).rstrip(), None, number)
            steps.append(last)
        else:
            directive = _directive(stripped, number, path)
            steps.append(directive)
            if directive.kind in _WITH_PAYLOAD:
                last = directive
    for step in steps:
        if isinstance(step, AnyOrder) and not step.expects:
            raise TranscriptSyntaxError(path, step.line, "empty any-order block")
    return Transcript(path, steps)


def load(path: str) -> Transcript:
    with open(path, encoding="utf-8") as handle:
        return parse(handle.read(), path)
