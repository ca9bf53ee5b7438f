"""
Scenario 2, presence fan-out: every user online and watched by as many
online contacts; users change status at a fixed rate and each watcher
times the NLN it receives against the CHG that caused it.

A user's k-th change in the phase always sets the state C{STATES[k % 7]},
so a watcher knows which CHG an NLN answers from how many NLNs it has had
from that user, and checks the state it carries; the latency compares
CLOCK_MONOTONIC readings taken in different generator processes.
"""

from __future__ import annotations

import asyncio
import time

from bench.client import now
from bench.report import Table, latency_summary
from bench.cluster import server_for
from bench.workers import ClientWorker, Generator, shares

# Each differs from the one before it, the last from the first included,
# so every CHG changes the state and is announced.
STATES = (b"BSY", b"AWY", b"BRB", b"PHN", b"LUN", b"IDL", b"NLN")


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=1000, help="users online (default 1000)")
    parser.add_argument("--watchers", type=int, default=100, help="online contacts watching each user (default 100)")
    parser.add_argument(
        "--rates", default="100,500", help="status changes per second, one phase per rate (default 100,500)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate (default 5)")
    parser.add_argument("--concurrency", type=int, default=64, help="logins in flight while logging in")


def user_index(handle: bytes) -> int:
    # user000123@bench.example
    return int(handle[4:10])


class PresenceWorker(ClientWorker):
    def __init__(self, index, count, setup):
        super().__init__(index, count, setup)
        # every CHG sent, per user, over all phases: the k-th is sends[u][k]
        self.sends: dict[int, list[float]] = {user: [] for user in self.users}
        # what watchers recorded, one list per phase
        self.received_by_phase: list[list[tuple]] = [[]]
        self.watching = False
        self.counters: list[dict] = []

    @property
    def received(self) -> list[tuple]:
        return self.received_by_phase[-1]

    async def watch(self) -> int:
        """
        From now on record every NLN as (who, k, state, when), k counting
        that user's NLNs at that watcher; drop every other line.
        """
        received = self.received_by_phase

        def recorder(node):
            counts: dict[bytes, int] = {}
            self.counters.append(counts)

            def on_line(parts, payload):
                if parts[0] == b"NLN":
                    handle = parts[2]
                    k = counts.get(handle, 0)
                    counts[handle] = k + 1
                    received[-1].append((handle, k, parts[1], now(), node))

            return on_line

        if not self.watching:
            self.watching = True
            for connection in self.connections.values():
                connection.on_line = recorder(_node_of(connection))
                connection._queue.clear()
        return len(self.connections)

    async def zero(self) -> None:
        """
        Forget the NLNs of the logins: the k-th NLN counted from here on
        answers the k-th CHG sent by L{change}.
        """
        for counts in self.counters:
            counts.clear()
        self.received_by_phase.append([])

    async def change(self, start_at: float, duration: float, rate: float) -> int:
        """
        Change this worker's users' states round-robin at C{rate} per second
        (this worker's share) from C{start_at} for C{duration} seconds.
        """
        self.received_by_phase.append([])
        await self.watch()
        users = [u for u in self.users if u in self.connections]
        total = int(duration * rate)
        interval = 1.0 / rate if rate else 0.0
        sent = 0
        while sent < total:
            due = start_at + sent * interval
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            # Catch up in one go when the loop fell behind the schedule.
            current = now()
            while sent < total and start_at + sent * interval <= current:
                user = users[sent % len(users)]
                k = len(self.sends[user])
                connection = self.connections[user]
                self.sends[user].append(now())
                connection.send(b"CHG %d %s\r\n" % (connection.next_trid(), STATES[k % len(STATES)]))
                sent += 1
        return sent

    async def drain(self, quiet: float, limit: float) -> int:
        """
        Wait until no NLN has arrived for C{quiet} seconds (at most
        C{limit}); return how many were recorded.
        """
        deadline = now() + limit
        seen = -1
        while now() < deadline and seen != len(self.received):
            seen = len(self.received)
            await asyncio.sleep(quiet)
        return len(self.received)

    async def collect_sends(self) -> dict[int, list[float]]:
        return self.sends

    async def nodes(self) -> dict[int, int]:
        """
        The notification server (its port) each user is logged in at.
        """
        return {user: _node_of(connection) for user, connection in self.connections.items()}

    async def latencies(self, sends: dict[int, list[float]], nodes: dict[int, int]) -> dict:
        """
        Match each recorded NLN with the CHG it answers: NLNs about one user
        reach a watcher in CHG order, so the k-th is the answer to the k-th
        CHG, which must have set C{STATES[k % 7]}.
        """
        samples = []
        crossing = []
        mismatched = 0
        for handle, k, state, at, node in self.received:
            user = user_index(handle)
            times = sends.get(user)
            if times is None or k >= len(times) or STATES[k % len(STATES)] != state:
                mismatched += 1
                continue
            samples.append(at - times[k])
            if nodes.get(user) != node:
                crossing.append(at - times[k])
        return {"samples": samples, "crossing": crossing, "mismatched": mismatched,
                "last": max((r[3] for r in self.received), default=0.0)}


def _node_of(connection) -> int:
    peer = connection.transport.get_extra_info("peername") if connection.transport else None
    return peer[1] if peer else 0



def run(options) -> tuple[dict, Table]:
    workers = options.workers
    rates = [float(rate) for rate in options.rates.split(",") if rate]
    watchers = min(options.watchers, options.users - 1)
    cluster = getattr(options, "cluster", 0)
    with server_for(options, options.users, watchers) as server:
        user_shares = shares(range(options.users), workers)
        setup = {"dispatch": server.dispatch, "shares": user_shares}
        with Generator(PresenceWorker, workers, setup) as generator:
            started = time.perf_counter()
            logins = generator.call("log_in", [(max(1, options.concurrency // workers),)] * workers)
            login_seconds = time.perf_counter() - started
            failures = [f for result in logins for f in result["failures"]]
            if failures:
                raise RuntimeError(f"{len(failures)} logins failed, e.g. {failures[0]}")
            generator.call("watch")
            generator.call("drain", [(0.3, 30.0)] * workers)
            generator.call("zero")
            nodes: dict[int, int] = {}
            for part in generator.call("nodes"):
                nodes.update(part)
            phases = []
            for rate in rates:
                start_at = now() + 0.2
                cpu_before = server.stats.cpu_seconds()
                redis_before = (server.redis_stats.cpu_seconds(), server.redis_commands()) if cluster else (0.0, 0)
                sent = sum(
                    generator.call(
                        "change", [(start_at, options.duration, rate * len(share) / options.users) for share in user_shares]
                    )
                )
                change_cost = generator.last_cost
                recorded = sum(generator.call("drain", [(0.25, 60.0)] * workers))
                drain_cost = generator.last_cost
                wall = now() - start_at
                server_cpu = server.stats.cpu_seconds() - cpu_before
                redis_cpu = server.redis_stats.cpu_seconds() - redis_before[0] if cluster else 0.0
                redis_commands = server.redis_commands() - redis_before[1] if cluster else 0
                sends: dict[int, list[float]] = {}
                for part in generator.call("collect_sends"):
                    sends.update(part)
                matched = generator.call("latencies", [(sends, nodes)] * workers)
                samples = [s for part in matched for s in part["samples"]]
                crossing = [s for part in matched for s in part["crossing"]]
                last = max(part["last"] for part in matched)
                delivery_window = (last - start_at) if last > start_at else wall
                generator_cpu = sum(change_cost.cpu) + sum(drain_cost.cpu)
                phases.append(
                    {
                        "changes_per_second": rate,
                        "changes_sent": sent,
                        "notifications_expected": sent * watchers,
                        "notifications_received": recorded,
                        "notifications_unmatched": sum(part["mismatched"] for part in matched),
                        "notifications_per_second": round(recorded / delivery_window, 1) if delivery_window else 0.0,
                        "latency": latency_summary(samples),
                        "latency_across_nodes": latency_summary(crossing) if cluster else None,
                        "notifications_across_nodes": len(crossing),
                        "server_cpu_us_per_change": round(1e6 * server_cpu / sent, 1) if sent else None,
                        "redis_cpu_us_per_change": round(1e6 * redis_cpu / sent, 1) if cluster and sent else None,
                        "redis_commands_per_change": round(redis_commands / sent, 2) if cluster and sent else None,
                        "server_cpu_percent": round(100 * server_cpu / wall, 1),
                        "generator_cpu_percent_of_one_core": round(100 * generator_cpu / wall, 1),
                    }
                )
            server_rss = server.stats.rss_bytes()
            generator.call("log_out")

    results = {
        "options": {
            "users": options.users,
            "watchers_per_user": watchers,
            "rates": rates,
            "duration": options.duration,
            "workers": workers,
            "notification_nodes": cluster or None,
        },
        "login_seconds": round(login_seconds, 2),
        "server_rss_mib": round(server_rss / 2**20, 1),
        "phases": phases,
    }
    where = f", cluster of {cluster} notification nodes" if cluster else ""
    table = Table(f"presence: {options.users} users online, each watched by {watchers} online contacts{where}")
    for phase in phases:
        rate = f"{phase['changes_per_second']:g} CHG/s"
        table.add(f"{rate}: NLN delivered/s", phase["notifications_per_second"])
        table.add(f"{rate}: CHG->NLN p50 ms", phase["latency"]["p50_ms"])
        table.add(f"{rate}: CHG->NLN p99 ms", phase["latency"]["p99_ms"], "<= 10")
        table.add(f"{rate}: CHG->NLN max ms", phase["latency"]["max_ms"])
        if cluster:
            table.add(f"{rate}: across nodes: CHG->NLN p50 ms", phase["latency_across_nodes"]["p50_ms"])
            table.add(f"{rate}: across nodes: CHG->NLN p99 ms", phase["latency_across_nodes"]["p99_ms"])
            table.add(f"{rate}: Redis commands per CHG", phase["redis_commands_per_change"])
            table.add(f"{rate}: Redis CPU us per CHG", phase["redis_cpu_us_per_change"])
        table.add(f"{rate}: msnp CPU us per CHG", phase["server_cpu_us_per_change"])
        table.add(
            f"{rate}: NLN lost or unmatched",
            phase["notifications_expected"] - phase["notifications_received"] + phase["notifications_unmatched"],
            "0",
        )
        table.add(f"{rate}: server CPU %", phase["server_cpu_percent"])
        table.add(f"{rate}: generator CPU % of a core", phase["generator_cpu_percent_of_one_core"])
    return results, table
