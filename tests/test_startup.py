"""
Starting the server: dangerous settings refused or warned about, a start
that fails (a port in use, a typo in an endpoint, an unreadable private
key) stopping with one line that names the option and the reason and
nothing left listening, and a good start naming every listener in one
line, in twistd's text or as JSON.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.python import usage

from conftest import ENDPOINTS
from msnclient import connect
from msnp.config import ServerConfig
from msnp.devcert import write_self_signed
from msnp.directory.local import LocalDirectory
from msnp.service import MessengerService
from msnp.tap import Options, check_options

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
needs_twistd = pytest.mark.skipif(not os.path.exists(TWISTD), reason="twistd not installed next to python")


def options(*argv):
    parsed = Options()
    parsed.parseOptions(list(argv))
    return parsed


def refusal(*argv) -> str:
    with pytest.raises(usage.UsageError) as error:
        check_options(options(*argv))
    return str(error.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_passport_on_plain_tcp_is_refused_unless_insecure(tmp_path):
    """
    Passwords would cross the network in clear: refused, unless the
    operator says a TLS-terminating proxy is in front, which is warned
    about.
    """
    db = str(tmp_path / "msnp.sqlite")
    assert refusal("--db", db, "--passport", "tcp:1443:interface=127.0.0.1") == (
        "--passport: a plain tcp: endpoint would carry passwords in clear; use ssl: "
        "(or --insecure-passport behind a TLS-terminating proxy)"
    )
    warnings = check_options(options("--db", db, "--passport", "tcp:1443:interface=127.0.0.1", "--insecure-passport"))
    assert warnings == ["--passport on tcp:1443:interface=127.0.0.1 with --insecure-passport: Passport passwords arrive in clear here"]


def test_admin_beyond_loopback_needs_a_token(tmp_path):
    """
    An admin endpoint other hosts can reach is refused without
    --admin-token-file; on loopback, or with a token, it is accepted.
    """
    db = str(tmp_path / "msnp.sqlite")
    for endpoint in ("tcp:8081", "tcp:8081:interface=0.0.0.0", "tcp:8081:interface=192.0.2.1"):
        assert refusal("--db", db, "--admin", endpoint) == (
            f"--admin: {endpoint} is reachable beyond the loopback interface; give --admin-token-file"
        )
    assert check_options(options("--db", db, "--admin", "tcp:8081", "--admin-token-file", str(tmp_path / "t"))) == []
    assert check_options(options("--db", db, "--admin", "none")) == []
    assert check_options(options("--db", db)) == []


def test_md5_on_every_address_is_warned_about(tmp_path):
    """
    MD5 logins with the dispatch or notification server on every address
    get a warning pointing at --no-md5; none on loopback or without MD5.
    """
    key, cert, _ = write_self_signed(tmp_path)
    db = str(tmp_path / "msnp.sqlite")
    warnings = check_options(options("--db", db, "--notification", "tcp:1864"))
    assert len(warnings) == 1 and warnings[0].startswith("MD5 logins are enabled and --notification listen on every address")
    assert "--no-md5" in warnings[0]
    passport = f"ssl:1443:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    assert check_options(options("--db", db, "--notification", "tcp:1864", "--no-md5", "--passport", passport)) == []


def test_typos_and_unreadable_keys_are_named(tmp_path):
    """
    An endpoint Twisted cannot parse and a key or certificate that is not
    PEM are refused with the option, the file and the reason.
    """
    db = str(tmp_path / "msnp.sqlite")
    key, cert, _ = write_self_signed(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    assert refusal("--db", db, "--notification", "tpc:1864") == "--notification: not a usable endpoint: tpc:1864 (Unknown endpoint type: 'tpc')"
    assert refusal("--db", db, "--switchboard", "tcp:18x5").startswith("--switchboard: not a usable endpoint: tcp:18x5 (")
    assert refusal("--db", db, "--admin", "tcp:8081:interfac=127.0.0.1").startswith("--admin: not a usable endpoint: ")
    assert refusal("--db", db, "--passport", f"ssl:1443:interface=127.0.0.1:privateKey={garbage}:certKey={cert}") == (
        f"--passport: privateKey {garbage}: not a readable PEM private key"
    )
    assert refusal("--db", db, "--passport", f"ssl:1443:interface=127.0.0.1:privateKey={key}:certKey={garbage}") == (
        f"--passport: certKey {garbage}: not a readable PEM certificate"
    )
    assert refusal("--db", db, "--log-format", "xml") == "--log-format: 'text' or 'json', not 'xml'"


def run_twistd(tmp_path, *msnp_args, pidfile=""):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    command = [TWISTD, "-n", f"--pidfile={pidfile}", "msnp", "--db", str(tmp_path / "msnp.sqlite"), *msnp_args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)


def roles(ports: dict) -> list:
    return [arg for role, port in ports.items() for arg in (f"--{role}", f"tcp:{port}:interface=127.0.0.1")]


@needs_twistd
@pytest.mark.parametrize("taken_role", ["notification", "admin"])
def test_port_in_use_stops_the_start(tmp_path, taken_role):
    """
    A port already in use: one line naming the option and the reason, a
    non-zero exit, no traceback, the pid file gone, and none of the other
    ports left listening.
    """
    ports = {role: free_port() for role in ("dispatch", "notification", "switchboard", "admin")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken_role]))
        holder.listen()
        result = run_twistd(tmp_path, *roles(ports), pidfile=str(tmp_path / "twistd.pid"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    lines = [line for line in output.splitlines() if "twistd msnp:" in line]
    expected = f"twistd msnp: --{taken_role}: cannot listen on tcp:{ports[taken_role]}:interface=127.0.0.1: Address already in use"
    assert len(lines) == 1 and lines[0].endswith(expected), output
    assert "Traceback" not in output
    assert not (tmp_path / "twistd.pid").exists()
    for role, port in ports.items():
        if role != taken_role:
            assert not listening(port), role


@needs_twistd
def test_endpoint_typo_stops_the_start(tmp_path):
    result = run_twistd(tmp_path, "--notification", "tpc:0:interface=127.0.0.1", "--admin", "none")
    assert result.returncode != 0
    assert result.stderr == "twistd msnp: --notification: not a usable endpoint: tpc:0:interface=127.0.0.1 (Unknown endpoint type: 'tpc')\n"
    assert "Traceback" not in result.stdout


@needs_twistd
def test_unreadable_private_key_stops_the_start(tmp_path):
    """
    A private key file that is not a key: one line, non-zero exit, and the
    roles that could have listened do not.
    """
    _, cert, _ = write_self_signed(tmp_path)
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    ports = {role: free_port() for role in ("dispatch", "notification", "switchboard")}
    result = run_twistd(
        tmp_path, *roles(ports), "--admin", "none",
        "--passport", f"ssl:0:interface=127.0.0.1:privateKey=key.pem:certKey={cert}",
    )
    assert result.returncode != 0
    assert result.stderr == "twistd msnp: --passport: privateKey key.pem: not a readable PEM private key\n"
    assert "Traceback" not in result.stdout
    assert not any(listening(port) for port in ports.values())


@needs_twistd
def test_json_log_token_file_and_start_line(tmp_path):
    """
    --log-format json writes one JSON object a line; the start line names
    every listener, Passport off and the admin URL; --admin-token-file is
    created with mode 0600, a request without it is refused with 401 and
    logged with the address, and one with it is answered.
    """
    ports = {role: free_port() for role in ("dispatch", "notification", "switchboard", "admin")}
    token_file = tmp_path / "admin.token"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "msnp", "--db", str(tmp_path / "msnp.sqlite"), *roles(ports),
         "--admin-token-file", str(token_file), "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )
    try:
        events = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
            if "listening:" in events[-1].get("log_format", ""):
                break
        start = events[-1]
        assert start["log_namespace"] == "msnp.service"
        text = start["listeners"]
        for role in ("dispatch", "notification", "switchboard"):
            assert f"{role} on tcp:{ports[role]}:interface=127.0.0.1 (port {ports[role]})" in text
        assert "Passport login off" in text
        assert f"admin (status page, /metrics, /api) on http://127.0.0.1:{ports['admin']}/ (bearer token required)" in text
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert any("admin token written to" in event.get("log_format", "") for event in events)
        url = f"http://127.0.0.1:{ports['admin']}/api/sessions"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read()) == {"sessions": []}
    finally:
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=30)
    later = [json.loads(line) for line in rest.splitlines() if line.strip()]
    refusals = [event for event in later if event.get("log_format", "").startswith("admin request refused")]
    assert refusals and refusals[0]["address"] == "127.0.0.1" and refusals[0]["why"] == "missing"
    assert any(event.get("log_format") == "msnp stopped" for event in later)
    assert process.returncode == 0, errors


@pytest_twisted.inlineCallbacks
def test_clients_wait_until_the_directory_has_started(tmp_path, accounts_database):
    """
    The ports are bound at once, but a client is served only once the
    store is open and the directory connected (a Redis directory takes a
    moment): a VER sent before is held in the listen queue and answered
    as soon as they are ready, not refused for want of a directory.
    """
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    connected = defer.Deferred()

    class ConnectingDirectory(LocalDirectory):
        def start(self):
            return connected

    service = MessengerService(ServerConfig(), str(db_path), dict(ENDPOINTS), reactor, directory=ConnectingDirectory())
    service.startService()
    try:
        client = yield connect(service.listeners["dispatch"].port.getHost().port)
        client.send("VER 1 MSNP8 CVR0")
        yield client.expect_silence(0.2)
        connected.callback(None)
        yield client.expect_line("VER 1 MSNP8")
        yield client.disconnect()
    finally:
        yield service.stopService()
