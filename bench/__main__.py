"""
C{python -m bench SCENARIO [options]}: start a server, load it, print a
table and write bench/results/SCENARIO.json.  C{python -m bench all} runs
every scenario with its defaults (C{--smoke}: tiny sizes, for CI).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.report import write_results

SCENARIOS = {
    "login": "bench.login",
    "passport": "bench.passport",
    "presence": "bench.presence",
    "conversations": "bench.conversations",
    "floor": "bench.conversations",
    "capacity": "bench.capacity",
    "sip": "bench.sip",
    "rvp": "bench.rvp",
    "sso": "bench.sso",
    "addressbook": "bench.addressbook",
}
DESCRIPTIONS = {
    "login": "MD5 logins through the dispatch server: sustained rate, latency, a burst",
    "passport": "Passport (MSNP8-12) logins: nexus and login2.srf over TLS, then USR TWN S",
    "presence": "status changes fanned out to online watchers: CHG-to-NLN latency, NLN/s",
    "conversations": "two-party switchboard sessions sending MSG A, and the same through the floor relay",
    "floor": "only the floor: the conversation traffic through a bare Twisted relay",
    "capacity": "many logged-in idle clients: server memory per connection, idle CPU",
    "sip": "SIP federation edge: MSN CHG to SIP NOTIFY, SIP MESSAGE to MSN MSG, latency at a steady rate",
    "rvp": "presence across the RVP bridge: RVP PROPPATCH to MSN NLN and MSN CHG to RVP NOTIFY latency",
    "sso": "MSNP18 single sign-on logins: RST2.srf over TLS, USR SSO S with the MBI proof, ADL, CHG",
    "addressbook": "ABFindAll of a 600-contact address book over TLS: latency, size, server CPU per request",
}
ALL = ("login", "passport", "sso", "addressbook", "presence", "conversations", "capacity", "sip", "rvp")

# Sizes small enough for a CI smoke run of every scenario in a few seconds.
SMOKE = {
    "login": ["--users", "40", "--contacts", "4", "--burst", "40", "--concurrency", "8", "--rounds", "1"],
    "passport": ["--users", "6", "--contacts", "4", "--concurrency", "2", "--rounds", "1", "--hashes", "1"],
    "presence": ["--users", "30", "--watchers", "6", "--rates", "200", "--duration", "0.3"],
    "conversations": ["--sessions", "4", "--duration", "0.3", "--rate", "200"],
    "floor": ["--sessions", "4", "--duration", "0.3", "--rate", "200"],
    "capacity": ["--clients", "60", "--contacts", "4", "--idle-window", "0.2", "--settle", "0.1"],
    "sip": ["--users", "10", "--rate", "10", "--duration", "0.5"],
    "rvp": ["--users", "3", "--rates", "20", "--duration", "0.3"],
    "sso": ["--users", "6", "--contacts", "4", "--concurrency", "2", "--rounds", "1", "--hashes", "1"],
    "addressbook": ["--contacts", "20", "--requests", "3", "--concurrency", "2"],
}


def _module(scenario: str):
    return importlib.import_module(SCENARIOS[scenario])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="scenario", required=True)
    for scenario in SCENARIOS:
        sub = commands.add_parser(scenario, help=DESCRIPTIONS[scenario])
        _common_arguments(sub)
        if scenario == "floor":
            _module(scenario).add_floor_arguments(sub)
        else:
            _module(scenario).add_arguments(sub)
    everything = commands.add_parser("all", help="every scenario, one after the other")
    _common_arguments(everything)
    everything.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that each scenario runs")
    return parser


def _common_arguments(parser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--results-dir", default=None, help="where to write SCENARIO.json (default bench/results)")
    parser.add_argument(
        "--cluster", type=int, default=0, metavar="N",
        help="login, presence, conversations: run against 1 dispatch, N notification and 1 switchboard processes "
        "on a throwaway Redis and PostgreSQL instead of one process (default 0: one process)",
    )


def run_scenario(scenario: str, options) -> int:
    module = _module(scenario)
    started = time.perf_counter()
    runner = module.run_floor if scenario == "floor" else module.run
    results, table = runner(options)
    results["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    path = write_results(scenario, results, options.results_dir)
    print(table.render())
    print(f"results: {path}\n", flush=True)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.scenario != "all":
        return run_scenario(options.scenario, options)
    status = 0
    for scenario in ALL:
        argv = [scenario, "--workers", str(options.workers)]
        if options.results_dir:
            argv += ["--results-dir", options.results_dir]
        if options.smoke:
            argv += SMOKE[scenario]
        try:
            status |= run_scenario(scenario, parser.parse_args(argv))
        except Exception as error:
            print(f"{scenario} failed: {error}", file=sys.stderr, flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
