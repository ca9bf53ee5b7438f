"""
SIP messages as bytes and back, without any I/O (RFC 3261 §7, §18.3, §20).

A message is a start line, header fields, an empty line and a body of bytes.
Header names are matched without case and compact forms (``v``, ``f``,
``l``...) are read as their full names.  Content-Length counts octets: a
UTF-8 body is carried byte for byte.  L{parse_datagram} reads one UDP
datagram; L{StreamParser} frames messages out of a TCP or TLS byte stream.
Both refuse oversized input with L{ParseError}.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional, Union

from msnp.sip.grammar import Address, CSeq, GrammarError, Via, is_decimal, is_token, split_list

SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 and later RFCs' compact forms.
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
}

# How names are written out; anything else is written as received.
_CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Allow", "Allow-Events", "Call-ID", "Contact",
        "Content-Disposition", "Content-Encoding", "Content-Length", "Content-Type", "CSeq", "Date", "Event",
        "Expires", "From", "Max-Forwards", "Min-Expires", "Record-Route", "Require", "Retry-After", "Route",
        "Server", "Subject", "Subscription-State", "Supported", "To", "Unsupported", "User-Agent", "Via",
        "Warning", "WWW-Authenticate", "Proxy-Require", "Proxy-Authenticate", "RSeq", "RAck",
    )
}

# Header fields whose value is a comma-separated list (RFC 3261 §7.3.1).
LIST_HEADERS = frozenset(
    {
        "via", "route", "record-route", "contact", "allow", "supported", "require", "proxy-require",
        "unsupported", "accept", "accept-encoding", "accept-language", "allow-events",
    }
)

_METHOD = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")

# Limits (see protocol-notes/sip.md).
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 128


class ParseError(Exception):
    """
    Bytes that are not a SIP message we accept.  C{status} is the response
    code to answer a request with (400, 413, 505...); C{message} the
    partly read message when the start line and headers could be read
    (so a response can still be built), else None.
    """

    def __init__(self, reason: str, status: int = 400, message: Optional["Message"] = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message


def canonical_name(name: str) -> str:
    """
    The usual spelling of a standard header (compact forms expanded);
    any other name as given (Microsoft's ms-diagnostics, ms-text-format
    are lower case, and some peers match them as written).
    """
    lower = name.lower()
    lower = COMPACT_FORMS.get(lower, lower)
    return _CANONICAL_NAMES.get(lower, name)


class Headers:
    """
    Header fields in order.  Lookups ignore case and compact forms; values
    of list headers can be read element by element with L{get_list}.
    """

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields:
            self.add(name, value)

    @staticmethod
    def _key(name: str) -> str:
        lower = name.lower()
        return COMPACT_FORMS.get(lower, lower)

    def add(self, name: str, value: str) -> None:
        self._fields.append((canonical_name(name), str(value)))

    def set(self, name: str, value) -> None:
        """
        Replace every field C{name} with one, where the first one was.
        """
        key = self._key(name)
        index = next((i for i, (n, _) in enumerate(self._fields) if self._key(n) == key), len(self._fields))
        self.remove(name)
        self._fields.insert(index, (canonical_name(name), str(value)))

    def remove(self, name: str) -> None:
        key = self._key(name)
        self._fields = [(n, v) for n, v in self._fields if self._key(n) != key]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        key = self._key(name)
        for n, v in self._fields:
            if self._key(n) == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = self._key(name)
        return [v for n, v in self._fields if self._key(n) == key]

    def replace_first_element(self, name: str, value: str) -> None:
        """
        Replace the first element of list header C{name} (the top Via),
        leaving every other field where it is.
        """
        key = self._key(name)
        for index, (field, current) in enumerate(self._fields):
            if self._key(field) == key:
                self._fields[index] = (field, ", ".join([value] + split_list(current)[1:]))
                return
        self._fields.insert(0, (canonical_name(name), value))

    def get_list(self, name: str) -> list[str]:
        """
        Every element of a list header, whether comma-joined or repeated.
        """
        values = []
        for value in self.get_all(name):
            values.extend(split_list(value))
        return values

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def copy(self) -> "Headers":
        copy = Headers()
        copy._fields = list(self._fields)
        return copy

    def __eq__(self, other) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


class Message:
    """
    What requests and responses share: header fields and a body of bytes.
    """

    headers: Headers
    body: bytes

    # Typed access to the fields every request carries (§8.1.1).

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.headers.get("CSeq") or "")

    @property
    def from_(self) -> Address:
        return Address.parse(self.headers.get("From") or "")

    @property
    def to(self) -> Address:
        return Address.parse(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.get_list("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_list("Via")
        if not values:
            raise GrammarError("no Via")
        return Via.parse(values[0])

    @property
    def content_type(self) -> Optional[str]:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    def header_lines(self) -> bytes:
        lines = [f"{name}: {value}\r\n" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}\r\n")
        return "".join(lines).encode("utf-8")

    def to_bytes(self) -> bytes:
        """
        The message on the wire; Content-Length is always written, as the
        body's length in octets.
        """
        return self.start_line().encode("utf-8") + b"\r\n" + self.header_lines() + b"\r\n" + self.body


class Request(Message):
    def __init__(self, method: str, uri, headers: Optional[Headers] = None, body: bytes = b""):
        self.method = method
        self.uri = str(uri)
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} {self.call_id}>"


class Response(Message):
    # True on the 408/503 a client transaction makes up (§8.1.3.1).
    made_up = False

    def __init__(self, status: int, reason: str = "", headers: Optional[Headers] = None, body: bytes = b""):
        self.status = status
        self.reason = reason or REASONS.get(status, "Unknown")
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} {self.call_id}>"


REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}

# Fields without which a request is refused with 400 (§8.1.1).
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"{what} is not UTF-8")


def _parse_head(head: bytes) -> Message:
    """
    Start line and header fields (without the final empty line).
    """
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    start = _decode(lines[0], "start line")
    message: Message
    if start.startswith(SIP_VERSION + " ") or start.upper().startswith("SIP/"):
        match = re.match(r"^SIP/(\d+\.\d+) (\d{3}) ?(.*)$", start)
        if not match:
            raise ParseError("bad status line")
        if match.group(1) != "2.0":
            raise ParseError("unsupported SIP version", 505)
        status = int(match.group(2))
        if not 100 <= status <= 699:
            raise ParseError("status code out of range")
        message = Response(status, match.group(3) or REASONS.get(status, ""))
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not _METHOD.match(parts[0]) or not parts[1]:
            raise ParseError("bad request line")
        if parts[2].upper() != SIP_VERSION:
            if parts[2].upper().startswith("SIP/"):
                raise ParseError("unsupported SIP version", 505, Request(parts[0], parts[1]))
            raise ParseError("bad request line")
        message = Request(parts[0], parts[1])
    fields: list[list[str]] = []
    for raw in lines[1:]:
        line = _decode(raw, "header field")
        if line[:1] in (" ", "\t"):
            # Folded continuation of the previous field (§7.3.1).
            if not fields:
                raise ParseError("continuation line before any header", message=message)
            fields[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not is_token(name):
            raise ParseError("bad header field", message=message if fields else None)
        fields.append([name, value.strip()])
    if len(fields) > MAX_HEADER_FIELDS:
        raise ParseError("too many header fields", 400)
    for name, value in fields:
        message.headers.add(name, value)
    return message


def _check(message: Message) -> None:
    """
    The fields every message needs, readable (§8.1.1, §8.2.2).
    """
    for name in MANDATORY:
        if name not in message.headers:
            raise ParseError(f"missing {name}", message=message if "Via" in message.headers else None)
    try:
        cseq = message.cseq
        message.from_, message.to, message.top_via
    except GrammarError as error:
        raise ParseError(f"malformed header: {error}", message=message)
    if isinstance(message, Request):
        if cseq.method != message.method:
            raise ParseError("CSeq method differs from the request method", message=message)
        max_forwards = message.headers.get("Max-Forwards")
        if max_forwards is not None and (not is_decimal(max_forwards) or len(max_forwards) > 3):
            raise ParseError("bad Max-Forwards", message=message)


def _content_length(message: Message) -> Optional[int]:
    value = message.headers.get("Content-Length")
    if value is None:
        return None
    if not is_decimal(value) or len(value) > 9:
        raise ParseError("bad Content-Length", message=message)
    return int(value)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = data.find(separator)
        if index >= 0:
            return data[:index], data[index + len(separator) :]
    raise ParseError("no end of header")


def parse_datagram(data: bytes, max_body: int = MAX_BODY_BYTES) -> Message:
    """
    One message from one UDP datagram (§18.3): without Content-Length the
    body runs to the end of the datagram; a shorter Content-Length cuts
    off the rest; a longer one is an error.
    """
    if len(data) > MAX_HEADER_BYTES + max_body:
        raise ParseError("datagram too large", 513)
    head, rest = _split_head(data)
    if len(head) > MAX_HEADER_BYTES:
        raise ParseError("header too large", 513)
    message = _parse_head(head)
    length = _content_length(message)
    if length is None:
        body = rest
    elif length > len(rest):
        raise ParseError("body shorter than Content-Length", message=message)
    else:
        body = rest[:length]
    if len(body) > max_body:
        raise ParseError("body too large", 413 if isinstance(message, Request) else 400, message)
    message.body = body
    _check(message)
    return message


class StreamParser:
    """
    Frames messages out of a TCP or TLS byte stream (§18.3).  Content-Length
    is required.  CRLFs between messages are skipped; each CRLFCRLF is a
    keep-alive ping (RFC 5626 §4.4.1) counted in C{pings}, for the
    transport to answer with a CRLF pong.

    L{feed} returns what the bytes completed: messages, and L{ParseError}s
    for messages that were framed but are not valid (the stream goes on).
    It raises L{ParseError} when the framing itself is lost (no usable
    Content-Length, oversized header or body): close the connection then.
    """

    def __init__(self, max_body: int = MAX_BODY_BYTES, max_header: int = MAX_HEADER_BYTES):
        self._buffer = bytearray()
        self._max_body = max_body
        self._max_header = max_header
        self._head: Optional[Message] = None
        self._body_length = 0
        self._line_ends = 0
        self.pings = 0
        self.failed = False

    def feed(self, data: bytes) -> list:
        if self.failed:
            raise ParseError("stream already failed")
        self._buffer.extend(data)
        results: list = []
        try:
            while True:
                try:
                    message = self._next()
                except _InvalidMessage as invalid:
                    results.append(invalid.error)
                    continue
                if message is None:
                    return results
                results.append(message)
        except ParseError as error:
            self.failed = True
            error.parsed = results
            raise

    def _skip_line_ends(self) -> None:
        buffer = self._buffer
        skipped = 0
        while True:
            if buffer[skipped : skipped + 2] == b"\r\n":
                skipped += 2
            elif buffer[skipped : skipped + 1] == b"\n":
                skipped += 1
            else:
                break
            self._line_ends += 1
            if self._line_ends == 2:
                self.pings += 1
                self._line_ends = 0
        del buffer[:skipped]
        if buffer[:1] not in (b"", b"\r"):
            self._line_ends = 0

    def _next(self) -> Optional[Message]:
        buffer = self._buffer
        if self._head is None:
            self._skip_line_ends()
            index = buffer.find(b"\r\n\r\n")
            if index < 0:
                if len(buffer) > self._max_header:
                    raise ParseError("header too large", 513)
                return None
            if index > self._max_header:
                raise ParseError("header too large", 513)
            head = bytes(buffer[:index])
            del buffer[: index + 4]
            message = _parse_head(head)
            length = _content_length(message)
            if length is None:
                raise ParseError("Content-Length is required on stream transports", message=message)
            if length > self._max_body:
                raise ParseError("body too large", 413 if isinstance(message, Request) else 400, message)
            self._head, self._body_length = message, length
        if len(buffer) < self._body_length:
            return None
        message, self._head = self._head, None
        message.body = bytes(buffer[: self._body_length])
        del buffer[: self._body_length]
        try:
            _check(message)
        except ParseError as error:
            raise _InvalidMessage(error)
        return message

    @property
    def pending(self) -> int:
        """
        Bytes held that do not yet make a whole message.
        """
        return len(self._buffer)


class _InvalidMessage(Exception):
    def __init__(self, error: ParseError):
        self.error = error


AnyMessage = Union[Request, Response]
