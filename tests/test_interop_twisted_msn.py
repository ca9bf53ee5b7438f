"""
Interoperability with an MSN client written by others: Twisted's MSNP8
client (twisted.words.protocols.msn, Python 2 only), installed from PyPI
into a cache outside the repository and driven by
tests/interop/twisted_msn_driver.py in a child process.  Twisted 10.2.0 is
the last release whose client can finish a Passport login: from 11.0 it
hands a Deferred to C{succeed}, which asserts against it.

Each pairing logs in through the dispatch server, shows each side the
other's presence and holds one conversation: Twisted (MSNP8, its own
Passport 1.4 code) with Twisted, Twisted calling an MSNP7 (MD5) client and
the MSNP7 client calling Twisted.  A line the Twisted client rejects
(C{bad_line}) fails the test.  See protocol-notes/interop.md.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol

from msnclient import connect, login, md5_answer, open_switchboard, answer_ring  # noqa: F401
from twn import pp_server, twn_login  # noqa: F401 (fixture)

DRIVER = Path(__file__).parent / "interop" / "twisted_msn_driver.py"
# The last Twisted whose MSN client logs in, and the newest of its
# dependencies that still install on Python 2.7.
TWISTED_REQUIREMENTS = ["Twisted==10.2.0", "pyOpenSSL==21.0.0", "cryptography<3.4", "zope.interface<6"]
RUN_LIMIT = 90.0


def find_python2() -> Optional[str]:
    """
    A working Python 2.7: C{MSNP_PYTHON2}, C{python2.7}/C{python2} on the
    path, or a pyenv installation.
    """
    candidates = [os.environ.get("MSNP_PYTHON2"), shutil.which("python2.7"), shutil.which("python2")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python")), reverse=True)
    for candidate in candidates:
        if not candidate:
            continue
        try:
            probe = subprocess.run([candidate, "-c", "import sys, ssl; assert sys.version_info[:2] == (2, 7)"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="session")
def twisted_msn():
    """
    (Python 2.7 interpreter, directory holding Twisted 10.2.0), installed
    on first use into the user's cache (C{MSNP_INTEROP_CACHE} overrides).
    """
    python = find_python2()
    if python is None:
        pytest.skip("no Python 2.7 interpreter: Twisted's MSNP8 client runs only on Python 2 (set MSNP_PYTHON2)")
    cache = Path(os.environ.get("MSNP_INTEROP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "msnp-interop")
    target = cache / "twisted-10.2.0-py27"
    if not (target / "twisted" / "words" / "protocols" / "msn.py").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        result = subprocess.run(
            [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location", "--quiet", "--target", str(staging), *TWISTED_REQUIREMENTS],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"installing {TWISTED_REQUIREMENTS} for {python} failed:\n{result.stderr[-2000:]}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return python, target


class DriverProcess(ProcessProtocol):
    """
    One run of the driver: the events it reports, its other output, and
    its exit status once it ends.
    """

    def __init__(self, name: str):
        self.name = name
        self.events: list[dict] = []
        self.other = b""
        self.buffer = b""
        self.ended = defer.Deferred()
        self.status: Optional[int] = None

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"EVENT "):
                self.events.append(json.loads(line[6:]))
            else:
                self.other += line + b"\n"

    def errReceived(self, data: bytes) -> None:
        self.other += data

    def processEnded(self, reason) -> None:
        self.status = reason.value.exitCode
        self.ended.callback(self.status)

    def of(self, kind: str, **fields) -> list[dict]:
        return [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())]

    def report(self) -> str:
        return f"{self.name} exit {self.status}\n" + "\n".join(map(json.dumps, self.events)) + "\n" + self.other.decode("utf-8", "replace")[-3000:]


def start_driver(twisted_msn, server, handle: str, password: str, peer: str, role: str, text: str) -> DriverProcess:
    python, path = twisted_msn
    nexus = f"https://127.0.0.1:{server.passport_port}/rdr/pprdr.asp"
    args = [python, str(DRIVER), f"127.0.0.1:{server.dispatch_port}", nexus, handle, password, peer, role, text]
    process = DriverProcess(handle)
    env = {"MSNP_INTEROP_SITE": str(path), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    reactor.spawnProcess(process, python, args, env=env)
    return process


@defer.inlineCallbacks
def finished(*drivers: DriverProcess):
    """
    Wait for every driver to end; one still running after L{RUN_LIMIT}
    seconds is killed.
    """
    running = [d for d in drivers if d.status is None]

    def kill():
        for driver in running:
            if driver.status is None:
                driver.transport.signalProcess("KILL")

    guard = reactor.callLater(RUN_LIMIT, kill)
    try:
        yield defer.gatherResults([d.ended for d in drivers])
    finally:
        if guard.active():
            guard.cancel()


def assert_clean_run(driver: DriverProcess, peer: str, text: str, role: str) -> None:
    """
    The driven client logged in through the dispatch server and Passport,
    synced, went online, saw the peer online, held the conversation and
    rejected no line.
    """
    report = driver.report()
    assert driver.of("bad_line") == [] and driver.of("log_error") == [], report
    assert driver.of("error") == [] and driver.of("login_failure") == [] and driver.of("timeout") == [], report
    assert driver.of("referral"), report
    assert [e["port"] for e in driver.of("passport_connect")], report
    assert driver.of("logged_in", handle=driver.name, verified=1), report
    synced = driver.of("synced")
    assert synced and peer in [c[0] for c in synced[0]["contacts"]], report
    assert driver.of("status", status="NLN"), report
    assert [e for e in driver.of("presence", handle=peer) if e["status"] == "NLN"], report
    if role == "call":
        assert driver.of("message", handle=peer, text="echo: " + text), report
    else:
        assert driver.of("message", handle=peer, text=text), report
        assert driver.of("left", handle=peer), report
    assert driver.of("finished", ok=True) and driver.status == 0, report


@defer.inlineCallbacks
def befriend(server, handle: str, password: str, *contacts: str):
    """
    Put C{contacts} on C{handle}'s forward list (through an MSNP8 login of
    the test client): Twisted's client never finishes syncing an empty
    list, so the driven accounts start with their peers on it.
    """
    client = yield twn_login(server, handle, password, "MSNP8")
    for trid, contact in enumerate(contacts, 10):
        client.send(f"ADD {trid} FL {contact} {contact} 0")
        yield client.expect(rf"ADD {trid} FL \d+ {re.escape(contact)} {re.escape(contact)} 0")
    yield client.disconnect()


@defer.inlineCallbacks
def read_until(client, pattern: str):
    while True:
        line = yield client.next(timeout=30)
        match = re.fullmatch(pattern, line.text)
        if match:
            return match, line


@defer.inlineCallbacks
def msnp7_online(server, handle: str, password: str, peer: str):
    """
    An MSNP7 client (the test client) logs in with MD5 through the dispatch
    server, adds C{peer} and goes online.
    """
    dispatch = yield connect(server.dispatch_port, "ds-" + handle.split("@")[0])
    dispatch.send("VER 1 MSNP7 MSNP6 MSNP5 MSNP4 CVR0")
    yield dispatch.expect_line("VER 1 MSNP7")
    dispatch.send("INF 2")
    yield dispatch.expect_line("INF 2 MD5")
    dispatch.send(f"USR 3 MD5 I {handle}")
    match = yield dispatch.expect(r"XFR 3 NS 127\.0\.0\.1:(\d+) 0 \S+")
    yield dispatch.wait_closed()
    client = yield login(int(match.group(1)), handle, password, "MSNP7")
    client.send(f"ADD 5 FL {peer} {peer} 0")
    yield client.expect(rf"ADD 5 FL \d+ {re.escape(peer)} {re.escape(peer)} 0")
    client.send("CHG 6 NLN")
    yield client.expect_line("CHG 6 NLN")
    return client


@pytest_twisted.inlineCallbacks
def test_twisted_msnp8_with_twisted_msnp8(pp_server, twisted_msn):
    """
    Two Twisted clients: each sees the other online, one calls, the other
    answers with an echo.
    """
    yield befriend(pp_server, "alice@example.com", "pw-alice", "bob@example.com")
    yield befriend(pp_server, "bob@example.com", "pw-bob", "alice@example.com")
    text = "hello from twisted"
    callee = start_driver(twisted_msn, pp_server, "bob@example.com", "pw-bob", "alice@example.com", "answer", text)
    caller = start_driver(twisted_msn, pp_server, "alice@example.com", "pw-alice", "bob@example.com", "call", text)
    yield finished(callee, caller)
    assert_clean_run(caller, "bob@example.com", text, "call")
    assert_clean_run(callee, "alice@example.com", text, "answer")


@pytest_twisted.inlineCallbacks
def test_twisted_msnp8_calls_msnp7(pp_server, twisted_msn):
    """
    The MSNP7 user is online first: Twisted sees it in its ILN, the MSNP7
    client sees Twisted's NLN, Twisted calls and gets the echo.
    """
    yield befriend(pp_server, "alice@example.com", "pw-alice", "carol@example.com")
    carol = yield msnp7_online(pp_server, "carol@example.com", "pw-carol", "alice@example.com")
    text = "twisted to msnp7"
    caller = start_driver(twisted_msn, pp_server, "alice@example.com", "pw-alice", "carol@example.com", "call", text)
    try:
        yield read_until(carol, r"NLN NLN alice@example.com \S+")
        sb, _, _ = yield answer_ring(carol, "carol@example.com")
        match, line = yield read_until(sb, r"MSG alice@example\.com \S+ \d+")
        assert line.payload.endswith(text.encode())
        body = f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\necho: {text}".encode()
        sb.send_payload("MSG 2 N", body)
        yield read_until(sb, r"BYE alice@example\.com")
        yield sb.disconnect()
    finally:
        yield finished(caller)
    assert_clean_run(caller, "carol@example.com", text, "call")
    assert [e for e in caller.of("presence", handle="carol@example.com", via="ILN") if e["status"] == "NLN"], caller.report()
    yield carol.disconnect()


@pytest_twisted.inlineCallbacks
def test_msnp7_calls_twisted_msnp8(pp_server, twisted_msn):
    """
    The MSNP7 client sees Twisted come online, calls it and gets the echo
    of its message; Twisted sees the MSNP7 user online and its BYE.
    """
    yield befriend(pp_server, "bob@example.com", "pw-bob", "dave@example.com")
    dave = yield msnp7_online(pp_server, "dave@example.com", "pw-dave", "bob@example.com")
    text = "msnp7 to twisted"
    callee = start_driver(twisted_msn, pp_server, "bob@example.com", "pw-bob", "dave@example.com", "answer", text)
    try:
        yield read_until(dave, r"NLN NLN bob@example.com \S+")
        sb = yield open_switchboard(dave, "dave@example.com", trid=20)
        sb.send("CAL 2 bob@example.com")
        yield sb.expect(r"CAL 2 RINGING \d+")
        yield read_until(sb, r"JOI bob@example\.com \S+")
        body = f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n{text}".encode()
        sb.send_payload("MSG 3 N", body)
        match, line = yield read_until(sb, r"MSG bob@example\.com \S+ \d+")
        assert line.payload.endswith(f"echo: {text}".encode())
        sb.send("OUT")
        yield sb.wait_closed()
    finally:
        yield finished(callee)
    assert_clean_run(callee, "dave@example.com", text, "answer")
    yield dave.disconnect()
