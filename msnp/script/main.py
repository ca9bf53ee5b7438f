"""
C{msnp-script}: run conversation transcripts against an MSN server.

    msnp-script FILE... --server HOST:PORT [--accounts FILE] [--junit FILE]

Each step is printed as it passes; a file stops at its first mismatch,
showing what was expected and what was received.  The last line is
C{N passed, N failed} (files), and the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional
from xml.etree import ElementTree

from twisted.internet import defer, task

from msnp.client import passport
from msnp.script import engine, transcript


def read_accounts(path: str) -> dict:
    """
    An accounts file: one C{handle password} per line (anything after the
    password is a friendly name, ignored here); C{#} starts a comment.
    """
    accounts = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2:
                raise SystemExit(f"{path}:{number}: expected 'handle password'")
            accounts[parts[0]] = parts[1]
    return accounts


def junit_xml(results: list) -> bytes:
    suite = ElementTree.Element(
        "testsuite",
        name="msnp-script",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if not r.passed)),
        time="%.3f" % sum(r.seconds for r in results),
    )
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", classname="transcripts", name=result.path, time="%.3f" % result.seconds)
        if not result.passed:
            failure = ElementTree.SubElement(case, "failure", message=f"line {result.failure.line}: mismatch")
            failure.text = result.describe()
        out = ElementTree.SubElement(case, "system-out")
        out.text = "\n".join(result.steps)
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)


def options(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="msnp-script", description="Run MSNP conversation transcripts against a server.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--server", required=True, metavar="HOST:PORT", help="the dispatch server ('dispatch' in transcripts)")
    parser.add_argument("--notification", metavar="HOST:PORT", help="the notification server, for transcripts that connect to it directly")
    parser.add_argument("--switchboard", metavar="HOST:PORT", help="the switchboard, for transcripts that connect to it directly")
    parser.add_argument("--accounts", metavar="FILE", help="'handle password' per line")
    parser.add_argument("--nexus", default=passport.DEFAULT_NEXUS, metavar="URL", help="the Passport nexus (MSNP8+ logins)")
    parser.add_argument("--ca", metavar="PEM", help="certificates to trust for Passport's TLS instead of the system's")
    parser.add_argument("--timeout", type=float, default=engine.DEFAULT_TIMEOUT, metavar="SECONDS", help="how long to wait for each line")
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    return parser.parse_args(argv)


async def run(reactor, args: argparse.Namespace, out=sys.stdout) -> int:
    addresses = {"dispatch": args.server}
    for role in ("notification", "switchboard"):
        if getattr(args, role):
            addresses[role] = getattr(args, role)
    accounts = read_accounts(args.accounts) if args.accounts else {}

    def show(text: str) -> None:
        if not args.quiet:
            print("  " + text.replace("\n", "\n  "), file=out, flush=True)

    runner = engine.Engine(reactor, addresses, accounts, args.timeout, args.nexus, args.ca, show)
    results = []
    for path in args.files:
        if not args.quiet:
            print(path, file=out, flush=True)
        try:
            script = transcript.load(path)
        except (OSError, transcript.TranscriptSyntaxError) as problem:
            result = engine.FileResult(path, failure=engine.StepFailed(getattr(problem, "line", 0), "a readable transcript", str(problem)))
        else:
            result = await runner.run(script)
        results.append(result)
        if result.passed:
            if not args.quiet:
                print(f"ok {path} ({len(result.steps)} steps)", file=out, flush=True)
        else:
            print("FAIL " + result.describe(), file=out, flush=True)
    if args.junit:
        with open(args.junit, "wb") as handle:
            handle.write(junit_xml(results))
    failed = sum(1 for r in results if not r.passed)
    print(f"{len(results) - failed} passed, {failed} failed", file=out, flush=True)
    return 1 if failed else 0


def main(argv: Optional[list] = None) -> None:
    args = options(argv)

    async def go(reactor):
        status = await run(reactor, args)
        if status:
            raise SystemExit(status)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
