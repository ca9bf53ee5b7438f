"""
The service as an operator runs it: `msnp-admin` creates an account,
`twistd -n msnp` serves it, a client logs in through the dispatch server,
and the process stops cleanly.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LineClient:
    """
    A blocking MSNP client: send a line, read the next one.
    """

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def read_line(self) -> str:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError(self.buffer)
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode()

    def at_eof(self) -> bool:
        return self.buffer == b"" and self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def wait_for_port(port: int, process, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"twistd exited: {process.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("twistd did not start listening")


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "twistd")), reason="twistd not installed next to python")
def test_twistd_serves_an_admin_created_account(tmp_path):
    """
    twistd -n msnp with --dispatch/--notification/--switchboard/--db/
    --public-host: the dispatch server refers an MSNP7 client to the
    notification server named by --public-host, the account made with
    msnp-admin logs in there, and SIGTERM stops the server in order.
    """
    db = str(tmp_path / "msnp.sqlite")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    added = subprocess.run(
        [os.path.join(BIN, "msnp-admin"), "--db", db, "--create", "user", "add", "zoe@example.com", "--password", "pw-zoe", "--name", "Zoe"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    ds, ns, sb = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            os.path.join(BIN, "twistd"),
            "-n",
            "--pidfile=",
            "--logfile=" + str(tmp_path / "twistd.log"),
            "msnp",
            "--dispatch", f"tcp:{ds}:interface=127.0.0.1",
            "--notification", f"tcp:{ns}:interface=127.0.0.1",
            "--switchboard", f"tcp:{sb}:interface=127.0.0.1",
            "--public-host", "127.0.0.1",
            "--db", db,
            "--admin", "none",
        ],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(ds, process)
        client = LineClient(ds)
        client.send("VER 1 MSNP7 MSNP6 CVR0")
        assert client.read_line() == "VER 1 MSNP7"
        client.send("USR 2 MD5 I zoe@example.com")
        assert client.read_line() == f"XFR 2 NS 127.0.0.1:{ns} 0 127.0.0.1:{ds}"
        assert client.at_eof()
        client.close()

        client = LineClient(ns)
        client.send("VER 3 MSNP7")
        assert client.read_line() == "VER 3 MSNP7"
        client.send("USR 4 MD5 I zoe@example.com")
        challenge = client.read_line().split(" ")[4]
        client.send("USR 5 MD5 S " + hashlib.md5((challenge + "pw-zoe").encode()).hexdigest())
        assert client.read_line() == "USR 5 OK zoe@example.com Zoe 1"
        assert client.read_line().startswith("MSG Hotmail Hotmail ")
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    # twistd re-raises the signal that stopped it once shutdown is done.
    assert process.returncode in (0, -signal.SIGTERM)
    log = (tmp_path / "twistd.log").read_text()
    assert "zoe@example.com logged in" in log
    assert "msnp stopped" in log


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "twistd")), reason="twistd not installed next to python")
def test_twistd_help_documents_the_options(tmp_path):
    """
    twistd msnp --help lists every option an operator needs, with its
    default.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run(
        [os.path.join(BIN, "twistd"), "msnp", "--help"], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60
    )
    assert result.returncode == 0, result.stderr
    operator_options = (
        "--dispatch", "--notification", "--switchboard", "--public-host", "--db", "--passport", "--no-md5",
        "--ticket-lifetime", "--challenge-deadline", "--cookie-lifetime", "--sb-auth-timeout", "--sb-idle-timeout",
        "--notification-lease", "--dispatch-lease", "--max-line-length", "--max-connections-per-address",
        "--command-rate", "--max-fl", "--login-delay-max", "--shutdown-grace",
    )
    for option in operator_options:
        assert option + "=" in result.stdout or option + " " in result.stdout, option
    assert "tcp:1863:interface=127.0.0.1" in result.stdout and "msnp.sqlite" in result.stdout


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "twistd")), reason="twistd not installed next to python")
def test_twistd_refuses_a_missing_certificate_without_a_traceback(tmp_path):
    """
    A --passport endpoint naming a key file that is not there stops twistd
    at once with one line saying so, not a traceback.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run(
        [
            os.path.join(BIN, "twistd"), "-n", "--pidfile=", "msnp",
            "--db", str(tmp_path / "msnp.sqlite"),
            "--passport", "ssl:0:interface=127.0.0.1:privateKey=nokey.pem:certKey=nocert.pem",
            "--dispatch", "tcp:0:interface=127.0.0.1", "--notification", "tcp:0:interface=127.0.0.1",
            "--switchboard", "tcp:0:interface=127.0.0.1", "--admin", "none",
        ],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60,
    )
    assert result.returncode != 0
    assert "twistd msnp: --passport: no such file: nokey.pem" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
