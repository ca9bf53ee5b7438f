"""
Single sign-on logins (MSNP18, as WLM 2009): dispatch, USR SSO I, the
token request to RST2.srf over HTTPS (a fresh TLS connection each), USR SSO
S with the MBI proof and a machine GUID, the initial ADL and the first CHG.

Where the time goes is in the step times: "ticketed" covers RST2.srf (one
scrypt hash of the password on the server, by design), "authenticated" the
MBI check (two key derivations, an HMAC and 3DES) and the account load; the
scenario also times scrypt and the MBI check alone.
"""

from __future__ import annotations

import os
import time

from bench.login import _sustained_round, add_sustained_rows, summarise_rounds
from bench.passport import scrypt_cost
from bench.report import Table
from bench.server import ServerProcess
from bench.workers import ClientWorker, Generator, shares


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=200, help="accounts that log in (default 200)")
    parser.add_argument("--contacts", type=int, default=20, help="contacts per account (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="logins in flight (default 16)")
    parser.add_argument("--dialect", type=int, default=18, choices=range(15, 19), help="MSNP version the clients speak (default 18)")
    parser.add_argument("--rounds", type=int, default=3, help="times everyone logs in and out; the median and best are reported (default 3)")
    parser.add_argument("--hashes", type=int, default=20, help="scrypt hashes and MBI checks timed alone (default 20)")


def mbi_cost(count: int) -> dict:
    """
    CPU time of the server's MBI proof check alone, in this process.
    """
    from msnp.msn import sso

    secret, nonce = sso.new_secret(), sso.new_nonce()
    blob = sso.mbi_blob(secret, nonce)
    count = max(1, count)
    cpu_before = time.process_time()
    for _ in range(count):
        sso.verify_mbi(secret, nonce, blob)
    return {"checks": count, "cpu_ms_per_check": round(1000 * (time.process_time() - cpu_before) / count, 3)}


def run(options) -> tuple[dict, Table]:
    workers = options.workers
    scrypt = scrypt_cost(options.hashes)
    mbi = mbi_cost(options.hashes)
    with ServerProcess(options.users, options.contacts, passport=True) as server:
        setup = {
            "dispatch": server.dispatch,
            "shares": shares(range(options.users), workers),
            "passport": {"address": server.passport, "certificate": server.certificate_path, "dialect": options.dialect, "sso": True},
        }
        with Generator(ClientWorker, workers, setup) as generator:
            per_worker = max(1, options.concurrency // workers)
            rounds = [_sustained_round(server, generator, per_worker) for _ in range(max(1, options.rounds))]
    sustained = sorted(rounds, key=lambda r: r["logins_per_second"])[(len(rounds) - 1) // 2]
    summary = summarise_rounds(rounds)
    cpu_per_login = summary["server_cpu_ms_per_login"]["median"]
    cores = os.cpu_count() or 1
    results = {
        "options": {"users": options.users, "contacts": options.contacts, "workers": workers, "dialect": f"MSNP{options.dialect}"},
        "sustained": sustained,
        "rounds": summary,
        "scrypt": scrypt,
        "mbi": mbi,
        "scrypt_ceiling_logins_per_second": round(cores * 1000 / scrypt["cpu_ms_per_hash"], 1),
        "scrypt_share_of_server_cpu_percent": round(100 * scrypt["cpu_ms_per_hash"] / cpu_per_login, 1) if cpu_per_login else None,
    }
    table = Table(
        f"sso: {options.users} accounts x {options.contacts} contacts, MSNP{options.dialect} via dispatch, "
        "RST2.srf over TLS, MBI proof"
    )
    add_sustained_rows(table, summary, sustained)
    for step in ("ticketed", "authenticated", "synced", "online"):
        table.add(f"{step} p50 ms (median round)", sustained["steps"].get(step, {}).get("p50_ms"))
    table.add("scrypt alone: CPU ms per hash", scrypt["cpu_ms_per_hash"])
    table.add("MBI check alone: CPU ms per check", mbi["cpu_ms_per_check"])
    table.add(f"scrypt ceiling on {cores} cores, logins/s", results["scrypt_ceiling_logins_per_second"])
    table.add("scrypt share of server CPU per login %", results["scrypt_share_of_server_cpu_percent"])
    return results, table
