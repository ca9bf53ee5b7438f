"""
The MSNP wire format, without any I/O.

A command line is ``NAME [trid] arg arg ...`` terminated by CRLF (a bare LF
is accepted).  Some commands carry a payload: their last argument is a byte
count and exactly that many bytes follow the line.  Everything here turns
lines into L{Command} values and back, for client lines (what a server
reads) and server lines (what a client reads); L{msnp.msn.framing} cuts a
stream into lines and payloads, and the Twisted adapter in
L{msnp.msn.protocol} only moves bytes.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Optional, Sequence

import attrs

MAX_TRID = 2**32 - 1
MAX_HANDLE_BYTES = 129
MAX_NAME_BYTES = 387  # after URL-encoding
DEFAULT_MAX_LINE = 8192
MAX_SB_PAYLOAD = 1664

_COMMAND_NAME = re.compile(rb"^[A-Z]{3}$|^[0-9]{3}$")
_DECIMAL = re.compile(r"^[0-9]{1,10}$")
_HANDLE = re.compile(r"^[A-Za-z0-9._%+\-=~!#$&'*/?^`{|}]+@[A-Za-z0-9.\-]+$")


# The reason of the WireError for a line with nothing on it.
BLANK_LINE = "blank line"


class WireError(Exception):
    """
    A line that cannot be understood.  C{code} is the error number to answer
    with (None means: close the connection without answering), C{trid} the
    transaction ID to echo if one could be read.
    """

    def __init__(self, code: Optional[int], trid: Optional[int] = None, reason: str = ""):
        super().__init__(reason or str(code))
        self.code = code
        self.trid = trid
        self.reason = reason


@attrs.frozen
class Command:
    """
    One parsed command: C{name} is the three-letter code, C{trid} the
    transaction ID or None, C{args} the remaining parameters exactly as sent
    (still URL-encoded), C{payload} the bytes after the line, if any.
    """

    name: str
    trid: Optional[int]
    args: tuple[str, ...] = ()
    payload: Optional[bytes] = None


def parse_trid(token: str) -> int:
    """
    Parse a transaction ID; raise C{ValueError} unless it is a decimal in
    0..2**32-1.
    """
    if not _DECIMAL.match(token):
        raise ValueError(token)
    value = int(token)
    if value > MAX_TRID:
        raise ValueError(token)
    return value


def _salvage_trid(line: bytes) -> Optional[int]:
    """
    The transaction ID of a line that cannot be parsed, when its second
    token is one, so that the error can still be matched to the request.
    """
    tokens = line.split(None, 2)
    if len(tokens) < 2:
        return None
    try:
        return parse_trid(tokens[1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def split_line(line: bytes) -> tuple[str, list[str]]:
    """
    Split a raw line (without its terminator) into a command name and its
    parameters.  Raises L{WireError} with code 200 for anything that is not
    a three-letter command.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\x00" in line or b"\r" in line:
        raise WireError(200, _salvage_trid(line), "control character in line")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(200, _salvage_trid(line), "line is not UTF-8")
    tokens = text.split()
    if not tokens:
        raise WireError(None, reason=BLANK_LINE)
    name = tokens[0]
    if not _COMMAND_NAME.match(name.encode("ascii", "replace")):
        raise WireError(200, reason="not a command")
    return name, tokens[1:]


def take_trid(name: str, params: list[str]) -> tuple[int, list[str]]:
    """
    Take the leading transaction ID from C{params}.
    """
    if not params:
        raise WireError(200, reason=f"{name} without a transaction ID")
    try:
        trid = parse_trid(params[0])
    except ValueError:
        raise WireError(200, reason=f"{name} with a bad transaction ID")
    return trid, params[1:]


def parse_payload_length(trid: Optional[int], token: str, limit: int) -> int:
    """
    Parse the byte count that ends a payload command.
    """
    if not _DECIMAL.match(token):
        raise WireError(None, trid, "bad payload length")
    length = int(token)
    if length > limit:
        raise WireError(None, trid, "payload too long")
    return length


# URL-encoding of names.  Decoding accepts any %XX; encoding escapes what
# would break tokenisation or is not printable ASCII, as the official
# servers did.
_UNSAFE = frozenset(b"% \t\r\n\x00\x0b\x0c") | frozenset(range(0, 0x20)) | {0x7F}


def url_encode(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNSAFE or byte >= 0x80:
            out.append("%%%02X" % byte)
        else:
            out.append(chr(byte))
    return "".join(out)


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def url_decode(token: str) -> str:
    """
    Decode every %XX in C{token}; invalid UTF-8 after decoding raises
    L{ValueError}.
    """
    raw = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), token.encode("utf-8"))
    return raw.decode("utf-8")


def is_valid_handle(handle: str) -> bool:
    """
    Whether C{handle} looks like an account name: user@domain, at most 129
    bytes.
    """
    return len(handle.encode("utf-8")) <= MAX_HANDLE_BYTES and bool(_HANDLE.match(handle))


def handle_has_domain(handle: str) -> bool:
    local, at, domain = handle.partition("@")
    return bool(at) and bool(domain) and "." in domain.strip(".")


# Commands that change stored settings are refused for flooding with 800
# ("changing too rapidly"); every other command with 713 ("too active").
CHANGING_COMMANDS = frozenset({"REA", "PRP"})


def flood_error_code(name: Optional[str]) -> int:
    """
    The error that answers a command refused by the rate limit.
    """
    return 800 if name in CHANGING_COMMANDS else 713


# Client commands that carry no transaction ID.
NO_TRID_COMMANDS = frozenset({"PNG", "OUT"})


def parse_client_line(
    line: bytes, payload_commands: frozenset, payload_limit: int
) -> tuple[Command, Optional[int]]:
    """
    Parse one line sent by a client.  Returns the command (without payload)
    and, for a payload command, the number of payload bytes that follow.
    """
    name, params = split_line(line)
    if name in NO_TRID_COMMANDS:
        return Command(name, None, tuple(params)), None
    trid, params = take_trid(name, params)
    if name in payload_commands:
        if not params:
            raise WireError(None, trid, "payload command without a length")
        length = parse_payload_length(trid, params[-1], payload_limit)
        return Command(name, trid, tuple(params[:-1])), length
    return Command(name, trid, tuple(params)), None


def plain_msg_parser(ack_letters: frozenset, payload_limit: int) -> Callable[[bytes], Optional[tuple[int, bytes, int]]]:
    """
    A parser for C{MSG t L n} written the way every client writes it
    (single spaces, an optional CR, C{L} one of C{ack_letters}, C{n} within
    C{payload_limit}): it returns the TrID, acknowledgement letter and
    payload length of such a line, and None for any other.  A line it
    accepts reads the same through L{parse_client_line}; the rest is left
    to that, so that bad input gets exactly the general parser's answer.
    This is the switchboard's fast parser for L{msnp.msn.framing.Framer}.
    """

    def parse(line: bytes) -> Optional[tuple[int, bytes, int]]:
        parts = line.split(b" ")
        if len(parts) != 4 or parts[0] != b"MSG":
            return None
        _, trid, letter, length = parts
        if length[-1:] == b"\r":
            length = length[:-1]
        if letter not in ack_letters or not (trid.isdigit() and length.isdigit()) or len(trid) > 10 or len(length) > 10:
            return None
        trid_value = int(trid)
        length_value = int(length)
        if trid_value > MAX_TRID or length_value > payload_limit:
            return None
        return trid_value, letter, length_value

    return parse


def parse_plain_msg(line: bytes, ack_letters: frozenset, payload_limit: int) -> Optional[tuple[int, bytes, int]]:
    """
    The TrID, acknowledgement letter and payload length of C{line} when it
    is a plain C{MSG} (see L{plain_msg_parser}); None for any other line.
    """
    return plain_msg_parser(ack_letters, payload_limit)(line)


def plain_msg_command(frame: tuple[int, bytes, bytes]) -> Command:
    """
    The L{Command} the general parser makes of a plain C{MSG} that the fast
    parser took as C{(trid, letter, payload)}.
    """
    trid, letter, payload = frame
    return Command("MSG", trid, (letter.decode("ascii"),), payload)


# How a client reads what the server sends.  Server lines differ from
# client lines in which commands carry a TrID (protocol-reference 2.2) and
# which carry a payload (2.3); both depend on the dialect.

# Server commands that never carry a TrID, in every dialect.
SERVER_NO_TRID_COMMANDS = frozenset({"NLN", "FLN", "RNG", "JOI", "BYE", "MSG", "NOT", "IPG", "UBX", "OUT", "QNG", "BPR"})

# Server-to-client payload commands in MSNP2-12: MSG handle name n, NOT n,
# IPG n, GCF t file n, UBX handle n.
SERVER_PAYLOAD_COMMANDS = frozenset({"MSG", "NOT", "IPG", "GCF", "UBX"})


@attrs.frozen
class ServerLines:
    """
    The rules for reading server lines in one dialect: commands in
    C{no_trid} never carry a TrID; commands in C{optional_trid} carry one
    when their first parameter is a TrID (the same command is the reply to
    a request, with its TrID, and a line of a C{SYN} reply, without);
    errors carry one unless the request had none (a bare C{200}); every
    other command must.  Commands in C{payload_commands} end with the
    length of the payload that follows, except when one in C{ok_answers}
    is the bare acknowledgement C{NAME t OK}.
    """

    no_trid: frozenset = SERVER_NO_TRID_COMMANDS
    optional_trid: frozenset = frozenset()
    payload_commands: frozenset = SERVER_PAYLOAD_COMMANDS
    ok_answers: frozenset = frozenset()


# MSNP2-7: the lines of a SYN reply echo its TrID.
SERVER_LINES_MSNP2 = ServerLines()
# MSNP8-12: SYN sends the list lines without a TrID; LST and LSG only
# come that way, while GTC, BLP and PRP are also replies to requests.
SERVER_LINES_MSNP8 = ServerLines(
    no_trid=SERVER_NO_TRID_COMMANDS | {"LST", "LSG"}, optional_trid=frozenset({"GTC", "BLP", "PRP"})
)

# MSNP13-18: no SYN; the server also sends ADL/RML (someone added or
# removed the user), FQY answers, UBN/UBM relays and its policies in GCF,
# all with payloads; UBN and UBM carry no TrID.  The client's own ADL and
# RML are answered "ADL t OK" without one.
SERVER_LINES_MSNP13 = ServerLines(
    no_trid=SERVER_NO_TRID_COMMANDS | {"UBN", "UBM"},
    optional_trid=frozenset({"BLP", "PRP"}),
    payload_commands=SERVER_PAYLOAD_COMMANDS | {"ADL", "RML", "FQY", "UBN", "UBM"},
    ok_answers=frozenset({"ADL", "RML"}),
)


def parse_server_line(line: bytes, rules: ServerLines, payload_limit: int) -> tuple[Command, Optional[int]]:
    """
    Parse one line sent by a server under C{rules}.  Returns the command
    (without payload) and, for a payload command, the number of payload
    bytes that follow.  Raises L{WireError} for a line that cannot be read
    (code None when the stream cannot go on: a bad or too large payload
    length).
    """
    name, params = split_line(line)
    trid = None
    if name in rules.no_trid:
        pass
    elif name in rules.optional_trid or name.isdigit():
        if params:
            try:
                trid = parse_trid(params[0])
            except ValueError:
                pass
            else:
                params = params[1:]
    else:
        trid, params = take_trid(name, params)
    if name in rules.payload_commands and not (name in rules.ok_answers and params == ["OK"]):
        if not params:
            raise WireError(None, trid, "payload command without a length")
        length = parse_payload_length(trid, params[-1], payload_limit)
        return Command(name, trid, tuple(params[:-1])), length
    return Command(name, trid, tuple(params)), None


def format_line(name: str, trid: Optional[int], *args: object) -> bytes:
    """
    Build one outgoing line, CRLF included.  Arguments are written as given:
    names must already be URL-encoded by the caller.
    """
    parts = [name]
    if trid is not None:
        parts.append(str(trid))
    parts.extend(str(a) for a in args if a is not None)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def format_payload(name: str, trid: Optional[int], args: Sequence[object], payload: bytes) -> bytes:
    """
    Build a payload command: the line ends with the payload length, then the
    payload follows with no terminator of its own.
    """
    return format_line(name, trid, *args, len(payload)) + payload


def format_error(code: int, trid: Optional[int]) -> bytes:
    return format_line("%03d" % code, trid)


def render(command: Command) -> bytes:
    """
    Serialise a L{Command} the way a client would send it.
    """
    if command.payload is not None:
        return format_payload(command.name, command.trid, command.args, command.payload)
    return format_line(command.name, command.trid, *command.args)


def join_lines(lines: Iterable[bytes]) -> bytes:
    return b"".join(lines)
