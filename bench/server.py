"""
The server under test: C{twistd -n msnp} in a subprocess on 127.0.0.1 with
free ports and a fresh database, and what /proc says about it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from bench import population

# Enough descriptors for the capacity scenario's clients plus the server's own.
SERVER_NOFILE = 65536
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# All load comes from loopback, and one generated client sends far faster than
# a person types: the per-address connection limit and the per-connection
# command rate limit (where this server has them) are lifted so that they
# measure the server's work rather than refuse it.  Everything else runs
# with the server's defaults.
LOAD_OPTIONS = {
    "max-connections-per-address": "0",
    "command-rate": "1000000000",
    "command-burst": "1000000000",
}


def available_options(wanted: dict) -> list[str]:
    """
    C{wanted} as C{twistd msnp} arguments, leaving out options this server
    does not have.
    """
    from msnp.tap import Options

    known = {parameter[0] for parameter in Options.optParameters}
    arguments = []
    for option, value in wanted.items():
        if option in known:
            arguments += [f"--{option}", str(value)]
    return arguments


def server_default_backlog() -> Optional[str]:
    """
    The listen backlog the server's own default endpoints ask for, so the
    benchmark's endpoints (which name their ports) keep it.
    """
    from msnp import tap

    return getattr(tap, "LISTEN_BACKLOG", None)


def make_certificate(directory: Path) -> tuple[str, str]:
    """
    A throwaway self-signed certificate for 127.0.0.1 in C{directory};
    returns the key and certificate paths.
    """
    from msnp.devcert import write_self_signed

    key_path, certificate_path, _ = write_self_signed(directory, key_name="passport-key.pem", cert_name="passport-cert.pem")
    return key_path, certificate_path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def raise_nofile_limit(wanted: int = SERVER_NOFILE) -> int:
    """
    Raise this process's open-file limit as far as allowed; return it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds(stat_path: str) -> float:
    with open(stat_path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ProcessStats:
    """
    CPU time and resident memory of one process, read from /proc.
    """

    def __init__(self, pid: int):
        self.pid = pid

    def cpu_seconds(self) -> float:
        return _cpu_seconds(f"/proc/{self.pid}/stat")

    def main_thread_cpu_seconds(self) -> float:
        """
        CPU time of the process's main thread alone: for twistd, the
        reactor, which every connection shares.
        """
        return _cpu_seconds(f"/proc/{self.pid}/task/{self.pid}/stat")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def threads(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return 0


def listen_overflows() -> int:
    """
    The kernel's count of connections dropped because a listen queue was
    full (TcpExt ListenOverflows), for this network namespace.
    """
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


class ServerProcess:
    """
    A populated database and a running C{twistd -n msnp} using it.  Use as
    a context manager: the server is killed on the way out, errors included.
    """

    def __init__(
        self,
        accounts: int,
        contacts: int,
        topology: str = "ring",
        backlog: Optional[int] = None,
        keep_dir: bool = False,
        options: Optional[dict] = None,
        passport: bool = False,
        logger: Optional[str] = None,
        arguments: tuple = (),
        prepare=None,
    ):
        self.accounts = accounts
        self.contacts = contacts
        self.topology = topology
        self.backlog = backlog
        self.keep_dir = keep_dir
        self.options = dict(LOAD_OPTIONS, **(options or {}))
        # More twistd msnp arguments as given (repeatable options such as --sip-peer).
        self.arguments = list(arguments)
        # Called with the database path once it is populated, before start.
        self.prepare = prepare
        self.directory = Path(tempfile.mkdtemp(prefix="msnp-bench-"))
        self.db_path = str(self.directory / "msnp.sqlite")
        self.log_path = self.directory / "twistd.log"
        # A twistd --logger observer factory writing to standard output
        # (e.g. msnp.logs.observer); None keeps twistd's own file observer.
        self.logger = logger
        roles = ("dispatch", "notification", "switchboard") + (("passport",) if passport else ())
        self.ports = {role: free_port() for role in roles}
        # The throwaway certificate the Passport endpoint serves, for the
        # generator to trust.
        self.certificate_path: Optional[str] = None
        self.process: Optional[subprocess.Popen] = None
        self.stats: Optional[ProcessStats] = None
        self.populate_seconds = 0.0

    @property
    def dispatch(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["dispatch"])

    @property
    def notification(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["notification"])

    @property
    def switchboard(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["switchboard"])

    @property
    def passport(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["passport"])

    def _endpoint(self, role: str) -> str:
        description = f"tcp:{self.ports[role]}:interface=127.0.0.1"
        backlog = self.backlog if self.backlog else server_default_backlog()
        if backlog:
            description += f":backlog={backlog}"
        return description

    def start(self) -> "ServerProcess":
        started = time.perf_counter()
        population.populate(self.db_path, self.accounts, self.contacts, self.topology)
        if self.prepare is not None:
            self.prepare(self.db_path)
        self.populate_seconds = time.perf_counter() - started
        twistd = str(Path(sys.executable).with_name("twistd"))
        command = [
            twistd if os.path.exists(twistd) else shutil.which("twistd") or "twistd",
            "-n",
            "--pidfile=",
            *([f"--logger={self.logger}"] if self.logger else [f"--logfile={self.log_path}"]),
            "msnp",
            "--dispatch",
            self._endpoint("dispatch"),
            "--notification",
            self._endpoint("notification"),
            "--switchboard",
            self._endpoint("switchboard"),
            "--db",
            self.db_path,
            # The admin interface stays off: its port is not the benchmark's.
            *available_options({"admin": "none", **self.options}),
            *self.arguments,
        ]
        if "passport" in self.ports:
            key_path, self.certificate_path = make_certificate(self.directory)
            command += [
                "--passport",
                f"ssl:{self.ports['passport']}:interface=127.0.0.1:privateKey={key_path}:certKey={self.certificate_path}",
            ]
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=open(self.log_path, "wb") if self.logger else subprocess.DEVNULL,
            stderr=open(self.directory / "stderr.log", "wb"),
            preexec_fn=raise_nofile_limit,
            start_new_session=True,
        )
        self.stats = ProcessStats(self.process.pid)
        self._wait_listening(tuple(role for role in self.ports if role != "switchboard"))
        return self

    def _wait_listening(self, roles, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for role in roles:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
                try:
                    socket.create_connection(("127.0.0.1", self.ports[role]), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not listen on its {role} port:\n{self.log_tail()}")
                    time.sleep(0.05)

    def listens_on(self, role: str) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.ports[role]), timeout=1).close()
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.log_path, self.directory / "stderr.log"):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if not self.keep_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "ServerProcess":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class FloorProcess:
    """
    The bare relay of L{bench.floor} in its own process.
    """

    def __init__(self):
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None
        self.stats: Optional[ProcessStats] = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> "FloorProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--port", str(self.port)],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_nofile_limit,
            start_new_session=True,
        )
        self.stats = ProcessStats(self.process.pid)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("the floor relay exited at start")
            try:
                socket.create_connection(self.address, timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the floor relay did not listen")
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> "FloorProcess":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
