"""
The pieces of SIP header values (RFC 3261 §19, §20, §25): URIs (sip, sips,
tel, IPv6 hosts), name-addr addresses with parameters, Via, CSeq, generic
parameters and comma-separated lists.  Pure functions on text; every
parser raises L{GrammarError} on input it cannot read.
"""

from __future__ import annotations

import re
from typing import Optional

import attrs

MAGIC_COOKIE = "z9hG4bK"

_TOKEN_CHARS = "-.!%*_+`'~"
_TOKEN = re.compile(r"^[A-Za-z0-9" + re.escape(_TOKEN_CHARS) + r"]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?$")
# Parameter values written without quotes: tokens, hosts, IPv6 references.
_BARE_VALUE = re.compile(r"^[A-Za-z0-9" + re.escape(_TOKEN_CHARS) + r":\[\]]+$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


class GrammarError(ValueError):
    """
    A header value that does not follow the grammar.
    """


def is_decimal(text: str) -> bool:
    """
    ASCII digits only (str.isdigit also takes superscripts and other scripts).
    """
    return text.isascii() and text.isdigit()


def is_token(text: str) -> bool:
    return bool(_TOKEN.match(text))


def _split_outside_quotes(text: str, separator: str, angle: bool = True) -> list[str]:
    """
    Split C{text} at C{separator} where it is neither inside a quoted
    string nor (with C{angle}) inside angle brackets.
    """
    parts, current = [], []
    quoted = escaped = False
    depth = 0
    for char in text:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif angle and char == "<":
            depth += 1
        elif angle and char == ">":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise GrammarError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def split_list(value: str) -> list[str]:
    """
    The elements of a comma-separated header value (Via, Contact, Route,
    Allow, Supported...), commas inside quotes and <...> left alone.
    """
    return [part.strip() for part in _split_outside_quotes(value, ",") if part.strip()]


def parse_params(text: str) -> dict[str, Optional[str]]:
    """
    C{;a=b;c;d="q"} → {"a": "b", "c": None, "d": "q"}.  Names are lower
    case; quoted values are unquoted.
    """
    params: dict[str, Optional[str]] = {}
    if not text.strip():
        return params
    if not text.lstrip().startswith(";"):
        raise GrammarError("parameters must start with ';'")
    for part in _split_outside_quotes(text.strip()[1:], ";", angle=False):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not is_token(name):
            raise GrammarError(f"bad parameter name {name!r}")
        if eq:
            value = value.strip()
            if value.startswith('"'):
                value = unquote(value)
            elif not value or any(c in value for c in ' \t"<>,'):
                # host names, IPv6 references and tokens only
                if not re.match(r"^\[[0-9A-Fa-f:.]+\]$", value):
                    raise GrammarError(f"bad parameter value {value!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, Optional[str]]) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(";" + name)
        elif not _BARE_VALUE.match(value):
            out.append(f";{name}={quote(value)}")
        else:
            out.append(f";{name}={value}")
    return "".join(out)


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        raise GrammarError("not a quoted string")
    body, out, escaped = text[1:-1], [], False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise GrammarError("stray quote in quoted string")
        else:
            out.append(char)
    if escaped:
        raise GrammarError("quoted string ends in a backslash")
    return "".join(out)


def _quoted_end(text: str) -> int:
    """
    Where the quoted string that C{text} starts with ends (the index after
    its closing quote).
    """
    escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index + 1
    raise GrammarError("unterminated quoted string")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def display_name_part(name: str) -> str:
    """
    C{name} as the display name before a name-addr's C{<uri>}, with its
    separating space ("" for no name): quoted, with control characters
    (which no quoted-string may hold, escaped or not) as spaces.
    """
    name = " ".join("".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in name).split())
    return f"{quote(name)} " if name else ""


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        return bool(re.match(r"^\[[0-9A-Fa-f:.]+\]$", host)) and ":" in host
    if _IPV4.match(host):
        return all(int(part) < 256 for part in host.split("."))
    return bool(_HOSTNAME.match(host))


def split_hostport(text: str) -> tuple[str, Optional[int]]:
    """
    C{host}, C{host:port}, C{[v6]} or C{[v6]:port} → (host, port); IPv6
    hosts keep their brackets.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise GrammarError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise GrammarError("junk after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = text.partition(":")
        port_text = port_text if colon else None
    if not _valid_host(host):
        raise GrammarError(f"bad host {host!r}")
    port = None
    if port_text is not None:
        if not is_decimal(port_text) or not 0 < int(port_text) < 65536:
            raise GrammarError(f"bad port {port_text!r}")
        port = int(port_text)
    return host.lower(), port


def format_hostport(host: str, port: Optional[int]) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


@attrs.frozen
class URI:
    """
    A sip:, sips: or tel: URI.  For tel: the number is C{user} and C{host}
    is empty.  Parameter names are lower case.
    """

    scheme: str
    user: Optional[str]
    host: str
    port: Optional[int] = None
    params: dict = attrs.field(factory=dict, hash=False)
    headers: str = ""
    password: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> "URI":
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips", "tel"):
            raise GrammarError(f"unsupported URI {text[:40]!r}")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            if not number or not re.match(r"^[0-9A-Fa-f*#+\-.()pw]+$", number):
                raise GrammarError("bad tel number")
            return cls("tel", number, "", None, parse_params(";" + params) if params else {})
        rest, _, headers = rest.partition("?")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            if not userinfo or any(c in userinfo for c in " <>\"\t"):
                raise GrammarError("bad user part")
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
        # Parameters start at the first ';' after the host (an IPv6
        # reference holds colons but no semicolons).
        hostport, semi, params = rest.partition(";")
        host, port = split_hostport(hostport)
        return cls(scheme, user, host, port, parse_params(";" + params) if semi else {}, headers, password)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        text = f"{self.scheme}:{userinfo}{format_hostport(self.host, self.port)}{format_params(self.params)}"
        return text + (f"?{self.headers}" if self.headers else "")

    @property
    def address_of_record(self) -> str:
        """
        C{user@host}, lower case: who this URI names, without port or
        parameters (how msnp handles name federated users).
        """
        if self.scheme == "tel" or self.user is None:
            return ""
        return f"{unescape(self.user)}@{self.host}".lower()

    @property
    def transport(self) -> Optional[str]:
        value = self.params.get("transport")
        return value.lower() if value else None

    def with_params(self, **params) -> "URI":
        merged = dict(self.params)
        for name, value in params.items():
            if value is False:
                merged.pop(name, None)
            else:
                merged[name] = value
        return attrs.evolve(self, params=merged)


def unescape(text: str) -> str:
    """
    %HH escapes in a URI user part.
    """
    try:
        return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)
    except ValueError:
        return text


@attrs.frozen
class Address:
    """
    A name-addr or addr-spec with header parameters (From, To, Contact,
    Route, Record-Route): C{display} name, C{uri}, C{params} such as tag.
    C{uri} is None only for the Contact C{*}.
    """

    uri: Optional[URI]
    display: Optional[str] = None
    params: dict = attrs.field(factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "Address":
        text = text.strip()
        if text == "*":
            return cls(None)
        display = None
        if text.startswith('"'):
            # The display name may hold "<" (and anything else) quoted.
            end = _quoted_end(text)
            if not text[end:].lstrip().startswith("<"):
                raise GrammarError("quoted display name without <URI>")
            display = unquote(text[:end])
            uri_text, close, params = text[end:].lstrip()[1:].partition(">")
            if not close:
                raise GrammarError("unterminated <URI>")
            return cls(URI.parse(uri_text), display, parse_params(params))
        if "<" in text:
            head, _, rest = text.partition("<")
            head = head.strip()
            if head.startswith('"'):
                display = unquote(head)
            elif head:
                if not all(is_token(word) for word in head.split()):
                    raise GrammarError("bad display name")
                display = " ".join(head.split())
            uri_text, close, params = rest.partition(">")
            if not close:
                raise GrammarError("unterminated <URI>")
            return cls(URI.parse(uri_text), display, parse_params(params))
        # addr-spec: parameters after the URI belong to the header (§20.10).
        uri_text, semi, params = text.partition(";")
        if "?" in uri_text or "," in uri_text:
            raise GrammarError("URI with '?' or ',' must be in angle brackets")
        return cls(URI.parse(uri_text), None, parse_params(";" + params) if semi else {})

    def __str__(self) -> str:
        if self.uri is None:
            return "*"
        name = f"{quote(self.display)} " if self.display else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> Optional[str]:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> "Address":
        return attrs.evolve(self, params={**self.params, "tag": tag})


@attrs.frozen
class Via:
    """
    One Via value: C{SIP/2.0/UDP host:port;branch=...;rport...}.
    """

    transport: str
    host: str
    port: Optional[int] = None
    params: dict = attrs.field(factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "Via":
        text = text.strip()
        match = re.match(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(.*)$", text, re.IGNORECASE)
        if not match:
            raise GrammarError("bad Via protocol")
        transport, rest = match.group(1).upper(), match.group(2)
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise GrammarError("unterminated IPv6 reference")
            close = rest.find(";", end)
        else:
            close = rest.find(";")
        hostport, params = (rest, "") if close < 0 else (rest[:close], rest[close:])
        host, port = split_hostport(hostport)
        return cls(transport, host, port, parse_params(params))

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {format_hostport(self.host, self.port)}{format_params(self.params)}"

    @property
    def branch(self) -> Optional[str]:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        return self.host, self.port or default_port(self.transport)


def default_port(transport: str) -> int:
    return 5061 if transport.upper() == "TLS" else 5060


@attrs.frozen
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> "CSeq":
        parts = text.split()
        if len(parts) != 2 or not is_decimal(parts[0]) or len(parts[0]) > 10 or not is_token(parts[1]):
            raise GrammarError("bad CSeq")
        number = int(parts[0])
        if number >= 2**31:
            raise GrammarError("CSeq out of range")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_media_type(text: str) -> tuple[str, dict]:
    """
    C{text/plain; charset=UTF-8} → ("text/plain", {"charset": "UTF-8"}).
    """
    kind, _, params = text.partition(";")
    kind = kind.strip().lower()
    if kind.count("/") != 1 or not all(is_token(part) for part in kind.split("/")):
        raise GrammarError(f"bad media type {text[:40]!r}")
    return kind, parse_params(";" + params) if params.strip() else {}


def parse_event(text: str) -> tuple[str, dict]:
    """
    C{Event: presence;id=1} → ("presence", {"id": "1"}).
    """
    package, _, params = text.partition(";")
    package = package.strip().lower()
    if not is_token(package):
        raise GrammarError("bad event package")
    return package, parse_params(";" + params) if params.strip() else {}
