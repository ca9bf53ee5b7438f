"""
ABFindAll for a full contact list (600 contacts, the forward-list limit):
one account's whole address book asked for again and again over HTTPS (a
fresh TLS connection each, as WLM does), at a bounded concurrency.  The
answer's size and the latency per request; the server's CPU per request
shows what rendering a 600-contact book costs.
"""

from __future__ import annotations

import time

from bench.report import Table, latency_summary
from bench.server import ServerProcess
from bench.workers import ClientWorker, Generator, shares


def add_arguments(parser) -> None:
    parser.add_argument("--contacts", type=int, default=600, help="contacts on the account's list (default 600)")
    parser.add_argument("--requests", type=int, default=200, help="ABFindAll requests per worker (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker (default 8)")


def run(options) -> tuple[dict, Table]:
    workers = options.workers
    # Every account has the same number of contacts; each worker asks for
    # its own account's book.
    users = max(workers, options.contacts + 1)
    with ServerProcess(users, options.contacts, passport=True) as server:
        setup = {
            "dispatch": server.dispatch,
            "shares": shares(range(workers), workers),
            "passport": {"address": server.passport, "certificate": server.certificate_path, "dialect": 18, "sso": True},
        }
        with Generator(ClientWorker, workers, setup) as generator:
            cpu_before = server.stats.cpu_seconds()
            started = time.perf_counter()
            results = generator.call("find_all", [(options.requests, options.concurrency)] * workers)
            wall = time.perf_counter() - started
            cpu = server.stats.cpu_seconds() - cpu_before
    latencies = [t for r in results for t in r["latencies"]]
    sizes = [s for r in results for s in r["sizes"]]
    failures = [f for r in results for f in r["failures"]]
    answered = len(latencies)
    figures = {
        "options": {"contacts": options.contacts, "requests_per_worker": options.requests, "workers": workers},
        "requests": answered,
        "failures": len(failures),
        "failure_examples": failures[:5],
        "requests_per_second": round(answered / wall, 1) if wall else 0.0,
        "latency": latency_summary(latencies),
        "answer_bytes": max(sizes) if sizes else 0,
        "server_cpu_ms_per_request": round(1000 * cpu / answered, 2) if answered else None,
    }
    table = Table(f"addressbook: ABFindAll of {options.contacts} contacts over TLS")
    table.add("ABFindAll/s", figures["requests_per_second"])
    table.add("latency p50 ms", figures["latency"]["p50_ms"])
    table.add("latency p99 ms", figures["latency"]["p99_ms"])
    table.add("failed requests", len(failures), "0")
    table.add("answer bytes", figures["answer_bytes"])
    table.add("server CPU ms per request", figures["server_cpu_ms_per_request"])
    return figures, table
