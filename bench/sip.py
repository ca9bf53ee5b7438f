"""
Scenario sip, the SIP federation edge: MSN users online on the server
(bench.example, --sip-domain) and one SIP watcher each at partner.example,
whose server the generator plays over one TCP connection (a small SIP
peer written here from RFC 3261, 3265 and 3428).

* CHG → NOTIFY: users change their MSN status at a steady rate; the
  generator times the NOTIFY its watcher receives against the CHG.  Each
  user changes at most once per phase and no sooner than 5 s after the
  NOTIFY before (the edge sends at most one NOTIFY per 5 s per
  subscription, RFC 3856 §6.4), so the figure is the edge's path, not its
  rate limit.
* SIP MESSAGE → MSN MSG: after one message per pair has opened a
  switchboard conversation (RNG answered by the MSN client), MESSAGEs at a
  steady rate, timed to the MSG at the MSN user; the 200 answering each
  is timed too.

Everything runs in one generator process (asyncio); C{--workers} is not
used.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Optional

from bench import client
from bench.client import now
from bench.population import PASSWORD, handle_of
from bench.report import Table, latency_summary
from bench.server import ServerProcess, free_port

DOMAIN = "bench.example"
PEER_DOMAIN = "partner.example"
# Users log in NLN and change once each, so none of these is NLN (a CHG
# to the state one is in is not announced); NOTIFY notes name them.
STATES = (b"BSY", b"AWY", b"BRB", b"PHN", b"LUN", b"IDL")
NOTES = {b"BSY": "Busy", b"AWY": "Away", b"BRB": "Be Right Back", b"PHN": "On the Phone", b"LUN": "Out to Lunch", b"IDL": "Idle", b"NLN": "Online"}
NOTIFY_INTERVAL = 5.0  # the edge's minimum between two NOTIFYs of one subscription
_USER = re.compile(rb"user(\d{6})@")
_NOTE = re.compile(rb"<note>([^<]*)</note>")


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=500, help="MSN users online, each with one SIP watcher (default 500)")
    parser.add_argument("--rate", type=float, default=50.0, help="CHG per second, and SIP MESSAGEs per second (default 50)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    parser.add_argument("--concurrency", type=int, default=32, help="logins in flight while logging in")


def watcher_of(index: int) -> str:
    return f"watcher{index:06d}@{PEER_DOMAIN}"


def allow_watchers(users: int):
    """
    Each user has their watcher on the allow list (consent), written before
    the server starts.
    """

    def prepare(db_path: str) -> None:
        import sqlite3

        db = sqlite3.connect(db_path)
        with db:
            ids = dict(db.execute("SELECT handle, id FROM accounts"))
            db.executemany(
                "INSERT INTO list_entries (account_id, list, contact, name) VALUES (?, 'AL', ?, ?)",
                ((ids[handle_of(i)], watcher_of(i), watcher_of(i)) for i in range(users)),
            )
        db.close()

    return prepare


class SipPeer(asyncio.Protocol):
    """
    partner.example's server: sends requests on one TCP connection to the
    edge and answers the edge's requests (NOTIFY) with 200 at once.
    """

    def __init__(self, local_port: int):
        self.local_port = local_port
        self.transport = None
        self._buffer = b""
        self._waiting: dict[bytes, asyncio.Future] = {}
        self.on_notify = None  # (headers, body, when)
        self.notifies = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            buffer = self._buffer.lstrip(b"\r\n")
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            head = buffer[:end]
            length = int(_header(head, b"content-length") or b"0")
            if len(buffer) < end + 4 + length:
                self._buffer = buffer
                return
            body = buffer[end + 4 : end + 4 + length]
            self._buffer = buffer[end + 4 + length :]
            self._message(head, body)

    def _message(self, head: bytes, body: bytes) -> None:
        first = head.split(b"\r\n", 1)[0]
        if first.startswith(b"SIP/2.0 "):
            status = int(first.split(b" ")[1])
            if status < 200:
                return
            branch = re.search(rb"branch=([^;,\s]+)", _header(head, b"via") or b"")
            waiter = self._waiting.pop(branch.group(1), None) if branch else None
            if waiter is not None and not waiter.done():
                waiter.set_result((status, head))
            return
        method = first.split(b" ")[0]
        at = now()
        self._answer(head, 200 if method in (b"NOTIFY", b"MESSAGE") else 405)
        if method == b"NOTIFY":
            self.notifies += 1
            if self.on_notify is not None:
                self.on_notify(head, body, at)

    def _answer(self, head: bytes, status: int) -> None:
        lines = [b"SIP/2.0 %d %s" % (status, b"OK" if status == 200 else b"Method Not Allowed")]
        for line in head.split(b"\r\n")[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name in (b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"):
                lines.append(line)
            elif name in (b"to", b"t"):
                lines.append(line if b"tag=" in line else line + b";tag=peer")
        lines.append(b"Content-Length: 0")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def request(self, method: str, uri: str, headers: list, body: bytes = b"") -> asyncio.Future:
        branch = b"z9hG4bK" + os.urandom(8).hex().encode()
        lines = [f"{method} {uri} SIP/2.0".encode(), b"Via: SIP/2.0/TCP 127.0.0.1:%d;branch=%s" % (self.local_port, branch), b"Max-Forwards: 70"]
        lines += [f"{name}: {value}".encode() for name, value in headers]
        lines.append(b"Content-Length: %d" % len(body))
        future = asyncio.get_running_loop().create_future()
        self._waiting[branch] = future
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return future


def _header(head: bytes, name: bytes) -> Optional[bytes]:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class Run:
    def __init__(self, options, server: ServerProcess, sip_port: int, peer_port: int):
        self.options = options
        self.server = server
        self.sip_port = sip_port
        self.peer_port = peer_port
        self.connections: dict[int, client.Connection] = {}
        self.boards: dict[int, client.Connection] = {}
        self.peer: Optional[SipPeer] = None

    async def log_in(self) -> None:
        semaphore = asyncio.Semaphore(self.options.concurrency)

        async def one(index: int) -> None:
            async with semaphore:
                self.connections[index] = await client.login(self.server.dispatch, handle_of(index), PASSWORD)

        await asyncio.gather(*(one(i) for i in range(self.options.users)))

    async def subscribe_all(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.peer = await loop.create_connection(lambda: SipPeer(self.peer_port), "127.0.0.1", self.sip_port)
        answers = []
        for index in range(self.options.users):
            watcher, user = watcher_of(index), f"user{index:06d}@{DOMAIN}"
            answers.append(
                self.peer.request(
                    "SUBSCRIBE", f"sip:{user}",
                    [("From", f"<sip:{watcher}>;tag=w{index}"), ("To", f"<sip:{user}>"), ("Call-ID", f"sub-{index}@bench"),
                     ("CSeq", "1 SUBSCRIBE"), ("Contact", f"<sip:{watcher.split('@')[0]}@127.0.0.1:{self.peer_port};transport=tcp>"),
                     ("Event", "presence"), ("Accept", "application/pidf+xml"), ("Expires", "3600")],
                )
            )
        statuses = [status for status, _ in await asyncio.gather(*answers)]
        refused = [s for s in statuses if s != 200]
        if refused:
            raise RuntimeError(f"{len(refused)} SUBSCRIBEs refused, e.g. {refused[0]}")

    async def presence_phase(self) -> dict:
        """
        CHG at C{rate}, each user once, timed to the NOTIFY at its watcher.
        """
        options = self.options
        total = int(options.rate * options.duration)
        if total > options.users:
            raise RuntimeError(f"--users must be at least --rate x --duration ({total}) so each user changes once")
        sent: dict[int, tuple[float, str]] = {}
        received: list[float] = []
        wrong = [0]

        def on_notify(head, body, at):
            found = _USER.search(_header(head, b"from") or b"")
            note = _NOTE.search(body)
            if found is None:
                return
            index = int(found.group(1))
            if index in sent and note is not None:
                started, expected = sent[index]
                if note.group(1).decode() == expected:
                    received.append(at - started)
                else:
                    wrong[0] += 1

        self.peer.on_notify = on_notify
        # The NOTIFYs of subscribing and logging in are behind us by more
        # than the edge's minimum interval.
        await asyncio.sleep(NOTIFY_INTERVAL + 0.5)
        start = now() + 0.1
        interval = 1.0 / options.rate
        cpu_before = self.server.stats.cpu_seconds()
        for k in range(total):
            delay = start + k * interval - now()
            if delay > 0:
                await asyncio.sleep(delay)
            state = STATES[k % len(STATES)]
            connection = self.connections[k]
            sent[k] = (now(), NOTES[state])
            connection.send(b"CHG %d %s\r\n" % (connection.next_trid(), state))
        deadline = now() + 10.0
        while len(received) < total and now() < deadline:
            await asyncio.sleep(0.05)
        wall = now() - start
        return {
            "changes_sent": total,
            "notifies_matched": len(received),
            "notifies_wrong_state": wrong[0],
            "latency": latency_summary(received),
            "server_cpu_percent": round(100 * (self.server.stats.cpu_seconds() - cpu_before) / wall, 1),
        }

    async def _answer_ring(self, index: int) -> None:
        ring = await asyncio.wait_for(self.connections[index].expect(b"RNG"), client.STEP_TIMEOUT)
        host, _, port = ring[2].decode().partition(":")
        board = await client.connect((host, int(port)))
        board.trid = 0
        handle = handle_of(index).encode()
        board.send(b"ANS 1 " + handle + b" " + ring[4] + b" " + ring[1] + b"\r\n")
        await asyncio.wait_for(board.expect(b"ANS", 1), client.STEP_TIMEOUT)
        self.boards[index] = board

    def _message(self, index: int, text: bytes) -> asyncio.Future:
        watcher, user = watcher_of(index), f"user{index:06d}@{DOMAIN}"
        return self.peer.request(
            "MESSAGE", f"sip:{user}",
            [("From", f"<sip:{watcher}>;tag=m{os.urandom(4).hex()}"), ("To", f"<sip:{user}>"),
             ("Call-ID", f"msg-{os.urandom(8).hex()}@bench"), ("CSeq", "1 MESSAGE"), ("Content-Type", "text/plain;charset=UTF-8")],
            text,
        )

    async def message_phase(self) -> dict:
        """
        One MESSAGE per pair opens its conversation; then MESSAGEs at
        C{rate}, round robin, timed to the MSG and to the 200.
        """
        options = self.options
        pairs = min(options.users, max(1, int(options.rate)))
        for index in range(pairs):
            answered = self._answer_ring(index)
            opening = self._message(index, b"hello")
            await answered
            status, _ = await asyncio.wait_for(opening, client.STEP_TIMEOUT)
            if status != 200:
                raise RuntimeError(f"opening MESSAGE answered {status}")
            await asyncio.wait_for(self.boards[index].expect(b"MSG"), client.STEP_TIMEOUT)
        sent: dict[bytes, float] = {}
        delivered: list[float] = []
        answered: list[float] = []
        refused = [0]

        def on_line(parts, payload):
            if parts[0] == b"MSG" and payload is not None:
                key = payload.rsplit(b"\r\n\r\n", 1)[-1]
                started = sent.get(key)
                if started is not None:
                    delivered.append(now() - started)

        for board in self.boards.values():
            board.on_line = on_line
        total = int(options.rate * options.duration)
        start = now() + 0.1
        interval = 1.0 / options.rate
        cpu_before = self.server.stats.cpu_seconds()
        pending = []
        for k in range(total):
            delay = start + k * interval - now()
            if delay > 0:
                await asyncio.sleep(delay)
            text = b"message %d" % k
            sent[text] = began = now()
            future = self._message(k % pairs, text)
            future.add_done_callback(
                lambda f, began=began: answered.append(now() - began) if f.result()[0] == 200 else refused.__setitem__(0, refused[0] + 1)
            )
            pending.append(future)
        await asyncio.wait_for(asyncio.gather(*pending), 30.0)
        deadline = now() + 5.0
        while len(delivered) < total and now() < deadline:
            await asyncio.sleep(0.05)
        wall = now() - start
        return {
            "pairs": pairs,
            "messages_sent": total,
            "delivered": len(delivered),
            "refused": refused[0],
            "latency": latency_summary(delivered),
            "answer_latency": latency_summary(answered),
            "server_cpu_percent": round(100 * (self.server.stats.cpu_seconds() - cpu_before) / wall, 1),
        }

    def close(self) -> None:
        for connection in list(self.boards.values()) + list(self.connections.values()):
            connection.close()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def _run(options, server: ServerProcess, sip_port: int, peer_port: int) -> dict:
    run = Run(options, server, sip_port, peer_port)
    try:
        started = time.perf_counter()
        await run.log_in()
        login_seconds = time.perf_counter() - started
        await run.subscribe_all()
        presence = await run.presence_phase()
        messages = await run.message_phase()
    finally:
        run.close()
        await asyncio.sleep(0.1)
    return {"login_seconds": round(login_seconds, 2), "presence": presence, "messages": messages}


def run(options) -> tuple[dict, Table]:
    sip_port, peer_port = free_port(), free_port()
    arguments = (
        "--sip", f"tcp:{sip_port}:interface=127.0.0.1",
        "--sip-domain", DOMAIN,
        "--sip-peer", f"{PEER_DOMAIN}=sip:127.0.0.1:{peer_port};transport=tcp",
    )
    with ServerProcess(options.users, 0, arguments=arguments, prepare=allow_watchers(options.users)) as server:
        figures = asyncio.run(_run(options, server, sip_port, peer_port))
    results = {
        "options": {"users": options.users, "rate": options.rate, "duration": options.duration},
        **figures,
    }
    presence, messages = figures["presence"], figures["messages"]
    rate = f"{options.rate:g}/s"
    table = Table(f"sip: {options.users} MSN users, one SIP watcher each at {PEER_DOMAIN} (TCP)")
    table.add(f"CHG->NOTIFY at {rate}: p50 ms", presence["latency"]["p50_ms"])
    table.add(f"CHG->NOTIFY at {rate}: p99 ms", presence["latency"]["p99_ms"])
    table.add(f"CHG->NOTIFY at {rate}: NOTIFY missing or wrong", presence["changes_sent"] - presence["notifies_matched"], "0")
    table.add(f"CHG->NOTIFY at {rate}: server CPU %", presence["server_cpu_percent"])
    table.add(f"MESSAGE->MSG at {rate}: p50 ms", messages["latency"]["p50_ms"])
    table.add(f"MESSAGE->MSG at {rate}: p99 ms", messages["latency"]["p99_ms"])
    table.add(f"MESSAGE->200 at {rate}: p99 ms", messages["answer_latency"]["p99_ms"])
    table.add(f"MESSAGE->MSG at {rate}: lost or refused", messages["messages_sent"] - messages["delivered"] + messages["refused"], "0")
    table.add(f"MESSAGE->MSG at {rate}: server CPU %", messages["server_cpu_percent"])
    return results, table
