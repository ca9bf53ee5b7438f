"""
The server under test as a cluster on this machine: a throwaway Redis and
PostgreSQL (the test suite's engines), one dispatch process, N notification
processes and one switchboard process, each its own C{twistd -n msnp} with
--redis, --postgres, --node-id and --roles.  The accounts are made in
SQLite by the population module, then moved with C{msnp-admin migrate}.

Offers what the scenarios use of L{bench.server.ServerProcess}: the
dispatch address, C{stats} (CPU and memory summed over the msnp
processes), and, beside it, C{redis_stats} and C{redis_commands()} for the
cost of going through Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from bench import population
from bench.server import LOAD_OPTIONS, ProcessStats, available_options, free_port, raise_nofile_limit

# The engines are started by the same code the tests use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from engines import PostgresCluster, RedisServer  # noqa: E402


class SummedStats:
    """
    L{ProcessStats} over several processes: their sums.
    """

    def __init__(self, pids: list[int]):
        self.parts = [ProcessStats(pid) for pid in pids]

    def cpu_seconds(self) -> float:
        return sum(part.cpu_seconds() for part in self.parts)

    def main_thread_cpu_seconds(self) -> float:
        return sum(part.main_thread_cpu_seconds() for part in self.parts)

    def rss_bytes(self) -> int:
        return sum(part.rss_bytes() for part in self.parts)

    def threads(self) -> int:
        return sum(part.threads() for part in self.parts)


class ClusterServer:
    """
    Redis, PostgreSQL and msnp processes: 1 dispatch, C{notification_nodes}
    notification, 1 switchboard.  A context manager: everything is stopped
    on the way out, errors included.
    """

    def __init__(self, accounts: int, contacts: int, notification_nodes: int = 2, topology: str = "ring",
                 options: Optional[dict] = None, keep_dir: bool = False):
        self.accounts = accounts
        self.contacts = contacts
        self.topology = topology
        self.nodes = notification_nodes
        self.options = dict(LOAD_OPTIONS, **(options or {}))
        self.keep_dir = keep_dir
        self.directory = Path(tempfile.mkdtemp(prefix="msnp-bench-cluster-"))
        self.redis: Optional[RedisServer] = None
        self.postgres: Optional[PostgresCluster] = None
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.stats: Optional[SummedStats] = None
        self.redis_stats: Optional[ProcessStats] = None
        self.populate_seconds = 0.0

    @property
    def dispatch(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["ds"])

    @property
    def switchboard(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["sb"])

    def notification_ports(self) -> list[int]:
        return [self.ports[f"ns{i}"] for i in range(1, self.nodes + 1)]

    def start(self) -> "ClusterServer":
        self.redis = RedisServer().start()
        self.postgres = PostgresCluster().start()
        conninfo = self.postgres.create_database()
        started = time.perf_counter()
        sqlite = str(self.directory / "msnp.sqlite")
        population.populate(sqlite, self.accounts, self.contacts, self.topology)
        admin = str(Path(sys.executable).with_name("msnp-admin"))
        subprocess.run([admin, "migrate", "--from", sqlite, "--postgres", conninfo], check=True,
                       stdout=subprocess.DEVNULL)
        self.populate_seconds = time.perf_counter() - started
        for name in ["ds", "sb", *(f"ns{i}" for i in range(1, self.nodes + 1))]:
            self.ports[name] = free_port()
        common = ["--redis", self.redis.url, "--postgres", conninfo, "--admin", "none", *available_options(self.options)]
        sb_endpoint = f"tcp:{self.ports['sb']}:interface=127.0.0.1"
        self._launch("sb", ["--roles", "switchboard", "--node-id", "sb", "--switchboard", sb_endpoint, *common])
        for i in range(1, self.nodes + 1):
            name = f"ns{i}"
            self._launch(name, ["--roles", "notification", "--node-id", name, "--switchboard", sb_endpoint,
                                "--notification", f"tcp:{self.ports[name]}:interface=127.0.0.1", *common])
        self._launch("ds", ["--roles", "dispatch", "--node-id", "ds",
                            "--dispatch", f"tcp:{self.ports['ds']}:interface=127.0.0.1", *common])
        self._wait_ready()
        self.stats = SummedStats([process.pid for process in self.processes.values()])
        self.redis_stats = ProcessStats(self.redis.pid())
        self._cpu_at_start = (time.monotonic(), self.cpu_by_process())
        return self

    def cpu_by_process(self) -> dict[str, float]:
        """
        CPU seconds so far of each msnp process, Redis, and PostgreSQL (its
        server and every backend).
        """
        cpu = {name: ProcessStats(process.pid).cpu_seconds() for name, process in self.processes.items()}
        cpu["redis"] = self.redis_stats.cpu_seconds()
        cpu["postgres"] = _tree_cpu_seconds(self.postgres.pid())
        return cpu

    def cpu_shares(self) -> str:
        """
        How the cores were shared since the start: each process's CPU time
        as a percentage of one core over the wall time.
        """
        started, before = self._cpu_at_start
        wall = time.monotonic() - started
        now = self.cpu_by_process()
        parts = [f"{name} {100 * (now[name] - before.get(name, 0.0)) / wall:.0f}%" for name in now]
        return f"cluster CPU over {wall:.0f} s (% of one core): " + ", ".join(parts)

    def _launch(self, name: str, arguments: list[str]) -> None:
        twistd = str(Path(sys.executable).with_name("twistd"))
        log = self.directory / f"{name}.log"
        self.processes[name] = subprocess.Popen(
            [twistd, "-n", "--pidfile=", f"--logfile={log}", "msnp", *arguments],
            cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.directory / f"{name}.stderr", "wb"), preexec_fn=raise_nofile_limit,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while True:
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited at start:\n{self.log_tail(name)}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not listen:\n{self.log_tail(name)}")
                    time.sleep(0.05)
        # Every notification node holds its lease: the dispatch server
        # places logins over all of them.
        # and the switchboard node, to which they refer XFR SB.
        for name in [*(f"ns{i}" for i in range(1, self.nodes + 1)), "sb"]:
            while self.redis.command("EXISTS", f"node:{name}") != "1":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} holds no lease:\n{self.log_tail(name)}")
                time.sleep(0.05)

    def redis_commands(self) -> int:
        """
        Commands Redis has processed since it started.
        """
        cli = shutil.which("redis-cli")
        if cli is None:
            return 0
        info = subprocess.run([cli, "-p", str(self.redis.port), "INFO", "stats"], capture_output=True, text=True).stdout
        for line in info.splitlines():
            if line.startswith("total_commands_processed:"):
                return int(line.split(":")[1])
        return 0

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.directory / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.processes and getattr(self, "_cpu_at_start", None) is not None:
            try:
                print(self.cpu_shares(), file=sys.stderr)
            except OSError:
                pass
        processes, self.processes = self.processes, {}
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.redis is not None:
            self.redis.destroy()
        if self.postgres is not None:
            self.postgres.destroy()
        if not self.keep_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "ClusterServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _tree_cpu_seconds(pid: Optional[int]) -> float:
    """
    CPU seconds of process C{pid} and its children (PostgreSQL's
    backends), from /proc.
    """
    if pid is None:
        return 0.0
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_for(options, accounts: int, contacts: int, **single_process):
    """
    The server a scenario runs against: with C{--cluster N}, a cluster of N
    notification nodes; otherwise the single process of
    L{bench.server.ServerProcess} (with C{single_process}'s arguments).
    """
    nodes = getattr(options, "cluster", 0)
    if nodes:
        return ClusterServer(accounts, contacts, nodes, topology=single_process.get("topology", "ring"))
    from bench.server import ServerProcess

    return ServerProcess(accounts, contacts, **single_process)
