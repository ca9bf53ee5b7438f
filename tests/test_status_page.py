"""
The status page at / in a real headless Chromium (Debian's chromium
package, installed here when missing): it loads with no console message
at all (it has no script, so any would be an error: a blocked or failed
load, a CSP violation), and shows the figures /api/server reports.

Set MSNP_STATUS_SCREENSHOT=path to keep the screenshot taken.
"""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol

from adminhttp import admin_server  # noqa: F401 (fixture)
from msnclient import answer_ring, attempt_login, go_online, login, open_switchboard
from ns_steps import sign_out

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Console messages go to standard error as INFO:CONSOLE lines.
    "--enable-logging=stderr",
    "--v=0",
]
# How long one headless run may take before it is killed.
CHROMIUM_DEADLINE = 120


@pytest.fixture(scope="session")
def chromium():
    """
    The chromium binary, installed from Debian's packages when missing.
    """
    found = shutil.which("chromium")
    if found is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
            assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        found = shutil.which("chromium")
    assert found, "chromium is not installed and could not be installed"
    return found


class _Collect(ProcessProtocol):
    def __init__(self, finished: defer.Deferred):
        self.finished = finished
        self.out = []
        self.err = []

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        self.finished.callback((b"".join(self.out), b"".join(self.err), reason.value.exitCode))


def run_chromium(binary: str, profile, *arguments) -> defer.Deferred:
    """
    Run headless Chromium without blocking the reactor (the server under
    test answers it from this process); fires with (stdout, stderr,
    exit code).
    """
    os.makedirs(profile, exist_ok=True)
    finished = defer.Deferred()
    protocol = _Collect(finished)
    env = dict(os.environ, HOME=str(profile))
    args = ["timeout", "-s", "KILL", str(CHROMIUM_DEADLINE), binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    reactor.spawnProcess(protocol, "timeout", args, env=env, path=str(profile))
    return finished


def console_messages(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode("utf-8", "replace").splitlines() if ":CONSOLE" in line]


class FigureParser(HTMLParser):
    """
    The text of every element carrying data-figure, and the ids seen.
    """

    def __init__(self):
        super().__init__()
        self.figures = {}
        self.ids = set()
        self.classes = set()
        self._open = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "class" in attrs:
            self.classes.add(attrs["class"])
        if "data-figure" in attrs:
            self._open = attrs["data-figure"]
            self.figures[self._open] = ""

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open is not None:
            self.figures[self._open] += data


@pytest_twisted.inlineCallbacks
def test_console_messages_are_caught(chromium, tmp_path):
    """
    The check below can fail: a page that logs an error and loads a
    missing image is seen to have console messages.
    """
    page = "data:text/html,<script>console.error('broken')</script>"
    _, stderr, _ = yield run_chromium(chromium, tmp_path, "--dump-dom", page)
    assert any("broken" in line for line in console_messages(stderr)), stderr[-2000:]


@pytest_twisted.inlineCallbacks
def test_status_page_in_headless_chromium(chromium, admin_server, tmp_path):
    """
    With two users signed in (MSNP7 busy, MSNP5), a refused login and a
    switchboard message, the page Chromium renders shows the same figures
    as /api/server, the per-minute chart, the refused login and the
    listeners, with no console message; the screenshot is a PNG.
    """
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP7")
    carol = yield login(admin_server.notification_port, "carol@example.com", "pw-carol", "MSNP5")
    refused = yield attempt_login(admin_server.notification_port, "dave@example.com", "not-daves")
    yield refused.expect_line("911 3")
    yield refused.expect_close()
    yield go_online(alice, 5, "BSY")
    yield go_online(bob, 5)
    sb_alice = yield open_switchboard(alice, "alice@example.com", trid=10)
    sb_alice.send("CAL 2 bob@example.com")
    yield sb_alice.expect(r"CAL 2 RINGING \d+")
    sb_bob, _, _ = yield answer_ring(bob, "bob@example.com")
    yield sb_alice.expect(r"JOI bob@example\.com Bob")
    sb_alice.send_payload("MSG 3 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi")
    yield sb_bob.expect(r"MSG alice@example\.com Alice \d+")

    api = (yield admin_server.request("GET", "/api/server")).json
    url = admin_server.admin_url + "/"
    dom, stderr, code = yield run_chromium(chromium, tmp_path / "dom", "--dump-dom", url)
    assert code == 0, stderr[-3000:]
    assert console_messages(stderr) == []
    page = FigureParser()
    page.feed(dom.decode("utf-8"))
    figures = page.figures
    assert figures["online"] == "3" == str(sum(api["sessions"]["notification"].values()))
    assert figures["sessions/notification/MSNP7"] == "2" == str(api["sessions"]["notification"]["MSNP7"])
    assert figures["sessions/notification/MSNP5"] == "1"
    assert figures["sessions/switchboard/MSNP7"] == "2"
    assert figures["status/busy"] == "1" and figures["status/online"] == "1" and figures["status/no status yet"] == "1"
    assert figures["conversations"] == "1" == str(api["switchboard_conversations"])
    for name in ("logins_accepted", "logins_refused", "switchboard_messages"):
        assert figures[name] == str(api[name]) and int(figures[name]) >= 1, name
    assert float(figures["logins_this_minute"]) >= 3
    assert {"per-minute-chart", "listeners", "refused-logins", "disconnections"} <= page.ids
    assert {"series-logins", "series-messages"} <= page.classes
    text = " ".join(page.text)
    assert "dave@example.com" in text and "wrong password" in text
    assert f"http://127.0.0.1:{admin_server.admin_port}/" in text
    assert re.search(r"notification\s+tcp:0:interface=127\.0\.0\.1 \(port \d+\)", text)

    shot = tmp_path / "status.png"
    _, stderr, code = yield run_chromium(chromium, tmp_path / "shot", "--window-size=1000,1250", f"--screenshot={shot}", url)
    assert code == 0, stderr[-3000:]
    assert console_messages(stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("MSNP_STATUS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
    yield sign_out(sb_alice, sb_bob, alice, bob, carol)
