"""
Scenario 3, conversations: two-party switchboard sessions where both sides
send C{MSG A}; delivered messages per second and MSG-to-ACK latency.
Scenario 5, the floor, runs the same traffic through a bare Twisted relay
(L{bench.floor}) in the same run, and the ratio server/floor is reported.

Each traffic target is measured twice: a throughput phase (closed loop:
every participant keeps C{--window} messages in flight and sends the next
when one is acknowledged) and a latency phase (open loop: C{--rate}
messages per second in all, spread evenly).
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from typing import Optional

from bench import client
from bench.client import now
from bench.population import handle_of
from bench.report import Table, latency_summary
from bench.cluster import server_for
from bench.server import FloorProcess
from bench.workers import ClientWorker, Generator, shares

# A text message as MSN Messenger 4.x sent it.
MESSAGE_HEADERS = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\n"
)


def message_payload(size: int) -> bytes:
    body = b"Hello from the load generator. " * (size // 31 + 1)
    return (MESSAGE_HEADERS + body)[: max(size, len(MESSAGE_HEADERS) + 1)]


def add_arguments(parser) -> None:
    add_floor_arguments(parser)


def add_floor_arguments(parser) -> None:
    parser.add_argument("--sessions", type=int, default=200, help="two-party sessions (default 200)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    parser.add_argument("--window", type=int, default=1, help="messages in flight per participant, throughput phase")
    parser.add_argument("--rate", type=float, default=2000.0, help="messages per second in all, latency phase")
    parser.add_argument("--payload", type=int, default=160, help="MSG payload bytes (default 160)")
    parser.add_argument("--concurrency", type=int, default=64, help="logins and session setups in flight")


class Talker:
    """
    One participant's switchboard connection during traffic.
    """

    __slots__ = ("connection", "pending", "worker", "keep_sending")

    def __init__(self, connection: client.Connection, worker: "ConversationWorker"):
        self.connection = connection
        self.pending: dict[int, float] = {}
        self.worker = worker
        self.keep_sending = False
        connection.on_line = self.on_line

    def send_message(self) -> None:
        connection = self.connection
        trid = connection.next_trid()
        self.pending[trid] = now()
        connection.send(b"MSG %d A %d\r\n" % (trid, len(self.worker.payload)) + self.worker.payload)

    def on_line(self, parts: list, payload: Optional[bytes]) -> None:
        name = parts[0]
        worker = self.worker
        if name == b"MSG":
            worker.delivered += 1
            worker.last_delivery = now()
        elif name == b"ACK" or name == b"NAK":
            sent = self.pending.pop(int(parts[1]), None)
            if sent is not None:
                worker.latencies.append(now() - sent)
            if name == b"NAK":
                worker.naks += 1
            if self.keep_sending and now() < worker.end_at:
                self.send_message()
        elif name.isdigit():
            worker.errors += 1


class ConversationWorker(ClientWorker):
    def __init__(self, index, count, setup):
        super().__init__(index, count, setup)
        self.pairs = [user // 2 for user in self.users if user % 2 == 0]
        self.switchboards: dict[int, client.Connection] = {}
        self.talkers: list[Talker] = []
        self.payload = b""
        self.delivered = self.naks = self.errors = 0
        self.latencies: list[float] = []
        self.end_at = 0.0
        self.last_delivery = 0.0

    async def open_sessions(self, floor: Optional[tuple], concurrency: int) -> dict:
        """
        Open one session per pair, at the server's switchboard (XFR SB,
        USR, CAL, RNG, ANS) or, given C{floor}, at the relay.
        """
        gate = asyncio.Semaphore(concurrency)
        failures: list[str] = []
        setup_times: list[float] = []

        async def one(pair: int) -> None:
            async with gate:
                started = now()
                try:
                    if floor is None:
                        await self._open_at_server(pair)
                    else:
                        await self._open_at_floor(pair, floor)
                except Exception as error:
                    failures.append(f"pair {pair}: {type(error).__name__}: {error}")
                    return
                setup_times.append(now() - started)

        await asyncio.gather(*(one(pair) for pair in self.pairs))
        return {"opened": len(setup_times), "failures": failures, "setup_times": setup_times}

    async def _open_at_server(self, pair: int) -> None:
        caller, callee = 2 * pair, 2 * pair + 1
        caller_handle, callee_handle = handle_of(caller).encode(), handle_of(callee).encode()
        xfr = await self.connections[caller].request(b"XFR %d SB", b"XFR")
        host, _, port = xfr[3].decode().partition(":")
        calling = await client.connect((host, int(port)), self.local_host)
        self.switchboards[caller] = calling
        await calling.request(b"USR %d " + caller_handle + b" " + xfr[5], b"USR")
        await calling.request(b"CAL %d " + callee_handle, b"CAL")
        ring = await asyncio.wait_for(self.connections[callee].expect(b"RNG"), client.STEP_TIMEOUT)
        host, _, port = ring[2].decode().partition(":")
        answering = await client.connect((host, int(port)), self.local_host)
        self.switchboards[callee] = answering
        await answering.request(b"ANS %d " + callee_handle + b" " + ring[4] + b" " + ring[1], b"ANS")
        await asyncio.wait_for(calling.expect(b"JOI"), client.STEP_TIMEOUT)

    async def _open_at_floor(self, pair: int, floor: tuple) -> None:
        for user in (2 * pair, 2 * pair + 1):
            connection = await client.connect(tuple(floor), self.local_host)
            self.switchboards[user] = connection
            await connection.request(b"USR %d " + b"%d " % pair + handle_of(user).encode(), b"USR")

    async def traffic(self, start_at: float, duration: float, window: int, rate: float, payload_size: int) -> dict:
        """
        Closed loop with C{window} messages in flight per participant, or
        (C{window} 0) open loop at C{rate} messages per second for this
        worker; then wait for the last acknowledgements.
        """
        self.payload = client_payload = message_payload(payload_size)
        del client_payload
        self.delivered = self.naks = self.errors = 0
        self.latencies = []
        self.last_delivery = 0.0
        self.end_at = start_at + duration
        self.talkers = [Talker(connection, self) for connection in self.switchboards.values()]
        delay = start_at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = 0
        if window:
            for talker in self.talkers:
                talker.keep_sending = True
                for _ in range(window):
                    talker.send_message()
                    sent += 1
            await asyncio.sleep(max(0.0, self.end_at - now()))
        elif self.talkers and rate:
            total = int(duration * rate)
            interval = 1.0 / rate
            while sent < total:
                due = start_at + sent * interval
                wait = due - now()
                if wait > 0:
                    await asyncio.sleep(wait)
                current = now()
                while sent < total and start_at + sent * interval <= current:
                    self.talkers[sent % len(self.talkers)].send_message()
                    sent += 1
        deadline = now() + 30
        while any(t.pending for t in self.talkers) and now() < deadline:
            await asyncio.sleep(0.02)
        for talker in self.talkers:
            talker.keep_sending = False
        return {
            "acknowledged": len(self.latencies),
            "unanswered": sum(len(t.pending) for t in self.talkers),
            "delivered": self.delivered,
            "naks": self.naks,
            "errors": self.errors,
            "latencies": self.latencies,
            "last_delivery": self.last_delivery,
        }

    async def close_sessions(self) -> int:
        switchboards = list(self.switchboards.values())
        self.switchboards = {}
        self.talkers = []
        for connection in switchboards:
            connection.send(b"OUT\r\n")
            connection.close()
        deadline = now() + 10
        while any(not c.is_closed for c in switchboards) and now() < deadline:
            await asyncio.sleep(0.05)
        return len(switchboards)

    def close(self) -> None:
        for connection in self.switchboards.values():
            connection.abort()
        self.switchboards = {}
        super().close()


def _measure(generator, target_stats, options, workers: int, floor: Optional[tuple]) -> dict:
    """
    Open the sessions at one target, run both phases, close the sessions.
    """
    per_worker = max(1, options.concurrency // workers)
    opened = generator.call("open_sessions", [(floor, per_worker)] * workers)
    failures = [f for part in opened for f in part["failures"]]
    figures: dict = {
        "sessions": sum(part["opened"] for part in opened),
        "session_failures": len(failures),
        "session_failure_examples": failures[:5],
        "session_setup": latency_summary(t for part in opened for t in part["setup_times"]),
    }
    if not figures["sessions"]:
        generator.call("close_sessions")
        return figures
    phases = (
        ("throughput", options.window, 0.0),
        ("latency", 0, options.rate),
    )
    for name, window, rate in phases:
        start_at = now() + 0.2
        cpu_before = target_stats.cpu_seconds()
        parts = generator.call(
            "traffic", [(start_at, options.duration, window, rate / workers, options.payload)] * workers
        )
        cost = generator.last_cost
        wall = now() - start_at
        target_cpu = target_stats.cpu_seconds() - cpu_before
        delivered = sum(part["delivered"] for part in parts)
        last = max(part["last_delivery"] for part in parts)
        window_seconds = max(options.duration, (last - start_at) if last else options.duration)
        figures[name] = {
            "window": window,
            "offered_rate": rate or None,
            "delivered": delivered,
            "delivered_per_second": round(delivered / window_seconds, 1),
            "acknowledged": sum(part["acknowledged"] for part in parts),
            "unanswered": sum(part["unanswered"] for part in parts),
            "naks": sum(part["naks"] for part in parts),
            "errors": sum(part["errors"] for part in parts),
            "msg_to_ack": latency_summary(t for part in parts for t in part["latencies"]),
            "target_cpu_percent": round(100 * target_cpu / wall, 1),
            "generator_cpu_percent_of_one_core": round(100 * sum(cost.cpu) / wall, 1),
        }
    generator.call("close_sessions")
    return figures


def _setup(sessions: int, workers: int, dispatch) -> dict:
    pair_shares = shares(range(sessions), workers)
    return {
        "dispatch": dispatch,
        "shares": [[user for pair in share for user in (2 * pair, 2 * pair + 1)] for share in pair_shares],
    }


def run(options, with_server: bool = True) -> tuple[dict, Table]:
    workers = min(options.workers, options.sessions)
    server_figures: Optional[dict] = None
    server_missing: Optional[str] = None
    server_context = server_for(options, 2 * options.sessions, 1, topology="pairs") if with_server else nullcontext()
    with server_context as server, FloorProcess() as floor:
        dispatch = server.dispatch if server is not None else None
        with Generator(ConversationWorker, workers, _setup(options.sessions, workers, dispatch)) as generator:
            if with_server:
                logins = generator.call("log_in", [(max(1, options.concurrency // workers),)] * workers)
                failures = [f for part in logins for f in part["failures"]]
                if failures:
                    raise RuntimeError(f"{len(failures)} logins failed, e.g. {failures[0]}")
                server_figures = _measure(generator, server.stats, options, workers, None)
                if not server_figures["sessions"]:
                    examples = server_figures["session_failure_examples"]
                    server_missing = "the server offers no switchboard: " + (examples[0] if examples else "no session opened")
            floor_figures = _measure(generator, floor.stats, options, workers, floor.address)
            if with_server:
                generator.call("log_out")

    def ratio(phase: str) -> Optional[float]:
        if not server_figures or phase not in server_figures or phase not in floor_figures:
            return None
        floor_rate = floor_figures[phase]["delivered_per_second"]
        return round(server_figures[phase]["delivered_per_second"] / floor_rate, 3) if floor_rate else None

    results = {
        "options": {
            "sessions": options.sessions,
            "duration": options.duration,
            "window": options.window,
            "rate": options.rate,
            "payload": options.payload,
            "workers": workers,
        },
        "server": server_figures,
        "server_missing": server_missing,
        "floor": floor_figures,
        "throughput_ratio_server_to_floor": ratio("throughput"),
    }
    title = f"conversations: {options.sessions} two-party sessions, MSG A of {options.payload} bytes"
    table = Table(title if with_server else f"floor: {options.sessions} relayed pairs, MSG A of {options.payload} bytes")
    if server_missing:
        table.add("server", server_missing)
    targets = (("server", server_figures), ("floor", floor_figures)) if with_server else (("floor", floor_figures),)
    for label, figures in targets:
        if not figures or "throughput" not in figures:
            continue
        table.add(f"{label}: delivered msgs/s (window {options.window})", figures["throughput"]["delivered_per_second"], ">= 50,000" if label == "server" else "")
        table.add(f"{label}: MSG->ACK p99 ms at that load", figures["throughput"]["msg_to_ack"]["p99_ms"])
        table.add(f"{label}: CPU % (throughput)", figures["throughput"]["target_cpu_percent"])
        table.add(f"{label}: generator CPU % of a core", figures["throughput"]["generator_cpu_percent_of_one_core"])
        rate = f"{options.rate:g} msgs/s"
        table.add(f"{label}: MSG->ACK p50 ms at {rate}", figures["latency"]["msg_to_ack"]["p50_ms"])
        table.add(f"{label}: MSG->ACK p99 ms at {rate}", figures["latency"]["msg_to_ack"]["p99_ms"], "<= 5" if label == "server" else "")
        lost = sum(figures[p]["unanswered"] + figures[p]["naks"] + figures[p]["errors"] for p in ("throughput", "latency"))
        table.add(f"{label}: unanswered, NAK or error", lost, "0")
    if with_server:
        table.add("throughput server/floor", results["throughput_ratio_server_to_floor"], ">= 0.70")
    return results, table


def run_floor(options) -> tuple[dict, Table]:
    return run(options, with_server=False)
