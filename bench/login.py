"""
Scenario 1, login storm: accounts with full contact lists log in through
the dispatch server with MD5 (MSNP7), first at a bounded concurrency (the
sustained rate and latency), then all at once (the burst, which shows what
the listen backlog does).
"""

from __future__ import annotations

import time

from bench.client import LoginTimes
from bench.report import Table, latency_summary
from bench.cluster import server_for
from bench.server import listen_overflows, server_default_backlog
from bench.workers import ClientWorker, Generator, shares

STEPS = LoginTimes.__slots__
# A SYN dropped by a full listen queue is retried after one second.
STALL_SECONDS = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=2000, help="accounts that log in (default 2000)")
    parser.add_argument("--contacts", type=int, default=20, help="contacts per account (default 20)")
    parser.add_argument("--concurrency", type=int, default=64, help="logins in flight in the sustained phase")
    parser.add_argument("--burst", type=int, default=2000, help="simultaneous logins in the burst (0: skip)")
    parser.add_argument("--backlog", type=int, default=None, help="listen backlog for the server's endpoints (default: the server's own default; Twisted's is 50)")
    parser.add_argument("--lean-log", action="store_true", help="run the server with twistd --logger msnp.logs.observer, to standard output, instead of its default observer writing to --logfile")
    parser.add_argument("--rounds", type=int, default=3, help="sustained phase repeated (everyone logs in, then out) this many times; the median and best are reported (default 3)")


def _login_figures(results: list[dict], wall: float) -> dict:
    times = [t for result in results for t in result["times"]]
    failures = [f for result in results for f in result["failures"]]
    by_step = {step: [t[i] for t in times] for i, step in enumerate(STEPS)}
    return {
        "logins": len(times),
        "failures": len(failures),
        "failure_examples": failures[:5],
        "wall_seconds": round(wall, 3),
        "logins_per_second": round(len(times) / wall, 1) if wall else 0.0,
        "latency": latency_summary(by_step["online"]),
        # steps a login of this kind has (MD5 logins fetch no ticket)
        "steps": {step: latency_summary(values) for step, values in by_step.items() if any(values)},
        "stalled_over_1s_at_dispatch": sum(1 for t in by_step["greeted"] if t >= STALL_SECONDS),
        "stalled_over_1s_at_notification": sum(
            1 for t in times if t[STEPS.index("ns_greeted")] - t[STEPS.index("referred")] >= STALL_SECONDS
        ),
    }


def _sustained_round(server, generator, per_worker: int) -> dict:
    """
    Everyone logs in at C{per_worker} in flight per worker, then out.
    """
    workers = generator.count
    cpu_before = server.stats.cpu_seconds()
    reactor_before = server.stats.main_thread_cpu_seconds()
    started = time.perf_counter()
    results = generator.call("log_in", [(per_worker,)] * workers)
    wall = time.perf_counter() - started
    figures = _login_figures(results, wall)
    cpu = server.stats.cpu_seconds() - cpu_before
    reactor_cpu = server.stats.main_thread_cpu_seconds() - reactor_before
    figures["concurrency"] = per_worker * workers
    figures["server_cpu_percent"] = round(100 * cpu / wall, 1)
    # CPU per login does not depend on what else shares the machine nearly
    # as much as logins/s does: the figure to compare runs by.
    logins = max(1, figures["logins"])
    figures["server_cpu_ms_per_login"] = round(1000 * cpu / logins, 3)
    figures["reactor_cpu_ms_per_login"] = round(1000 * reactor_cpu / logins, 3)
    figures["generator"] = generator.last_cost.as_dict()
    figures["server_rss_mib"] = round(server.stats.rss_bytes() / 2**20, 1)
    generator.call("log_out")
    time.sleep(0.5)
    return figures


def summarise_rounds(rounds: list[dict]) -> dict:
    """
    The best and median of each round figure that says how fast logins went.
    """
    summary = {}
    for key, best_is_high in (
        ("logins_per_second", True),
        ("server_cpu_ms_per_login", False),
        ("reactor_cpu_ms_per_login", False),
    ):
        values = sorted(r[key] for r in rounds)
        summary[key] = {
            "best": values[-1] if best_is_high else values[0],
            "median": values[(len(values) - 1) // 2] if best_is_high else values[len(values) // 2],
            "all": [r[key] for r in rounds],
        }
    return summary


def add_sustained_rows(table: Table, rounds: dict, sustained: dict, target: str = "") -> None:
    count = len(rounds["logins_per_second"]["all"])
    rate, cpu, reactor = rounds["logins_per_second"], rounds["server_cpu_ms_per_login"], rounds["reactor_cpu_ms_per_login"]
    table.add(f"logins/s (sustained, median of {count})", rate["median"], target)
    table.add("logins/s (sustained, best)", rate["best"])
    table.add("login latency p50 ms (median round)", sustained["latency"]["p50_ms"])
    table.add("login latency p99 ms (median round)", sustained["latency"]["p99_ms"])
    table.add("failed logins", sustained["failures"], "0")
    table.add("server CPU ms per login (median / best)", f"{cpu['median']:.3f} / {cpu['best']:.3f}")
    table.add("  of it reactor thread (median / best)", f"{reactor['median']:.3f} / {reactor['best']:.3f}")
    table.add("server CPU % (median round)", sustained["server_cpu_percent"])


def run(options) -> tuple[dict, Table]:
    workers = options.workers
    burst = min(options.burst, options.users)
    logger = "msnp.logs.observer" if options.lean_log else None
    with server_for(options, options.users, options.contacts, backlog=options.backlog, logger=logger) as server:
        setup = {"dispatch": server.dispatch, "shares": shares(range(options.users), workers)}
        with Generator(ClientWorker, workers, setup) as generator:
            per_worker = max(1, options.concurrency // workers)
            rounds = [_sustained_round(server, generator, per_worker) for _ in range(max(1, options.rounds))]
            # The round with the median rate stands for the sustained phase.
            sustained = sorted(rounds, key=lambda r: r["logins_per_second"])[(len(rounds) - 1) // 2]

            burst_figures = None
            if burst:
                per_worker_burst = [len(s) for s in shares(range(burst), workers)]
                overflows_before = listen_overflows()
                cpu_before = server.stats.cpu_seconds()
                started = time.perf_counter()
                results = generator.call("log_in", [(0, n) for n in per_worker_burst])
                wall = time.perf_counter() - started
                burst_figures = _login_figures(results, wall)
                burst_figures["simultaneous"] = burst
                burst_figures["listen_overflows"] = listen_overflows() - overflows_before
                burst_figures["server_cpu_percent"] = round(100 * (server.stats.cpu_seconds() - cpu_before) / wall, 1)
                burst_figures["generator"] = generator.last_cost.as_dict()
                generator.call("log_out")

    results = {
        "options": {
            "users": options.users,
            "contacts": options.contacts,
            "workers": workers,
            "backlog": options.backlog or server_default_backlog() or "Twisted default (50)",
            "log_observer": logger or "the server's default (--logfile)",
        },
        "sustained": sustained,
        "rounds": summarise_rounds(rounds),
        "burst": burst_figures,
    }
    where = f", cluster of {options.cluster} notification nodes" if getattr(options, "cluster", 0) else ""
    table = Table(f"login: {options.users} accounts x {options.contacts} contacts, MSNP7 MD5 via dispatch{where}")
    add_sustained_rows(table, results["rounds"], sustained, ">= 1,000")
    table.add("generator CPU % of a core", sustained["generator"]["cpu_percent_of_one_core"])
    if burst_figures:
        table.add(f"burst of {burst}: seconds until all online", burst_figures["wall_seconds"])
        table.add("burst logins/s", burst_figures["logins_per_second"])
        table.add("burst login latency p99 ms", burst_figures["latency"]["p99_ms"])
        table.add("burst dispatch VER reply p99 ms", burst_figures["steps"]["greeted"]["p99_ms"])
        table.add("burst DS VER replies after >= 1 s (stalls)", burst_figures["stalled_over_1s_at_dispatch"], "0")
        table.add("burst NS VER replies after >= 1 s (stalls)", burst_figures["stalled_over_1s_at_notification"], "0")
        table.add("burst listen-queue overflows", burst_figures["listen_overflows"], "0")
        table.add("burst failed logins", burst_figures["failures"], "0")
    return results, table
