"""
Playing a transcript against a live server over TCP.

One L{LineClient} per named client reads what the server sends through
the project's framer (L{msnp.msn.framing}) with the server-line rules of
the dialect the client agreed on; L{Engine.run} walks the
steps, sending lines with their placeholders filled in and matching what
arrives, and stops a file at the first mismatch with what was expected and
what was received.  It runs on the caller's reactor, so the test suite and
the C{msnp-script} command use the very same code.
"""

from __future__ import annotations

import collections
import re
import uuid
from typing import Callable, Optional

import attrs
from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from msnp.client import addressbook, messenger, oim, passport, sso
from msnp.client.connection import MAX_SERVER_LINE, MAX_SERVER_PAYLOAD
from msnp.msn import dialects, wire
from msnp.msn.framing import Framer, LineTooLong
from msnp.script import expressions
from msnp.script.transcript import AnyOrder, Directive, Expect, Send, Transcript

DEFAULT_TIMEOUT = 5.0

# The TrID of challenge answers a client sends on its own ("answers
# challenges"); their QRY replies are not shown to the transcript.
AUTO_QRY_TRID = 4294967295

_VER_REPLY = re.compile(r"^VER \d+ MSNP(\d+)\b")
_CHL = re.compile(r"^CHL 0 (\S+)$")

# The capabilities a client announces in its first CHG from MSNP13 (with
# the extended word from MSNP16): those of Windows Live Messenger 2009.
CLIENT_CAPS = str(messenger.WLM_CAPS)
CLIENT_CAPS_EX = str(messenger.WLM_CAPS_EX)
_GUID_NAMESPACE = uuid.UUID("5b1d3c52-9a0e-4b53-9f1e-6d2f3c1b7a10")


def machine_guid(client: str) -> str:
    """
    The machine GUID a client named C{client} signs in with (MSNP16+):
    the same for the same name, so C{alice} signing in again replaces
    itself and C{alice-laptop} is another point of presence.
    """
    return "{" + str(uuid.uuid5(_GUID_NAMESPACE, client.lower())).upper() + "}"


def client_version(dialect: int) -> str:
    """
    The version an official client of MSNP C{dialect} names in CVR: MSN
    Messenger 7.5 until MSNP12, Windows Live Messenger 8.0, 8.5 or 2009.
    """
    return messenger.client_version(dialect)[5]


class StepFailed(Exception):
    """
    A step did not happen as written: C{expected} and C{received} say how.
    """

    def __init__(self, line: int, expected: str, received: str):
        super().__init__(f"line {line}: expected {expected}, received {received}")
        self.line = line
        self.expected = expected
        self.received = received


@attrs.define
class FileResult:
    """
    How one transcript went: the steps that passed (as shown), and the
    failure if there was one.
    """

    path: str
    steps: list = attrs.Factory(list)
    failure: Optional[StepFailed] = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.failure is None

    def describe(self) -> str:
        if self.failure is None:
            return f"{self.path}: {len(self.steps)} steps passed"
        return (
            f"{self.path}:{self.failure.line}: step {len(self.steps) + 1} failed\n"
            f"  expected  {self.failure.expected}\n"
            f"  received  {self.failure.received}"
        )


class LineClient(Protocol):
    """
    One named client's connection: what the server sent, line by line with
    payloads, minus the lines this client answers or ignores itself.
    """

    def __init__(self, name: str):
        self.name = name
        self.framer = Framer(self._parse, MAX_SERVER_LINE)
        self._last_line = b""
        self.lines: collections.deque = collections.deque()
        self.closed = False
        self.close_reason = ""
        self.on_closed = defer.Deferred()
        self._waiter: Optional[defer.Deferred] = None
        self.ignored: set = set()
        self.answers_challenges = False
        self.dialect = 0

    def _parse(self, line: bytes):
        # The line as sent is what a transcript matches; parsing finds
        # where it ends and how long a payload follows it.
        self._last_line = line[:-1] if line.endswith(b"\r") else line
        dialect = dialects.ALL_DIALECTS.get(self.dialect)
        rules = dialect.server_lines if dialect is not None else wire.SERVER_LINES_MSNP2
        try:
            return wire.parse_server_line(line, rules, MAX_SERVER_PAYLOAD)
        except wire.WireError as error:
            if error.code is None and error.reason != wire.BLANK_LINE:
                raise
            # A line these rules do not read (another server's own shape):
            # the transcript still sees its text.
            return wire.Command("", None), None

    def dataReceived(self, data: bytes) -> None:
        self.framer.feed(data)
        while True:
            frame = self.framer.next_frame()
            if frame is None:
                break
            if isinstance(frame, (LineTooLong, wire.WireError)):
                self.close_reason = f"the server sent something unreadable: {frame.reason}"
                self.transport.loseConnection()
                break
            text = self._last_line.decode("utf-8", "replace")
            if text.strip() and not self._handled_here(text):
                self.lines.append((text, frame.payload))
        self._wake()

    def _handled_here(self, text: str) -> bool:
        version = _VER_REPLY.match(text)
        if version:
            self.dialect = int(version.group(1))
        name = text[:3]
        if name in self.ignored:
            return True
        if self.answers_challenges:
            challenge = _CHL.match(text)
            if challenge:
                answer = expressions.challenge_answer(self.dialect, challenge.group(1)).encode("ascii")
                product = expressions.product_for(self.dialect)
                self.write(f"QRY {AUTO_QRY_TRID} {product} {len(answer)}".encode("ascii") + b"\r\n" + answer)
                return True
            if text == f"QRY {AUTO_QRY_TRID}":
                return True
        return False

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self.on_closed.callback(None)
        self._wake()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def _wake(self) -> None:
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.callback(None)

    async def next_line(self, clock, timeout: float):
        """
        The next line and payload; None when the connection closed first,
        or when C{timeout} seconds passed (C{self.closed} tells which).
        """
        deadline = clock.seconds() + timeout
        while not self.lines and not self.closed:
            left = deadline - clock.seconds()
            if left <= 0:
                return None
            waiter = self._waiter = defer.Deferred()
            timer = clock.callLater(left, lambda: waiter.called or waiter.callback(None))
            try:
                await waiter
            finally:
                if timer.active():
                    timer.cancel()
                if self._waiter is waiter:
                    self._waiter = None
        return self.lines.popleft() if self.lines else None

    def hang_up(self) -> defer.Deferred:
        if not self.closed:
            self.transport.loseConnection()
        return self.on_closed


def _show(text: str, payload) -> str:
    if payload is None:
        return text
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    return text + "".join(f"\n    | {line}" for line in payload.split("\r\n"))


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {text}")
    return host, int(port)


class Engine:
    """
    Runs transcripts.  C{addresses} names the servers a transcript may
    connect to by name (C{dispatch} at least) as C{host:port}; C{accounts}
    maps handles to passwords; C{nexus} and C{trust} are where Passport
    tickets come from and which certificates its TLS trusts.  C{on_step} is
    called with each step's text as it passes.
    """

    def __init__(
        self,
        reactor,
        addresses: dict,
        accounts: dict,
        timeout: float = DEFAULT_TIMEOUT,
        nexus: str = passport.DEFAULT_NEXUS,
        trust=None,
        on_step: Callable[[str], None] = lambda text: None,
    ):
        self.reactor = reactor
        self.addresses = addresses
        self.accounts = accounts
        self.default_timeout = timeout
        self.nexus = nexus
        self.trust = trust
        self.on_step = on_step

    async def run(self, transcript: Transcript) -> FileResult:
        state = _FileRun(self, transcript.path)
        started = self.reactor.seconds()
        try:
            for step in transcript.steps:
                await state.play(step)
        except StepFailed as failure:
            state.result.failure = failure
        except expressions.ExpressionError as problem:
            state.result.failure = StepFailed(state.line, "a usable placeholder", str(problem))
        except Exception as problem:
            # A helper that failed (Passport unreachable, a refused ticket):
            # this file fails, the others still run.
            reason = getattr(problem, "reasons", None) or [problem]
            text = "; ".join(getattr(r, "getErrorMessage", lambda: str(r))() for r in reason)
            state.result.failure = StepFailed(state.line, "the step to run", f"({type(problem).__name__}: {text})")
        finally:
            await state.close_all()
        state.result.seconds = self.reactor.seconds() - started
        return state.result

    def account_of(self, client: str) -> Optional[tuple[str, str]]:
        """
        The handle and password of C{client}: the account whose handle
        starts with the client's name (up to a first C{-}) and C{@}.
        """
        prefix = client.split("-", 1)[0].lower() + "@"
        for handle, password in self.accounts.items():
            if handle.lower().startswith(prefix):
                return handle, password
        return None


class _FileRun:
    """
    The state of one transcript being played: its clients, the names
    captured so far, the current timeout.
    """

    def __init__(self, engine: Engine, path: str):
        self.engine = engine
        self.clock = engine.reactor
        self.result = FileResult(path)
        self.clients: dict[str, LineClient] = {}
        self.names: dict[str, str] = {}
        self.timeout = engine.default_timeout
        self.line = 0
        # Each client's Passport tokens from its last single sign-on.
        self.tokens: dict[str, dict] = {}
        # Commands a client ignores, kept across its connections.
        self.ignored: dict[str, set] = {}

    def passed(self, text: str) -> None:
        self.result.steps.append(text)
        self.engine.on_step(text)

    # Names and helpers as seen from one client's line.

    def scope(self, client: str, private: Optional[dict] = None) -> tuple[dict, dict]:
        names = dict(self.names)
        account = self.engine.account_of(client)
        if account is not None:
            names.setdefault("handle", account[0])
            names.setdefault("password", account[1])
        connection = self.clients.get(client)
        dialect = connection.dialect if connection is not None else 0
        names.setdefault("product", expressions.product_for(dialect))
        names.setdefault("guid", machine_guid(client))
        if private:
            names.update(private)
        helpers = dict(expressions.HELPERS)
        helpers["qry"] = lambda text: expressions.challenge_answer(dialect, text)
        helpers["password"] = self._password
        helpers["ticket"] = lambda policy: self._ticket(client, dialect, policy)
        helpers["sso"] = lambda nonce, service=None: self._sso(client, dialect, nonce, service)
        helpers["guid"] = machine_guid
        return names, helpers

    def _password(self, handle: str) -> str:
        for known, password in self.engine.accounts.items():
            if known.lower() == handle.lower():
                return password
        raise expressions.ExpressionError(f"no password known for {handle}")

    def _ticket(self, client: str, dialect: int, policy: str):
        account = self.engine.account_of(client)
        if account is None:
            raise expressions.ExpressionError(f"no account known for {client}")
        if dialect >= 13:
            # Windows Live Messenger 8.0 asks RST.srf for its TWN ticket.
            return defer.ensureDeferred(self._fetch_tokens(client, dialect)).addCallback(lambda tokens: tokens[sso.MESSENGER].ticket)
        return defer.ensureDeferred(
            passport.fetch_ticket(self.engine.reactor, account[0], account[1], policy, self.engine.nexus, self.engine.trust)
        )

    async def _sso(self, client: str, dialect: int, nonce: str, service: Optional[str] = None) -> str:
        """
        The ticket and MBI proof for C{USR SSO S}: the client's tokens from
        the token service next to the nexus (C{RST.srf} before MSNP18,
        C{RST2.srf} from; C{service} names one instead), the proof computed
        for C{nonce} with the BinarySecret of the messenger ticket.
        """
        tokens = await self._fetch_tokens(client, dialect, service)
        return sso.sso_answer(tokens[sso.MESSENGER_CLEAR], nonce)

    async def _fetch_tokens(self, client: str, dialect: int, service: Optional[str] = None) -> dict:
        account = self.engine.account_of(client)
        if account is None:
            raise expressions.ExpressionError(f"no account known for {client}")
        url = sso.token_service(self.engine.nexus, dialect)
        if service:
            url = url.rpartition("/")[0] + "/" + service.lstrip("/")
        tokens = await sso.fetch_tokens(self.engine.reactor, account[0], account[1], url, self.engine.trust)
        self.tokens[client] = tokens
        return tokens

    def client(self, name: str) -> LineClient:
        connection = self.clients.get(name)
        if connection is None:
            raise StepFailed(self.line, f"{name} to be connected", f"no connection for {name} (use '{name} connects to ...')")
        return connection

    # Steps

    async def play(self, step) -> None:
        self.line = step.line
        if isinstance(step, Send):
            await self.send(step.client, step.text, step.payload)
        elif isinstance(step, Expect):
            await self.expect(step.client, step.text, step.payload)
        elif isinstance(step, AnyOrder):
            await self.any_order(step)
        else:
            await getattr(self, "do_" + step.kind)(step)

    async def send(self, client: str, text: str, payload: Optional[str], private: Optional[dict] = None) -> None:
        connection = self.client(client)
        names, helpers = self.scope(client, private)
        data = None
        if payload is not None:
            data = (await expressions.substitute(payload, names, helpers)).encode("utf-8")
            names["length"] = str(len(data))
        line = await expressions.substitute(text, names, helpers)
        if connection.closed:
            raise StepFailed(self.line, f"{client}> {line}", "the connection is closed")
        connection.write(line.encode("utf-8") + b"\r\n" + (data or b""))
        self.passed(_show(f"{client}> {line}", data))

    async def receive(self, client: str, wanted: str):
        connection = self.client(client)
        got = await connection.next_line(self.clock, self.timeout)
        if got is None:
            if connection.closed:
                reason = connection.close_reason or "the connection was closed"
                raise StepFailed(self.line, wanted, f"({reason})")
            raise StepFailed(self.line, wanted, f"(nothing within {self.timeout:g}s)")
        return got

    async def matches(self, client: str, text: str, payload: Optional[str], got, private: Optional[dict] = None):
        """
        The names captured when C{got} matches C{text} (and C{payload}),
        None when it does not.
        """
        names, helpers = self.scope(client, private)
        # {length} in a received line is the length of what followed it.
        names["length"] = str(len(got[1])) if got[1] is not None else "0"
        pattern, _ = await expressions.pattern_for(text, names, helpers)
        match = pattern.fullmatch(got[0])
        if match is None:
            return None
        captured = match.groupdict()
        if payload is not None:
            if got[1] is None:
                return None
            names.update(captured)
            body, _ = await expressions.payload_pattern(payload, names, helpers)
            body_match = body.fullmatch(got[1].decode("utf-8", "replace"))
            if body_match is None:
                return None
            captured.update(body_match.groupdict())
        return captured

    async def expect(self, client: str, text: str, payload: Optional[str], private: Optional[dict] = None) -> dict:
        wanted = _show(f"{client}< {text}", payload)
        got = await self.receive(client, wanted)
        captured = await self.matches(client, text, payload, got, private)
        if captured is None:
            raise StepFailed(self.line, wanted, _show(f"{client}< {got[0]}", got[1]))
        if private is None:
            self.names.update(captured)
        self.passed(_show(f"{client}< {got[0]}", got[1] if payload is not None else None))
        return captured

    async def any_order(self, block: AnyOrder) -> None:
        by_client: dict[str, list] = {}
        for expect in block.expects:
            by_client.setdefault(expect.client, []).append(expect)
        for client, waiting in by_client.items():
            waiting = list(waiting)
            while waiting:
                self.line = waiting[0].line
                wanted = "one of: " + " | ".join(f"{client}< {e.text}" for e in waiting)
                got = await self.receive(client, wanted)
                for expect in waiting:
                    captured = await self.matches(client, expect.text, expect.payload, got)
                    if captured is not None:
                        self.names.update(captured)
                        waiting.remove(expect)
                        self.passed(f"{client}< {got[0]}   (any order)")
                        break
                else:
                    raise StepFailed(self.line, wanted, _show(f"{client}< {got[0]}", got[1]))

    async def connect(self, client: str, target: str) -> None:
        address = self.engine.addresses.get(target)
        if address is None:
            names, helpers = self.scope(client)
            address = await expressions.substitute(target, names, helpers)
        try:
            host, port = parse_address(address)
        except ValueError:
            raise StepFailed(self.line, f"{client} connects to {target}", f"no address for {target!r} (give it with --{target} HOST:PORT)")
        old = self.clients.get(client)
        if old is not None and not old.closed:
            await old.hang_up()
        endpoint = HostnameEndpoint(self.engine.reactor, host, port, timeout=max(1, int(self.timeout)))
        try:
            connection = await connectProtocol(endpoint, LineClient(client))
        except (error.ConnectError, error.DNSLookupError) as reason:
            raise StepFailed(self.line, f"{client} connects to {address}", f"({reason})")
        connection.ignored.update(self.ignored.get(client, ()))
        self.clients[client] = connection
        self.passed(f"{client} connects to {address}")

    async def do_connect(self, step: Directive) -> None:
        await self.connect(step.client, step.args[0])

    async def do_hang_up(self, step: Directive) -> None:
        await self.client(step.client).hang_up()
        self.passed(step.text)

    async def do_disconnected(self, step: Directive) -> None:
        connection = self.client(step.client)
        got = await connection.next_line(self.clock, self.timeout)
        if got is not None:
            raise StepFailed(self.line, step.text, _show(f"{step.client}< {got[0]}", got[1]))
        if not connection.closed:
            raise StepFailed(self.line, step.text, f"(still connected after {self.timeout:g}s)")
        self.passed(step.text)

    async def do_silence(self, step: Directive) -> None:
        connection = self.client(step.client)
        got = await connection.next_line(self.clock, step.args[0])
        if got is not None:
            raise StepFailed(self.line, step.text, _show(f"{step.client}< {got[0]}", got[1]))
        self.passed(step.text)

    async def do_answers_challenges(self, step: Directive) -> None:
        self.client(step.client).answers_challenges = True
        self.passed(step.text)

    async def do_ignores(self, step: Directive) -> None:
        ignored = self.ignored.setdefault(step.client, set())
        ignored.update(step.args)
        connection = self.clients.get(step.client)
        if connection is not None:
            connection.ignored.update(ignored)
            # Lines already read but not yet matched are dropped too.
            kept = [got for got in connection.lines if got[0][:3] not in ignored]
            connection.lines.clear()
            connection.lines.extend(kept)
        self.passed(step.text)

    async def do_read_offline(self, step: Directive) -> None:
        """
        Read one kept offline message through the read service (rsi.asmx)
        with the client's messenger.msn.com token, match its text against
        the payload lines, then delete it as a client does once it has
        shown it.
        """
        client = step.client
        names, helpers = self.scope(client)
        message_id = await expressions.substitute(step.args[0], names, helpers)
        token = self.tokens.get(client, {}).get(sso.MESSENGER)
        if token is None:
            raise StepFailed(self.line, step.text, f"(no messenger.msn.com token: {client} has not signed in with MSNP13+)")
        engine = self.engine
        message = await oim.get_message(engine.reactor, engine.nexus, token.ticket, message_id, engine.trust)
        shown = f"{client} reads offline message {message_id}: from {message.sender} ({message.sender_name}), #{message.sequence}"
        if step.payload is not None:
            body, _ = await expressions.payload_pattern(step.payload, names, helpers)
            match = body.fullmatch(message.text)
            if match is None:
                raise StepFailed(self.line, _show(step.text, step.payload), _show(shown, message.text))
            self.names.update(match.groupdict())
        await oim.delete_messages(engine.reactor, engine.nexus, token.ticket, [message_id], engine.trust)
        self.passed(_show(shown, message.text))

    async def do_raw(self, step: Directive) -> None:
        connection = self.client(step.client)
        connection.write(step.args[0])
        self.passed(step.text)

    async def do_wait(self, step: Directive) -> None:
        waited = defer.Deferred()
        self.clock.callLater(step.args[0], waited.callback, None)
        await waited
        self.passed(step.text)

    async def do_timeout(self, step: Directive) -> None:
        self.timeout = step.args[0]
        self.passed(step.text)

    async def do_sign_in(self, step: Directive) -> None:
        """
        The whole login of a client, as an official one does it: VER, CVR
        and USR at the dispatch server, following XFR NS (or going on where
        the server answers USR itself), the MD5, Passport or single sign-on
        exchange, the profile message; then, with C{as STATUS}, the first
        CHG.  From MSNP13 the lists are read over SOAP and sent back as the
        initial ADL, and the first CHG is followed by a UUX.  TrIDs 1-8
        (1-11 from MSNP13) are used; challenges are answered from then on.
        """
        client = step.client
        dialect, status = step.args
        version = int(dialect[4:])
        account = self.engine.account_of(client)
        if account is None:
            raise StepFailed(self.line, step.text, f"(no account for {client}: give it in --accounts)")
        handle = account[0]
        package = "MD5" if version < 8 else "TWN" if version < 15 else "SSO"
        private: dict = {}
        await self.connect(client, "dispatch")
        trid = await self._opening(client, dialect, handle, 1, private)
        await self.send(client, f"USR {trid} {package} I {handle}", None)
        got = await self.receive(client, f"{client}< XFR {trid} NS ... or USR {trid} {package} S ...")
        referral = re.match(rf"^XFR {trid} NS (\S+)", got[0])
        if referral:
            self.passed(f"{client}< {got[0]}")
            await self.client(client).hang_up()
            await self.connect(client, referral.group(1))
            trid = await self._opening(client, dialect, handle, 4, private)
            await self.send(client, f"USR {trid} {package} I {handle}", None)
            got = await self.receive(client, f"{client}< USR {trid} {package} S ...")
        if version >= 13 and got[0].startswith("GCF 0 "):
            # The login policies the server sends before its USR S.
            self.passed(f"{client}< {got[0]}")
            got = await self.receive(client, f"{client}< USR {trid} {package} S ...")
        challenge = re.match(rf"^USR {trid} {package} S (\S+)(?: (\S+))?$", got[0])
        if not challenge or (package == "SSO" and not challenge.group(2)):
            raise StepFailed(self.line, f"{client}< USR {trid} {package} S ...", f"{client}< {got[0]}")
        self.passed(f"{client}< {got[0]}")
        if package == "SSO":
            private["nonce"] = challenge.group(2)
            proof = "{sso(nonce)}" + (" {guid}" if version >= 16 else "")
        elif package == "TWN":
            private["challenge"] = challenge.group(1)
            proof = "{ticket(challenge)}"
        else:
            private["challenge"] = challenge.group(1)
            proof = "{md5(challenge + password)}"
        await self.send(client, f"USR {trid + 1} {package} S {proof}", None, private)
        await self.expect(client, f"USR {trid + 1} OK {handle} ...", None, private)
        for _ in range(8):
            got = await self.receive(client, f"{client}< MSG Hotmail Hotmail ... (the profile)")
            self.passed(_show(f"{client}< {got[0]}", None))
            if got[0].startswith("MSG Hotmail Hotmail"):
                break
        if version >= 16 and "UBX" not in self.client(client).ignored:
            own = f"1:{handle}" if version >= 18 else f"{handle} 1"
            await self.expect(client, f"UBX {own} 0", None)
        self.client(client).answers_challenges = True
        if version >= 13:
            await self._address_book_sync(client, version)
        trid = 10 if version >= 13 else 8
        if status:
            caps = ""
            if version >= 13:
                caps = f" {CLIENT_CAPS}" + (f":{CLIENT_CAPS_EX}" if version >= 16 else "")
            elif version >= 8:
                caps = " 0"
            await self.send(client, f"CHG {trid} {status}{caps}", None)
            await self.expect(client, f"CHG {trid} {status}...", None)
            if version >= 13:
                await self._send_held(
                    client, "UUX 11 {length}", "<Data><PSM></PSM><CurrentMedia></CurrentMedia><MachineGuid>{guid}</MachineGuid></Data>", "UUX 11 0"
                )

    async def _address_book_sync(self, client: str, version: int) -> None:
        """
        MSNP13+: the lists read over SOAP (FindMembership, ABFindAll) with
        the client's contacts token, then BLP 8 and the initial ADL 9.
        """
        tokens = self.tokens.get(client) or await self._fetch_tokens(client, version)
        contacts = tokens.get(sso.CONTACTS)
        if contacts is None:
            raise StepFailed(self.line, "a contacts.msn.com token", "(Passport gave none)")
        book = await addressbook.fetch(self.engine.reactor, self.engine.nexus, contacts.ticket, self.engine.trust)
        listed = ", ".join(f"{e.handle} {'+'.join(sorted(e.lists))}" for e in sorted(book.entries.values(), key=lambda e: e.handle))
        self.passed(f"{client} reads its lists over SOAP: {listed or 'none'}")
        await self.send(client, f"BLP 8 {book.blp}", None)
        await self.expect(client, f"BLP 8 {book.blp}...", None)
        payload = addressbook.initial_adl(book).decode("utf-8")
        await self.send(client, "ADL 9 {length}", payload)
        await self.expect(client, "ADL 9 OK", None)

    async def _send_held(self, client: str, text: str, payload: Optional[str], answer: str) -> None:
        """
        Send a request and wait for its C{answer}, keeping whatever else
        arrives meanwhile for the transcript's own next steps.
        """
        await self.send(client, text, payload)
        connection = self.client(client)
        held = []
        names, helpers = self.scope(client)
        pattern, _ = await expressions.pattern_for(answer, names, helpers)
        while True:
            got = await self.receive(client, f"{client}< {answer}")
            if pattern.fullmatch(got[0]):
                self.passed(f"{client}< {got[0]}")
                break
            held.append(got)
        connection.lines.extendleft(reversed(held))

    async def _opening(self, client: str, dialect: str, handle: str, trid: int, private: dict) -> int:
        await self.send(client, f"VER {trid} {dialect} CVR0", None)
        await self.expect(client, f"VER {trid} {dialect}", None, private)
        version = client_version(int(dialect[4:]))
        await self.send(client, f"CVR {trid + 1} 0x0409 winnt 5.1 i386 MSNMSGR {version} MSMSGS {handle}", None)
        await self.expect(client, f"CVR {trid + 1} ...", None, private)
        return trid + 2

    async def close_all(self) -> None:
        for connection in self.clients.values():
            await connection.hang_up()
