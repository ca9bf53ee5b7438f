"""
HTTP/1.1 requests and responses for the RVP front-end, without any I/O.

RVP needs things a general web framework makes awkward: any method name,
absolute-form targets, our own reason phrases, ``RVP-Notifications-Version``
on every response including the ones for unparseable requests, and limits
enforced before a body is buffered.  L{RequestParser} turns bytes into
L{Request} values (or an L{HttpError} after which the connection closes);
L{Response.render} produces the bytes of a reply.
"""

from __future__ import annotations

import re
from typing import Optional, Union

import attrs

NOTIFICATIONS_VERSION = "0.2"

REASONS = {
    100: "Continue",
    200: "Successful",
    207: "Multi-Status",
    301: "Moved Permanently",
    302: "Object Moved",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Access Denied",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/1\.([01])$")
_DIGITS = re.compile(rb"^[0-9]{1,15}$")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,15}$")
_FORBIDDEN_IN_VALUES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HttpError(Exception):
    """
    A request that cannot be read; answered with C{status}, then the
    connection closes (its framing can no longer be trusted).
    """

    def __init__(self, status: int, reason: str = ""):
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason


@attrs.define
class Headers:
    """
    Header fields in order, looked up without regard to case.
    """

    fields: list[tuple[str, str]] = attrs.Factory(list)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        name = name.lower()
        for key, value in self.fields:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.fields if key.lower() == name]

    def add(self, name: str, value: str) -> None:
        self.fields.append((name, value))

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


@attrs.define
class Request:
    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: Headers
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.headers.get_all("Connection") for t in v.split(",")}
        if self.version == "1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@attrs.define
class Response:
    status: int
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""
    reason: Optional[str] = None

    def render(self, close: bool = False) -> bytes:
        reason = self.reason or REASONS.get(self.status, "Unknown")
        lines = [f"HTTP/1.1 {self.status} {reason}", f"RVP-Notifications-Version: {NOTIFICATIONS_VERSION}"]
        for name, value in self.headers.fields:
            if name.lower() not in ("content-length", "rvp-notifications-version", "connection"):
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def response(status: int, body: bytes = b"", content_type: Optional[str] = None, **headers: str) -> Response:
    """
    A response with C{headers} given as keyword arguments (underscores
    become hyphens).
    """
    result = Response(status, Headers(), body)
    for name, value in headers.items():
        result.headers.add(name.replace("_", "-"), value)
    if content_type is not None:
        result.headers.add("Content-Type", content_type)
    return result


@attrs.frozen
class Limits:
    max_request_line: int = 8192
    max_header_line: int = 8192
    max_headers: int = 100
    max_header_bytes: int = 65536
    max_body: int = 256 * 1024


_NEED_MORE = object()


class RequestParser:
    """
    Feed bytes, get requests.  After an L{HttpError} the parser is spent:
    the caller answers the error and closes.
    """

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self._buffer = bytearray()
        self._state = "start"
        self._request: Optional[Request] = None
        self._header_bytes = 0
        self._remaining = 0
        self._chunks = bytearray()
        self.failed = False

    @property
    def in_progress(self) -> bool:
        """
        Whether part of a request has been received and not yet completed.
        """
        return bool(self._buffer) or self._state != "start"

    def feed(self, data: bytes) -> list[Union[Request, HttpError]]:
        if self.failed:
            return []
        self._buffer += data
        results: list[Union[Request, HttpError]] = []
        while True:
            try:
                result = self._step()
            except HttpError as error:
                self.failed = True
                self._buffer.clear()
                results.append(error)
                return results
            if result is _NEED_MORE:
                return results
            if result is not None:
                results.append(result)

    def _line(self, limit: int, status: int) -> Optional[bytes]:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > limit:
                raise HttpError(status, "line too long")
            return None
        if end > limit:
            raise HttpError(status, "line too long")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _step(self):
        state = self._state
        if state == "start":
            line = self._line(self.limits.max_request_line, 414)
            if line is None:
                return _NEED_MORE
            if not line:
                return None  # empty lines before a request are allowed
            self._request = self._request_line(line)
            self._header_bytes = 0
            self._state = "headers"
            return None
        if state == "headers":
            line = self._line(self.limits.max_header_line, 431)
            if line is None:
                return _NEED_MORE
            self._header_bytes += len(line) + 2
            if self._header_bytes > self.limits.max_header_bytes:
                raise HttpError(431, "headers too large")
            if line:
                self._header_line(line)
                return None
            return self._headers_done()
        if state == "body":
            if len(self._buffer) < self._remaining:
                return _NEED_MORE
            self._request.body = bytes(self._buffer[: self._remaining])
            del self._buffer[: self._remaining]
            return self._finish()
        if state == "chunk-size":
            line = self._line(1024, 400)
            if line is None:
                return _NEED_MORE
            size = line.split(b";", 1)[0].strip()
            if not _HEX.match(size):
                raise HttpError(400, "bad chunk size")
            size_value = int(size, 16)
            if len(self._chunks) + size_value > self.limits.max_body:
                raise HttpError(413, "body too large")
            if size_value == 0:
                self._state = "trailers"
            else:
                self._remaining = size_value
                self._state = "chunk-data"
            return None
        if state == "chunk-data":
            if len(self._buffer) < self._remaining + 2:
                return _NEED_MORE
            if bytes(self._buffer[self._remaining : self._remaining + 2]) != b"\r\n":
                raise HttpError(400, "bad chunk end")
            self._chunks += self._buffer[: self._remaining]
            del self._buffer[: self._remaining + 2]
            self._state = "chunk-size"
            return None
        if state == "trailers":
            line = self._line(self.limits.max_header_line, 431)
            if line is None:
                return _NEED_MORE
            self._header_bytes += len(line) + 2
            if self._header_bytes > self.limits.max_header_bytes:
                raise HttpError(431, "trailers too large")
            if line:
                return None  # trailers are read and ignored
            self._request.body = bytes(self._chunks)
            self._chunks = bytearray()
            return self._finish()
        raise AssertionError(state)

    def _request_line(self, line: bytes) -> Request:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        if not _TOKEN.match(method):
            raise HttpError(400, "malformed method")
        if not target or _FORBIDDEN_IN_VALUES.search(target) or b"\t" in target:
            raise HttpError(400, "malformed target")
        match = _VERSION.match(version)
        if match is None:
            if version.startswith(b"HTTP/"):
                raise HttpError(505, "unsupported HTTP version")
            raise HttpError(400, "malformed version")
        try:
            target_text = target.decode("ascii")
        except UnicodeDecodeError:
            raise HttpError(400, "target is not ASCII") from None
        return Request(method.decode("ascii"), target_text, "1." + match.group(1).decode(), Headers())

    def _header_line(self, line: bytes) -> None:
        headers = self._request.headers
        if line[:1] in (b" ", b"\t"):
            # An obsolete folded continuation of the previous field.
            if not headers.fields:
                raise HttpError(400, "continuation before any header")
            name, value = headers.fields[-1]
            headers.fields[-1] = (name, (value + " " + self._value(line.strip())).strip())
            return
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise HttpError(400, "malformed header")
        if len(headers.fields) >= self.limits.max_headers:
            raise HttpError(431, "too many headers")
        headers.add(name.decode("ascii"), self._value(value.strip(b" \t")))

    @staticmethod
    def _value(raw: bytes) -> str:
        if _FORBIDDEN_IN_VALUES.search(raw):
            raise HttpError(400, "control character in a header")
        # Header values are ISO-8859-1 by HTTP's rules; RVP's are ASCII.
        return raw.decode("latin-1")

    def _headers_done(self):
        headers = self._request.headers
        encodings = headers.get_all("Transfer-Encoding")
        lengths = headers.get_all("Content-Length")
        if encodings:
            if lengths:
                raise HttpError(400, "both Content-Length and Transfer-Encoding")
            codings = [t.strip().lower() for v in encodings for t in v.split(",") if t.strip()]
            if codings != ["chunked"]:
                raise HttpError(501, "unsupported transfer coding")
            self._state = "chunk-size"
            self._header_bytes = 0
            return None
        if lengths:
            values = {v.strip() for v in lengths for v in v.split(",")}
            if len(values) != 1 or not _DIGITS.match(next(iter(values)).encode("ascii", "replace")):
                raise HttpError(400, "malformed Content-Length")
            length = int(next(iter(values)))
            if length > self.limits.max_body:
                raise HttpError(413, "body too large")
            if length:
                self._remaining = length
                self._state = "body"
                return None
        return self._finish()

    def _finish(self) -> Request:
        request = self._request
        self._request = None
        self._state = "start"
        self._remaining = 0
        return request


# Targets: origin-form ("/instmsg/aliases/bob") or absolute-form
# ("http://host/instmsg/aliases/bob").


@attrs.frozen
class Target:
    host: Optional[str]  # lower case, from absolute-form only
    port: Optional[int]
    path: str


def split_target(target: str) -> Optional[Target]:
    """
    The parts of a request target or URL; None when it is neither an
    absolute path nor an http URL.
    """
    if target.startswith("/"):
        return Target(None, None, target.split("?", 1)[0])
    lowered = target[:7].lower()
    if lowered != "http://":
        return None
    rest = target[7:]
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    host, colon, port_text = authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
    if colon and not port_text.isdigit():
        return None
    if not host:
        return None
    port = int(port_text) if colon and port_text else None
    if port is not None and not 0 < port < 65536:
        return None
    return Target(host.lower(), port, ("/" + path if slash else "/").split("?", 1)[0])
