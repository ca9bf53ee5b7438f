"""
Passport logins (MSNP8-MSNP12): accounts log in the way MSN Messenger
5.0-7.0 did — dispatch, notification USR TWN I, the nexus and login2.srf
over HTTPS (a fresh TLS connection each), USR TWN S with the ticket, SYN,
the first CHG and the CHL answer.  The server runs with a Passport endpoint
on a throwaway certificate.

Each login costs the server one scrypt hash of the password by design (the
slow hash is what Passport stores instead of a password-equivalent), so
the scenario also times scrypt alone on this machine, to show how much of
the login it is.
"""

from __future__ import annotations

import os
import time

from bench.login import _sustained_round, add_sustained_rows, summarise_rounds
from bench.report import Table
from bench.server import ServerProcess
from bench.workers import ClientWorker, Generator, shares


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=200, help="accounts that log in (default 200)")
    parser.add_argument("--contacts", type=int, default=20, help="contacts per account (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="logins in flight (default 16)")
    parser.add_argument("--dialect", type=int, default=12, choices=range(8, 13), help="MSNP version the clients speak (default 12)")
    parser.add_argument("--rounds", type=int, default=3, help="times everyone logs in and out; the median and best are reported (default 3)")
    parser.add_argument("--hashes", type=int, default=20, help="scrypt hashes timed alone (default 20)")


def scrypt_cost(count: int) -> dict:
    """
    CPU and wall time of the server's password hash alone, in this process.
    """
    from msnp.store.records import hash_password

    count = max(1, count)
    cpu_before, started = time.process_time(), time.perf_counter()
    for _ in range(count):
        hash_password("bench-password")
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - started
    return {"hashes": count, "cpu_ms_per_hash": round(1000 * cpu / count, 2), "wall_ms_per_hash": round(1000 * wall / count, 2)}


def run(options) -> tuple[dict, Table]:
    workers = options.workers
    scrypt = scrypt_cost(options.hashes)
    with ServerProcess(options.users, options.contacts, passport=True) as server:
        setup = {
            "dispatch": server.dispatch,
            "shares": shares(range(options.users), workers),
            "passport": {"address": server.passport, "certificate": server.certificate_path, "dialect": options.dialect},
        }
        with Generator(ClientWorker, workers, setup) as generator:
            per_worker = max(1, options.concurrency // workers)
            rounds = [_sustained_round(server, generator, per_worker) for _ in range(max(1, options.rounds))]
    sustained = sorted(rounds, key=lambda r: r["logins_per_second"])[(len(rounds) - 1) // 2]
    summary = summarise_rounds(rounds)
    cpu_per_login = summary["server_cpu_ms_per_login"]["median"]
    cores = os.cpu_count() or 1
    results = {
        "options": {
            "users": options.users,
            "contacts": options.contacts,
            "workers": workers,
            "dialect": f"MSNP{options.dialect}",
        },
        "sustained": sustained,
        "rounds": summary,
        "scrypt": scrypt,
        # What scrypt alone allows: one hash per login on every core.
        "scrypt_ceiling_logins_per_second": round(cores * 1000 / scrypt["cpu_ms_per_hash"], 1),
        "scrypt_share_of_server_cpu_percent": round(100 * scrypt["cpu_ms_per_hash"] / cpu_per_login, 1) if cpu_per_login else None,
    }
    table = Table(
        f"passport: {options.users} accounts x {options.contacts} contacts, MSNP{options.dialect} "
        "via dispatch, nexus + login2.srf over TLS"
    )
    add_sustained_rows(table, summary, sustained)
    table.add("ticket in hand p50 ms (median round)", sustained["steps"]["ticketed"]["p50_ms"])
    table.add("scrypt alone: CPU ms per hash", scrypt["cpu_ms_per_hash"])
    table.add(f"scrypt ceiling on {cores} cores, logins/s", results["scrypt_ceiling_logins_per_second"])
    table.add("scrypt share of server CPU per login %", results["scrypt_share_of_server_cpu_percent"])
    table.add("generator CPU % of a core", sustained["generator"]["cpu_percent_of_one_core"])
    return results, table
