"""
Scenario 4, capacity: many logged-in clients that then sit idle — the
server's resident memory per connection (VmRSS after the logins minus
VmRSS before, over the number of clients) and its CPU use while idle.
"""

from __future__ import annotations

import resource
import time

from bench.report import Table
from bench.server import SERVER_NOFILE, ServerProcess
from bench.workers import ClientWorker, Generator, shares


def add_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=20000, help="logged-in idle clients (default 20000)")
    parser.add_argument("--contacts", type=int, default=20, help="contacts per account (default 20)")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="logins in flight")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between the last login and measuring")
    parser.add_argument(
        "--single-source",
        action="store_true",
        help="connect from 127.0.0.1 only (default: one 127.0.0.x source address per worker)",
    )


# Descriptors the server needs besides its clients: listening ports, the
# database and its journal, the log, the store thread's wake-up pipe.
SERVER_SPARE_FILES = 64


def client_ceiling() -> int:
    """
    How many clients the server process can hold: the open-file limit a
    process started from here can reach, less the server's own files.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reachable = max(soft, hard) if hard != resource.RLIM_INFINITY else SERVER_NOFILE
    return min(reachable, SERVER_NOFILE) - SERVER_SPARE_FILES


def run(options) -> tuple[dict, Table]:
    workers = options.workers
    ceiling = client_ceiling()
    note = None
    if options.clients > ceiling:
        note = f"{options.clients} clients asked for; this machine's open-file limit lets one process hold {ceiling}"
        print(note, flush=True)
        options.clients = ceiling
    local_hosts = None if options.single_source else [f"127.0.0.{2 + i}" for i in range(workers)]
    with ServerProcess(options.clients, options.contacts) as server:
        setup = {
            "dispatch": server.dispatch,
            "shares": shares(range(options.clients), workers),
            "local_hosts": local_hosts,
        }
        with Generator(ClientWorker, workers, setup) as generator:
            time.sleep(0.2)
            rss_before = server.stats.rss_bytes()
            started = time.perf_counter()
            logins = generator.call("log_in", [(max(1, options.concurrency // workers),)] * workers, timeout=1800)
            login_seconds = time.perf_counter() - started
            login_cost = generator.last_cost
            online = sum(len(part["times"]) for part in logins)
            failures = [f for part in logins for f in part["failures"]]
            # Let the last presence notifications drain before measuring.
            time.sleep(options.settle)
            rss_after = server.stats.rss_bytes()
            cpu_before = server.stats.cpu_seconds()
            idle_started = time.perf_counter()
            time.sleep(options.idle_window)
            idle_wall = time.perf_counter() - idle_started
            idle_cpu = server.stats.cpu_seconds() - cpu_before
            threads = server.stats.threads()
            generator.call("log_out", timeout=600)

    per_connection = (rss_after - rss_before) / online if online else None
    results = {
        "options": {
            "clients": options.clients,
            "contacts": options.contacts,
            "workers": workers,
            "source_addresses": local_hosts or ["127.0.0.1"],
        },
        "clamped": note,
        "online": online,
        "login_failures": len(failures),
        "login_failure_examples": failures[:5],
        "login_seconds": round(login_seconds, 2),
        "logins_per_second": round(online / login_seconds, 1) if login_seconds else 0.0,
        "login_generator": login_cost.as_dict(),
        "server_rss_before_mib": round(rss_before / 2**20, 1),
        "server_rss_after_mib": round(rss_after / 2**20, 1),
        "server_bytes_per_connection": round(per_connection) if per_connection is not None else None,
        "server_idle_cpu_percent": round(100 * idle_cpu / idle_wall, 2),
        "idle_window_seconds": round(idle_wall, 1),
        "server_threads": threads,
    }
    table = Table(f"capacity: {options.clients} logged-in idle clients, {options.contacts} contacts each")
    table.add("clients online", online)
    table.add("failed logins", len(failures), "0")
    table.add("server RSS before MiB", results["server_rss_before_mib"])
    table.add("server RSS after MiB", results["server_rss_after_mib"])
    kib = per_connection / 1024 if per_connection is not None else None
    table.add("server KiB per idle connection", round(kib, 1) if kib is not None else None, "<= 16")
    table.add(f"server idle CPU % over {idle_wall:.0f} s", results["server_idle_cpu_percent"])
    table.add("logins/s while filling", results["logins_per_second"])
    return results, table
