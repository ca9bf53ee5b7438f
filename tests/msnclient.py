"""
A scripted MSNP client for conversation tests: send lines, wait for the
lines the server must answer, with payloads read byte-exact.
"""

from __future__ import annotations

import hashlib
import re
from typing import Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from msnp.msn import challenge

DEFAULT_TIMEOUT = 5.0

# Server-to-client commands whose last parameter is a payload length.
# ADL, RML, FQY, UBN and UBM from MSNP13 (ADL/RML answers end with OK).
PAYLOAD_REPLIES = frozenset({"MSG", "NOT", "IPG", "GCF", "UBX", "ADL", "RML", "FQY", "UBN", "UBM"})


class Received:
    """
    One line from the server: C{text} without CRLF, C{args} split on
    spaces, C{payload} the bytes that followed it, if any.
    """

    def __init__(self, text: str, payload: Optional[bytes] = None):
        self.text = text
        self.args = text.split(" ")
        self.name = self.args[0]
        self.payload = payload

    def __repr__(self) -> str:
        return f"<{self.text!r}{' +payload' if self.payload is not None else ''}>"


class ScriptedClient(Protocol):
    def __init__(self, name: str = "client"):
        self.name = name
        self.buffer = b""
        self.received: list[Received] = []
        self.waiting: Optional[defer.Deferred] = None
        self.closed = defer.Deferred()
        self.is_closed = False
        self.payload_replies = set(PAYLOAD_REPLIES)
        # Like a real client, answer CHL challenges (MSNP6+) without the
        # test seeing them; a test of the challenge itself turns this off.
        self.answer_challenges = True
        self.dialect = 0

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line = self.buffer[:end].decode("utf-8")
            parts = line.split(" ")
            if parts[0] in self.payload_replies and parts[-1].isdigit():
                length = int(parts[-1])
                if len(self.buffer) < end + 2 + length:
                    break
                payload = self.buffer[end + 2 : end + 2 + length]
                self.buffer = self.buffer[end + 2 + length :]
                self.received.append(Received(line, payload))
            else:
                self.buffer = self.buffer[end + 2 :]
                if not self._answered_by_client(parts):
                    self.received.append(Received(line))
        self._wake()

    def _answered_by_client(self, parts: list[str]) -> bool:
        if parts[0] == "VER" and len(parts) == 3 and parts[2].startswith("MSNP"):
            self.dialect = int(parts[2][4:])
        if not self.answer_challenges:
            return False
        if parts[0] == "CHL" and len(parts) == 3:
            product, answer = challenge_answer(self.dialect, parts[2])
            self.send_payload(f"QRY {AUTO_QRY_TRID} {product}", answer.encode("ascii"))
            return True
        return parts == ["QRY", str(AUTO_QRY_TRID)]

    def connectionLost(self, reason=None) -> None:
        self.is_closed = True
        self.closed.callback(None)
        self._wake()

    def _wake(self) -> None:
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(None)

    # Sending

    def send(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.transport.write(data)

    def send_payload(self, line: str, payload: bytes) -> None:
        self.transport.write(f"{line} {len(payload)}".encode("utf-8") + b"\r\n" + payload)

    # Receiving

    @defer.inlineCallbacks
    def _wait(self, timeout: float):
        d = defer.Deferred()
        self.waiting = d
        timer = reactor.callLater(timeout, lambda: d.called or (setattr(self, "waiting", None), d.callback("timeout")))
        result = yield d
        if timer.active():
            timer.cancel()
        return result

    @defer.inlineCallbacks
    def next(self, timeout: float = DEFAULT_TIMEOUT):
        """
        The next line from the server (fails if none arrives in time).
        """
        while not self.received:
            if self.is_closed:
                raise AssertionError(f"{self.name}: connection closed while waiting for a line")
            result = yield self._wait(timeout)
            if result == "timeout" and not self.received:
                raise AssertionError(f"{self.name}: no line within {timeout}s")
        return self.received.pop(0)

    @defer.inlineCallbacks
    def expect(self, pattern: str, timeout: float = DEFAULT_TIMEOUT):
        """
        The next line must match C{pattern} (a regular expression matched
        against the whole line); returns the match.
        """
        line = yield self.next(timeout)
        match = re.fullmatch(pattern, line.text)
        if match is None:
            raise AssertionError(f"{self.name}: expected {pattern!r}, got {line.text!r}")
        return match

    @defer.inlineCallbacks
    def expect_line(self, text: str, timeout: float = DEFAULT_TIMEOUT):
        """
        The next line must be exactly C{text}; returns the L{Received}.
        """
        line = yield self.next(timeout)
        if line.text != text:
            raise AssertionError(f"{self.name}: expected {text!r}, got {line.text!r}")
        return line

    @defer.inlineCallbacks
    def expect_silence(self, seconds: float = 0.2):
        """
        Nothing more arrives for C{seconds}.
        """
        if not self.received:
            yield self._wait(seconds)
        if self.received:
            raise AssertionError(f"{self.name}: expected nothing, got {self.received[0].text!r}")

    @defer.inlineCallbacks
    def expect_close(self, timeout: float = DEFAULT_TIMEOUT):
        """
        The server closes the connection (after any lines still unread,
        which are returned).
        """
        if not self.is_closed:
            yield self._wait(timeout)
        if not self.is_closed:
            raise AssertionError(f"{self.name}: connection still open")
        rest, self.received = self.received, []
        return rest

    @defer.inlineCallbacks
    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT):
        """
        The connection ends within C{timeout}, however much arrives before
        (the lines stay in C{received}).
        """
        deadline = reactor.seconds() + timeout
        while not self.is_closed:
            left = deadline - reactor.seconds()
            if left <= 0:
                raise AssertionError(f"{self.name}: connection still open after {timeout}s")
            yield self._wait(left)

    @defer.inlineCallbacks
    def wait_for_lines(self, count: int, timeout: float = DEFAULT_TIMEOUT):
        """
        At least C{count} lines have arrived within C{timeout}.
        """
        deadline = reactor.seconds() + timeout
        while len(self.received) < count:
            left = deadline - reactor.seconds()
            if left <= 0 or self.is_closed:
                raise AssertionError(f"{self.name}: {len(self.received)} of {count} lines")
            yield self._wait(left)

    def disconnect(self) -> defer.Deferred:
        if not self.is_closed:
            self.transport.loseConnection()
        return self.closed


def connect(port: int, name: str = "client") -> defer.Deferred:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return connectProtocol(endpoint, ScriptedClient(name))


# The TrID of challenge answers sent by the client on its own.
AUTO_QRY_TRID = 4294967295


def challenge_answer(dialect: int, text: str) -> tuple[str, str]:
    """
    The product id and answer an official client of C{dialect} gives to
    C{CHL 0 text}.
    """
    if dialect >= 13:
        # WLM 2009's product key; libpurple uses WLM 8.5's at every dialect.
        return "PROD0120PW!CCV9@", challenge.msnp11_answer(text, "PROD0120PW!CCV9@", "C1BX{V4W}Q3*10SM")
    if dialect >= 11:
        return "PROD0090YUAUV{2B", challenge.msnp11_answer(text, "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL")
    return "msmsgs@msnmsgr.com", challenge.md5_answer(text, "Q1P7W2E4J9R8U3S5")


def md5_answer(challenge: str, password: str) -> str:
    return hashlib.md5((challenge + password).encode("utf-8")).hexdigest()


@defer.inlineCallbacks
def login(port: int, handle: str, password: str, dialect: str = "MSNP7", name: Optional[str] = None):
    """
    Log in at the notification server with MD5 and read the profile
    message; returns the connected client.
    """
    client = yield connect(port, name or handle.split("@")[0])
    client.send(f"VER 1 {dialect} CVR0")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send("INF 2")
    yield client.expect_line("INF 2 MD5")
    client.send(f"USR 3 MD5 I {handle}")
    match = yield client.expect(r"USR 3 MD5 S (\S+)")
    client.send(f"USR 4 MD5 S {md5_answer(match.group(1), password)}")
    yield client.expect(rf"USR 4 OK {re.escape(handle)} .*")
    profile = yield client.next()
    assert profile.name == "MSG" and b"text/x-msmsgsprofile" in profile.payload, profile
    return client


@defer.inlineCallbacks
def attempt_login(port: int, handle: str, password: str, dialect: str = "MSNP7"):
    """
    One MD5 login attempt up to the password answer (TrIDs 1 to 3), whose
    reply the caller reads; returns the client.
    """
    client = yield connect(port)
    client.send(f"VER 1 {dialect}")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send(f"USR 2 MD5 I {handle}")
    match = yield client.expect(r"USR 2 MD5 S (\S+)")
    client.send(f"USR 3 MD5 S {md5_answer(match.group(1), password)}")
    return client


# Switchboard helpers


@defer.inlineCallbacks
def go_online(client, trid: int = 5, status: str = "NLN"):
    """
    Send the first C{CHG} (needed before a switchboard can be had), read its
    echo and answer the challenge that may follow; any ILN is skipped.
    """
    client.send(f"CHG {trid} {status}")
    yield client.expect(rf"CHG {trid} {status}( .*)?")
    # From MSNP6 a challenge follows the first CHG; a PNG marks where that
    # burst (and any ILN) ends.
    client.send("PNG")
    challenge = None
    while True:
        line = yield client.next()
        if line.name == "QNG":
            break
        if line.name == "CHL":
            challenge = line.args[2]
    if challenge is not None:
        client.send_payload(f"QRY {trid} msmsgs@msnmsgr.com", md5_answer(challenge, "Q1P7W2E4J9R8U3S5").encode("ascii"))
        yield client.expect_line(f"QRY {trid}")


@defer.inlineCallbacks
def request_switchboard(ns_client, trid: int = 10):
    """
    C{XFR t SB} at the notification server; returns (port, cookie).
    """
    ns_client.send(f"XFR {trid} SB")
    match = yield ns_client.expect(rf"XFR {trid} SB 127\.0\.0\.1:(\d+) CKI (\S+)")
    return int(match.group(1)), match.group(2)


@defer.inlineCallbacks
def open_switchboard(ns_client, handle: str, trid: int = 10, name: Optional[str] = None):
    """
    Get a cookie with C{XFR SB}, connect to the switchboard and log in with
    C{USR}; returns the switchboard client.
    """
    port, cookie = yield request_switchboard(ns_client, trid)
    sb = yield connect(port, name or "sb-" + handle.split("@")[0])
    sb.send(f"USR 1 {handle} {cookie}")
    yield sb.expect(rf"USR 1 OK {re.escape(handle)} \S+")
    return sb


@defer.inlineCallbacks
def answer_ring(ns_client, handle: str, name: Optional[str] = None):
    """
    Read the C{RNG} at the callee's notification connection, connect to the
    switchboard and C{ANS}; returns (switchboard client, the RNG line's
    parameters, the roster lines before C{ANS 1 OK}).
    """
    ring = yield ns_client.expect(r"RNG (\d+) 127\.0\.0\.1:(\d+) CKI (\S+) (\S+) (\S+)")
    session_id, port, cookie = ring.group(1), int(ring.group(2)), ring.group(3)
    sb = yield connect(port, name or "sb-" + handle.split("@")[0])
    sb.send(f"ANS 1 {handle} {cookie} {session_id}")
    roster = []
    while True:
        line = yield sb.next()
        if line.text == "ANS 1 OK":
            break
        roster.append(line.text)
    return sb, ring.groups(), roster
