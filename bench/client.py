"""
A lean asyncio MSNP client for load generation.

L{Connection} splits what the server sends into lines (reading payloads
byte-exact) and either queues them for a coroutine that awaits them (the
login) or hands them to a callback (the measured phases, where the cost of
a coroutine switch per line would make the generator the bottleneck).
L{login} runs the MSNP7 MD5 login a client of that era performs: dispatch
server, referral, notification server, SYN, first CHG.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import re
import ssl
import time
from typing import Callable, Optional
from urllib.parse import quote

from msnp.msn.challenge import msnp11_answer

DIALECTS = b"MSNP7 MSNP6 MSNP5 MSNP4 CVR0"
# The challenge answer every MSNP6-MSNP10 client gives (protocol reference §7.4).
CHALLENGE_PRODUCT_ID = b"msmsgs@msnmsgr.com"
CHALLENGE_KEY = b"Q1P7W2E4J9R8U3S5"

# The MSNP11-MSNP12 answer is the one MSN Messenger 7.x computes; the
# server's own implementation of it is used rather than a second copy.
MSNP11_PRODUCT_ID = "PROD0090YUAUV{2B"
MSNP11_PRODUCT_KEY = "YMM8C_H7KCQ2S_KL"

# Server-to-client commands followed by a payload whose length is their last
# parameter.
PAYLOAD_COMMANDS = frozenset({b"MSG", b"NOT", b"IPG", b"GCF", b"UBX", b"ADL", b"RML", b"FQY", b"UBN", b"UBM"})
# What WLM 2009 answers CHL with (MSNP13+).
MSNP13_PRODUCT_ID = "PROD0120PW!CCV9@"
MSNP13_PRODUCT_KEY = "C1BX{V4W}Q3*10SM"

STEP_TIMEOUT = 60.0

now = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across processes


class ProtocolError(Exception):
    pass


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self._buffer = b""
        self._queue: collections.deque = collections.deque()
        self._waiter: Optional[asyncio.Future] = None
        # on_line(parts, payload), set once the connection is in a
        # measured phase
        self.on_line: Optional[Callable[[list, Optional[bytes]], None]] = None
        self.is_closed = False
        self.trid = 0
        # the MSNP version spoken, which decides the CHL answer
        self.dialect = 7

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        position = 0
        size = len(buffer)
        on_line = self.on_line
        while True:
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            parts = buffer[position:end].split(b" ")
            if parts[0] in PAYLOAD_COMMANDS and parts[-1].isdigit():
                stop = end + 2 + int(parts[-1])
                if stop > size:
                    break
                payload = buffer[end + 2 : stop]
                position = stop
            else:
                payload = None
                position = end + 2
            if parts[0] == b"CHL":
                self._answer_challenge(parts)
            elif on_line is not None:
                on_line(parts, payload)
            else:
                self._queue.append((parts, payload))
        self._buffer = buffer[position:]
        self._wake()

    def connection_lost(self, exc) -> None:
        self.is_closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _answer_challenge(self, parts: list) -> None:
        if self.dialect >= 13:
            answer = msnp11_answer(parts[2].decode(), MSNP13_PRODUCT_ID, MSNP13_PRODUCT_KEY).encode()
            product = MSNP13_PRODUCT_ID.encode()
        elif self.dialect >= 11:
            answer = msnp11_answer(parts[2].decode(), MSNP11_PRODUCT_ID, MSNP11_PRODUCT_KEY).encode()
            product = MSNP11_PRODUCT_ID.encode()
        else:
            answer = hashlib.md5(parts[2] + CHALLENGE_KEY).hexdigest().encode()
            product = CHALLENGE_PRODUCT_ID
        self.send(b"QRY %d %s 32\r\n%s" % (self.next_trid(), product, answer))

    # Use

    def next_trid(self) -> int:
        self.trid += 1
        return self.trid

    def send(self, data: bytes) -> None:
        if not self.is_closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def next_line(self) -> tuple[list, Optional[bytes]]:
        while not self._queue:
            if self.is_closed:
                raise ProtocolError("connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    async def expect(self, name: bytes, trid: Optional[int] = None) -> list:
        """
        The next line called C{name} (with C{trid}, if given); an error
        reply to C{trid} raises.  Unsolicited lines in between are dropped.
        """
        wanted_trid = b"%d" % trid if trid is not None else None
        while True:
            parts, _ = await self.next_line()
            if parts[0] == name and (wanted_trid is None or parts[1] == wanted_trid):
                return parts
            if parts[0].isdigit() and wanted_trid is not None and len(parts) > 1 and parts[1] == wanted_trid:
                raise ProtocolError(b" ".join(parts).decode())

    async def request(self, line: bytes, name: bytes) -> list:
        """
        Send C{line} (with C{%d} for a fresh TrID) and wait for its reply.
        """
        trid = self.next_trid()
        self.send(line % trid + b"\r\n")
        return await asyncio.wait_for(self.expect(name, trid), STEP_TIMEOUT)


async def connect(address: tuple[str, int], local_host: Optional[str] = None) -> Connection:
    loop = asyncio.get_running_loop()
    local_addr = (local_host, 0) if local_host else None
    _, connection = await asyncio.wait_for(
        loop.create_connection(Connection, address[0], address[1], local_addr=local_addr), STEP_TIMEOUT
    )
    return connection


def md5_answer(challenge: bytes, password: bytes) -> bytes:
    return hashlib.md5(challenge + password).hexdigest().encode()


class LoginTimes:
    """
    When each step of one login finished, in seconds since it began.
    """

    # ticketed: the Passport ticket is in hand (Passport logins only)
    __slots__ = ("connected", "greeted", "referred", "ns_greeted", "ticketed", "authenticated", "synced", "online")

    def __init__(self) -> None:
        self.connected = self.greeted = self.referred = self.ns_greeted = 0.0
        self.ticketed = self.authenticated = self.synced = self.online = 0.0

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)


async def _referral(
    dispatch: tuple[str, int],
    versions: bytes,
    second: tuple[bytes, bytes],
    usr: bytes,
    started: float,
    local_host: Optional[str] = None,
    times: Optional[LoginTimes] = None,
) -> tuple[str, int]:
    """
    The dispatch server's part of a login: VER, then C{second} (INF or
    CVR: the line and the reply expected), then C{usr} → XFR NS; returns
    the notification server's address.
    """
    ds = await connect(dispatch, local_host)
    try:
        if times is not None:
            times.connected = now() - started
        await ds.request(b"VER %d " + versions, b"VER")
        if times is not None:
            times.greeted = now() - started
        await ds.request(*second)
        xfr = await ds.request(usr, b"XFR")
    finally:
        ds.close()
    if times is not None:
        times.referred = now() - started
    host, _, port = xfr[3].decode().partition(":")
    return host, int(port or 1863)


async def login(
    dispatch: tuple[str, int],
    handle: str,
    password: str,
    status: bytes = b"NLN",
    local_host: Optional[str] = None,
    times: Optional[LoginTimes] = None,
) -> Connection:
    """
    Log C{handle} in through the dispatch server with MD5 (MSNP7): returns
    the notification connection once the first CHG has been echoed.
    """
    started = now()
    handle_bytes = handle.encode()
    notification = await _referral(
        dispatch, DIALECTS, (b"INF %d", b"INF"), b"USR %d MD5 I " + handle_bytes, started, local_host, times
    )
    ns = await connect(notification, local_host)
    try:
        ns.trid = 3
        await ns.request(b"VER %d " + DIALECTS, b"VER")
        if times is not None:
            times.ns_greeted = now() - started
        await ns.request(b"INF %d", b"INF")
        challenge = await ns.request(b"USR %d MD5 I " + handle_bytes, b"USR")
        await ns.request(b"USR %d MD5 S " + md5_answer(challenge[4], password.encode()), b"USR")
        if times is not None:
            times.authenticated = now() - started
        await asyncio.wait_for(_synchronise(ns), STEP_TIMEOUT)
        if times is not None:
            times.synced = now() - started
        await ns.request(b"CHG %d " + status, b"CHG")
        if times is not None:
            times.online = now() - started
    except BaseException:
        ns.abort()
        raise
    return ns


async def _synchronise(ns: Connection) -> None:
    """
    SYN from version 0, reading the whole reply up to the last RL line.
    """
    trid = ns.next_trid()
    ns.send(b"SYN %d 0\r\n" % trid)
    wanted = b"%d" % trid
    while True:
        parts, _ = await ns.next_line()
        if parts[0].isdigit() and parts[1] == wanted:
            raise ProtocolError(b" ".join(parts).decode())
        if parts[0] == b"LST" and parts[1] == wanted and parts[2] == b"RL" and parts[4] == parts[5]:
            return


# Passport (MSNP8-MSNP12): the ticket comes from an HTTPS login between
# USR TWN I and USR TWN S.

_DA_LOGIN = re.compile(rb"DALogin=([^,\r\n]+)", re.IGNORECASE)
_FROM_PP = re.compile(rb"from-PP='([^']*)'")


async def https_get(address: tuple[str, int], path: str, tls: ssl.SSLContext, headers: bytes = b"") -> bytes:
    """
    The response head of C{GET path} over a fresh TLS connection (as the
    clients of the time opened one per request), read until the server
    closes.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address[0], address[1], ssl=tls, server_hostname=address[0]), STEP_TIMEOUT
    )
    try:
        writer.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n" % (path.encode(), address[0].encode(), headers)
        )
        response = await asyncio.wait_for(reader.read(), STEP_TIMEOUT)
    finally:
        writer.close()
    head, _, _ = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ProtocolError(f"GET {path}: {head.splitlines()[0] if head else b'no answer'!r}")
    return head


async def passport_ticket(passport: tuple[str, int], handle: str, password: str, policy: bytes, tls: ssl.SSLContext) -> bytes:
    """
    The nexus (where to log in), then login2.srf with the password: the
    ticket from its Authentication-Info header.
    """
    nexus = await https_get(passport, "/rdr/pprdr.asp", tls)
    found = _DA_LOGIN.search(nexus)
    if found is None:
        raise ProtocolError("the nexus named no DALogin")
    login_address = found.group(1).decode()
    host_port, _, path = login_address.partition("/")
    host, _, port = host_port.partition(":")
    authorization = (
        b"Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%%3A%%2F%%2Fmessenger%%2Emsn%%2Ecom,sign-in=%s,pwd=%s,%s\r\n"
        % (quote(handle, safe="").encode(), quote(password, safe="").encode(), policy)
    )
    head = await https_get((host, int(port or 443)), "/" + path, tls, authorization)
    ticket = _FROM_PP.search(head)
    if ticket is None:
        raise ProtocolError("login2.srf gave no ticket")
    return ticket.group(1)


async def passport_login(
    dispatch: tuple[str, int],
    passport: tuple[str, int],
    tls: ssl.SSLContext,
    handle: str,
    password: str,
    dialect: int = 12,
    status: bytes = b"NLN",
    times: Optional[LoginTimes] = None,
) -> Connection:
    """
    Log C{handle} in the way MSN Messenger 5.0-7.0 did: dispatch VER/CVR/
    USR TWN I → XFR, notification VER/CVR/USR TWN I, the Passport login,
    USR TWN S with the ticket, SYN, the first CHG (and the CHL after it).
    """
    started = now()
    versions = b"MSNP%d CVR0" % dialect
    handle_bytes = handle.encode()
    cvr = b"CVR %d 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS " + handle_bytes
    notification = await _referral(dispatch, versions, (cvr, b"CVR"), b"USR %d TWN I " + handle_bytes, started, times=times)
    ns = await connect(notification)
    ns.dialect = dialect
    try:
        ns.trid = 3
        await ns.request(b"VER %d " + versions, b"VER")
        if times is not None:
            times.ns_greeted = now() - started
        await ns.request(cvr, b"CVR")
        policy = await ns.request(b"USR %d TWN I " + handle_bytes, b"USR")
        ticket = await passport_ticket(passport, handle, password, policy[4], tls)
        if times is not None:
            times.ticketed = now() - started
        await ns.request(b"USR %d TWN S " + ticket, b"USR")
        if times is not None:
            times.authenticated = now() - started
        await asyncio.wait_for(_synchronise_merged(ns, dialect), STEP_TIMEOUT)
        if times is not None:
            times.synced = now() - started
        await ns.request(b"CHG %d " + status + b" 0", b"CHG")
        if times is not None:
            times.online = now() - started
    except BaseException:
        ns.abort()
        raise
    return ns


async def _synchronise_merged(ns: Connection, dialect: int) -> None:
    """
    SYN from version 0 (MSNP8+): the SYN line counts the contacts, one LST
    line follows for each.
    """
    trid = ns.next_trid()
    ns.send((b"SYN %d 0 0\r\n" if dialect >= 10 else b"SYN %d 0\r\n") % trid)
    wanted = b"%d" % trid
    while True:
        parts, _ = await ns.next_line()
        if len(parts) > 1 and parts[1] == wanted:
            if parts[0].isdigit():
                raise ProtocolError(b" ".join(parts).decode())
            if parts[0] == b"SYN":
                break
    contacts = int(parts[-2])
    while contacts:
        parts, _ = await ns.next_line()
        if parts[0] == b"LST":
            contacts -= 1


# Single sign-on (MSNP15+), as WLM 2009 logs in.

_COMPACT = re.compile(rb'<wsse:BinarySecurityToken Id="Compact(\d+)">([^<]*)</wsse:BinarySecurityToken>')
_SECRET = re.compile(rb"<wst:BinarySecret>([^<]*)</wst:BinarySecret>")
SSO_ADDRESSES = ("http://Passport.NET/tb", "messengerclear.live.com", "contacts.msn.com")


async def https_post(address: tuple[str, int], path: str, body: bytes, tls: ssl.SSLContext, headers: bytes = b"") -> bytes:
    """
    The body of the answer to C{POST path} over a fresh TLS connection.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address[0], address[1], ssl=tls, server_hostname=address[0]), STEP_TIMEOUT
    )
    try:
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: text/xml; charset=utf-8\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), address[0].encode(), len(body), headers, body)
        )
        response = await asyncio.wait_for(reader.read(), STEP_TIMEOUT)
    finally:
        writer.close()
    head, _, content = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ProtocolError(f"POST {path}: {head.splitlines()[0] if head else b'no answer'!r}")
    return content


def rst_envelope(handle: str, password: str, addresses=SSO_ADDRESSES) -> bytes:
    from xml.sax.saxutils import escape

    requests = "".join(
        f'<wst:RequestSecurityToken Id="RST{i}"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue'
        f"</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{address}</wsa:Address>"
        "</wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>"
        for i, address in enumerate(addresses)
    )
    return (
        '<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" '
        'xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing" '
        'xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"><Header><wsse:Security><wsse:UsernameToken>'
        f"<wsse:Username>{escape(handle)}</wsse:Username><wsse:Password>{escape(password)}</wsse:Password>"
        '</wsse:UsernameToken></wsse:Security></Header><Body><ps:RequestMultipleSecurityTokens '
        f'xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL">{requests}</ps:RequestMultipleSecurityTokens></Body></Envelope>'
    ).encode()


async def sso_tokens(passport: tuple[str, int], handle: str, password: str, tls: ssl.SSLContext) -> dict:
    """
    RST2.srf: the messengerclear ticket with its BinarySecret, and the
    contacts token.
    """
    import base64

    body = await https_post(passport, "/RST2.srf", rst_envelope(handle, password), tls)
    tokens = {int(index): value.replace(b"&amp;", b"&").decode() for index, value in _COMPACT.findall(body)}
    secrets_found = _SECRET.findall(body)
    if 1 not in tokens or 2 not in tokens or len(secrets_found) < 2:
        raise ProtocolError("RST2.srf gave no messengerclear ticket")
    # The tb token's secret comes first, messengerclear's second.
    return {"ticket": tokens[1], "secret": base64.b64decode(secrets_found[1]), "contacts": tokens[2]}


async def sso_login(
    dispatch: tuple[str, int],
    passport: tuple[str, int],
    tls: ssl.SSLContext,
    handle: str,
    password: str,
    dialect: int = 18,
    status: bytes = b"NLN",
    times: Optional[LoginTimes] = None,
) -> Connection:
    """
    Log C{handle} in as WLM 2009 does: dispatch VER/CVR/USR SSO I → XFR,
    notification VER/CVR/USR SSO I (the nonce), RST2.srf, USR SSO S with
    the MBI proof and a machine GUID, the initial ADL, the first CHG.
    """
    import uuid

    from msnp.msn import sso

    started = now()
    versions = b"MSNP%d CVR0" % dialect
    handle_bytes = handle.encode()
    cvr = b"CVR %d 0x0409 winnt 5.1 i386 MSNMSGR 14.0.8117.0416 msmsgs " + handle_bytes
    notification = await _referral(dispatch, versions, (cvr, b"CVR"), b"USR %d SSO I " + handle_bytes, started, times=times)
    ns = await connect(notification)
    ns.dialect = dialect
    try:
        ns.trid = 3
        await ns.request(b"VER %d " + versions, b"VER")
        if times is not None:
            times.ns_greeted = now() - started
        await ns.request(cvr, b"CVR")
        challenge = await ns.request(b"USR %d SSO I " + handle_bytes, b"USR")
        tokens = await sso_tokens(passport, handle, password, tls)
        if times is not None:
            times.ticketed = now() - started
        blob = sso.mbi_blob(tokens["secret"], challenge[5].decode()).encode()
        guid = b"{%s}" % str(uuid.uuid4()).upper().encode()
        await ns.request(b"USR %d SSO S " + tokens["ticket"].encode() + b" " + blob + b" " + guid, b"USR")
        if times is not None:
            times.authenticated = now() - started
        trid = ns.next_trid()
        initial = b'<ml l="1"></ml>'
        ns.send(b"ADL %d %d\r\n%s" % (trid, len(initial), initial))
        await asyncio.wait_for(ns.expect(b"ADL", trid), STEP_TIMEOUT)
        if times is not None:
            times.synced = now() - started
        await ns.request(b"CHG %d " + status + b" 2788999212:48 0", b"CHG")
        if times is not None:
            times.online = now() - started
        ns.contacts_token = tokens["contacts"]
    except BaseException:
        ns.abort()
        raise
    return ns


AB_FIND_ALL = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
    '<ABApplicationHeader xmlns="http://www.msn.com/webservices/AddressBook"><ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11'
    "</ApplicationId><IsMigration>false</IsMigration><PartnerScenario>Initial</PartnerScenario></ABApplicationHeader>"
    '<ABAuthHeader xmlns="http://www.msn.com/webservices/AddressBook"><ManagedGroupRequest>false</ManagedGroupRequest>'
    "<TicketToken>%s</TicketToken></ABAuthHeader></soap:Header><soap:Body>"
    '<ABFindAll xmlns="http://www.msn.com/webservices/AddressBook"><abId>00000000-0000-0000-0000-000000000000</abId>'
    "<abView>Full</abView><deltasOnly>false</deltasOnly></ABFindAll></soap:Body></soap:Envelope>"
)


async def ab_find_all(passport: tuple[str, int], token: str, tls: ssl.SSLContext) -> int:
    """
    One ABFindAll over a fresh TLS connection; the size of the answer.
    """
    from xml.sax.saxutils import escape

    body = (AB_FIND_ALL % escape(token)).encode()
    answer = await https_post(passport, "/abservice/abservice.asmx", body, tls, b"SOAPAction: http://www.msn.com/webservices/AddressBook/ABFindAll\r\n")
    if b"<ABFindAllResult>" not in answer:
        raise ProtocolError("ABFindAll gave no result")
    return len(answer)
