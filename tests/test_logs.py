"""
msnp.logs: the lean observer writes twistd's line shape, tracebacks
included, and formats the time once per second.
"""

import io
import os
import socket
import subprocess
import sys
import time

from hypothesis import given, strategies as st
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from msnp.logs import TextLineObserver

BIN = os.path.dirname(sys.executable)


def event(when: float, **fields) -> dict:
    base = {"log_time": when, "log_level": LogLevel.info, "log_namespace": "msnp.msn.notification"}
    base.update(fields)
    return base


def test_lines_have_twistds_shape():
    stream = io.StringIO()
    observe = TextLineObserver(stream)
    when = 1_800_000_000.25
    observe(event(when, log_format="{handle} logged in with {dialect}", handle="alice@example.com", dialect="MSNP7"))
    observe(event(when + 0.5, log_format="{role} connection from {peer}", role="dispatch", peer="127.0.0.1:5000", log_system="-"))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))
    assert stream.getvalue().splitlines() == [
        f"{stamp} [msnp.msn.notification#info] alice@example.com logged in with MSNP7",
        f"{stamp} [-] dispatch connection from 127.0.0.1:5000",
    ]


def test_the_timestamp_follows_the_clock_across_seconds():
    stream = io.StringIO()
    observe = TextLineObserver(stream)
    for when in (1_800_000_000.9, 1_800_000_001.1, 1_800_000_000.5):
        observe(event(when, log_format="tick"))
    stamps = [line.split(" ")[0] for line in stream.getvalue().splitlines()]
    assert stamps == [time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t)) for t in (1_800_000_000, 1_800_000_001, 1_800_000_000)]


def test_a_failure_carries_its_traceback_on_indented_lines():
    stream = io.StringIO()
    observe = TextLineObserver(stream)
    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    observe(event(1_800_000_000.0, log_format="notification failed on {command}", command="ADD", log_failure=failure, log_level=LogLevel.critical))
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("[msnp.msn.notification#critical] notification failed on ADD")
    assert rest and all(line.startswith("\t") for line in rest)
    assert any("ZeroDivisionError" in line for line in rest)


def test_twistd_logs_through_it(tmp_path):
    """
    twistd --logger msnp.logs.observer -n msnp writes its lines, in this
    shape, to standard output.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dispatch_port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            os.path.join(BIN, "twistd"), "--logger", "msnp.logs.observer", "-n", "--pidfile=", "msnp",
            "--db", str(tmp_path / "msnp.sqlite"),
            "--dispatch", f"tcp:{dispatch_port}:interface=127.0.0.1", "--notification", "tcp:0:interface=127.0.0.1",
            "--switchboard", "tcp:0:interface=127.0.0.1", "--admin", "none",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if " listening: " in line:
                break
        # An answer means the reactor runs and SIGTERM gets its orderly stop.
        with socket.create_connection(("127.0.0.1", dispatch_port), timeout=30) as client:
            client.sendall(b"VER 1 MSNP7\r\n")
            assert client.recv(100) == b"VER 1 MSNP7\r\n"
    finally:
        process.terminate()
        rest, errors = process.communicate(timeout=30)
    assert any(
        "[msnp.service#info] msnp " in line and "switchboard on tcp:0:interface=127.0.0.1 (port " in line for line in lines
    ), lines + [errors]
    assert "msnp stopped" in rest
    assert process.returncode == 0


def _run_twistd(tmp_path, *twistd_args, msnp_args=()):
    """
    Start twistd msnp with C{twistd_args}, wait for an answer on its
    dispatch port, stop it; returns its standard output.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dispatch_port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            os.path.join(BIN, "twistd"), *twistd_args, "-n", "--pidfile=", "msnp", *msnp_args,
            "--db", str(tmp_path / "msnp.sqlite"),
            "--dispatch", f"tcp:{dispatch_port}:interface=127.0.0.1", "--notification", "tcp:0:interface=127.0.0.1",
            "--switchboard", "tcp:0:interface=127.0.0.1", "--admin", "none",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", dispatch_port), timeout=30) as client:
                    client.sendall(b"VER 1 MSNP7\r\n")
                    assert client.recv(100) == b"VER 1 MSNP7\r\n"
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
    finally:
        process.terminate()
        out, errors = process.communicate(timeout=30)
    return out + errors


def test_twistd_writes_the_lean_lines_where_it_would_write_its_own(tmp_path):
    """
    Without --logger, twistd msnp logs through the lean observer: to
    standard output with -n, to the --logfile when given; JSON objects
    instead with --log-format json.
    """
    out = _run_twistd(tmp_path)
    assert "[msnp.service#info] msnp " in out and "dispatch connection from 127.0.0.1:" in out, out
    log_file = tmp_path / "server.log"
    out = _run_twistd(tmp_path, f"--logfile={log_file}")
    assert "listening" not in out
    text = log_file.read_text()
    assert "[msnp.service#info] msnp " in text and "dispatch connection from 127.0.0.1:" in text, text
    assert all(line[:4].isdigit() for line in text.splitlines() if line and not line.startswith("\t"))
    json_file = tmp_path / "server.json"
    _run_twistd(tmp_path, f"--logfile={json_file}", msnp_args=("--log-format", "json"))
    import json

    events = [json.loads(line) for line in json_file.read_text().splitlines() if line.strip()]
    assert any(event.get("msnp_event") == "disconnection" and event.get("role") == "dispatch" for event in events)


def test_the_lean_observer_is_twistds_unless_syslog_or_outside_twistd():
    """
    The service sets the application's log observer to the lean one when
    twistd runs it, leaves twistd's syslog alone, and sets nothing when
    made outside twistd.
    """
    from twisted.application.service import Application, Service
    from twisted.logger import ILogObserver

    from msnp.tap import TwistdService

    def observer_for(options):
        application = Application("msnp")
        TwistdService(Service(), "text", options).setServiceParent(application)
        return application.getComponent(ILogObserver, None)

    assert isinstance(observer_for({"nodaemon": True}), TextLineObserver)
    assert observer_for({"nodaemon": True, "syslog": True}) is None
    assert observer_for({}) is None



@given(
    st.lists(st.sampled_from(["{a}", "{b!r}", "{c:>5}", "{a.real}", "{f()}", "{missing}", "{{literal}}", "plain ", "{", "}", "{0}", "{b[0]}"]), max_size=6),
    st.integers(),
    st.text(max_size=8),
)
def test_fast_format_is_twisteds(parts, a, b):
    """
    The lean observer's text is exactly what twisted.logger's formatEvent
    gives, for formats it handles in C and for those it leaves to Twisted.
    """
    from twisted.logger import formatEvent

    from msnp.logs import format_text

    event = {"log_format": "".join(parts), "a": a, "b": b, "c": "x", "f": lambda: "called"}
    assert format_text(event) == formatEvent(event)
