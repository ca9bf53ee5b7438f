"""
Throwaway database engines for the tests: a PostgreSQL cluster made with
C{initdb} and run with C{pg_ctl}, and a C{redis-server}, both from the Debian
packages, on a temporary directory, listening on 127.0.0.1 only at a port
of their own, and stopped (by process id) when done.

PostgreSQL refuses to run as root: as root its programs run as the
C{postgres} user the Debian package creates (through C{runuser}); as anyone
else they run as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

# The Debian packages keep the server programs in a versioned directory
# that is not on PATH.
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_USER = "postgres"
DATABASE_USER = "msnp"


class EngineMissing(Exception):
    """
    The engine's programs are not installed.
    """


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that nothing uses right now, below the range
    the kernel hands out to outgoing connections: an engine stopped and
    started again by a test must get its port back, and a client socket
    of some other test could otherwise be holding it by then.
    """
    low, high = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            ephemeral_low = int(ports.read().split()[0])
        high = min(high, ephemeral_low)
        low = min(low, high - 1000)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child of ours that has exited but not been reaped is gone too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)


def postgres_bindir() -> str:
    def version(path):
        return [int(part) for part in re.findall(r"\d+", os.path.basename(os.path.dirname(path)))]

    found = sorted((d for d in glob.glob(POSTGRES_BIN_GLOB) if os.path.exists(os.path.join(d, "initdb"))), key=version)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise EngineMissing("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql")


class PostgresCluster:
    """
    A PostgreSQL cluster of its own in a temporary directory.
    """

    def __init__(self):
        self.bindir = postgres_bindir()
        self.port: Optional[int] = None
        self.directory: Optional[str] = None
        self._runas: list[str] = []
        self._owner: Optional[pwd.struct_passwd] = None
        self._databases = 0

    @property
    def data(self) -> str:
        return os.path.join(self.directory, "data")

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={DATABASE_USER} dbname={dbname}"

    def _run(self, *argv: str) -> None:
        command = [*self._runas, os.path.join(self.bindir, argv[0]), *argv[1:]]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.directory)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout.strip()}")

    def start(self) -> "PostgresCluster":
        """
        Make the cluster (the first time) and start its server.
        """
        if self.directory is None:
            self._make()
        # The port is probed free, but another process may take it first;
        # a restart keeps its port, which the tests' clients hold.
        restarting = self.port is not None
        for attempt in range(5):
            if self.port is None or (attempt and not restarting):
                self.port = free_port()
            elif attempt:
                time.sleep(1)
            options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
            try:
                self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.directory, "server.log"),
                          "-o", options, "-w", "-t", "60", "start")
                return self
            except RuntimeError:
                if attempt == 4 or self.pid() is not None:
                    raise

    def _make(self) -> None:
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(POSTGRES_USER)
            except KeyError:
                raise EngineMissing(f"running as root needs the {POSTGRES_USER} user of the postgresql package")
            self._runas = ["runuser", "-u", POSTGRES_USER, "--"]
        self.directory = tempfile.mkdtemp(prefix="msnp-pg-")
        if self._owner is not None:
            os.chown(self.directory, self._owner.pw_uid, self._owner.pw_gid)
        try:
            self._run("initdb", "-D", self.data, "-U", DATABASE_USER, "--auth=trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            raise

    def pid(self) -> Optional[int]:
        """
        The server's process id while it runs.
        """
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as pidfile:
                pid = int(pidfile.readline())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def stop(self) -> None:
        """
        Stop the server (the cluster stays, to be started again).
        """
        pid = self.pid()
        if pid is None:
            return
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")
        except RuntimeError:
            pass
        if not _wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    def destroy(self) -> None:
        """
        Stop the server and remove the cluster.
        """
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def create_database(self, template: Optional[str] = None) -> str:
        """
        A new database, empty or a copy of the one C{template} (a
        connection string) names; returns its connection string.
        """
        import psycopg

        self._databases += 1
        name = f"msnp_test_{self._databases}"
        copy = f" TEMPLATE {psycopg.conninfo.conninfo_to_dict(template)['dbname']}" if template else ""
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}{copy}")
        return self.conninfo(name)

    def drop_database(self, conninfo: str) -> None:
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class RedisServer:
    """
    A redis-server of its own, keeping nothing on disk; with C{replica_of}
    (a RedisServer) a replica of that one.
    """

    def __init__(self, replica_of: Optional["RedisServer"] = None):
        self.program = shutil.which("redis-server")
        if self.program is None:
            raise EngineMissing("redis-server is not installed: apt-get install redis-server")
        self.port: Optional[int] = None
        self.directory: Optional[str] = None
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def _pidfile(self) -> str:
        return os.path.join(self.directory, "redis.pid")

    def start(self) -> "RedisServer":
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="msnp-redis-")
        restarting = self.port is not None
        for attempt in range(5):
            # A restart keeps its port: clients of the test hold its URL.
            if self.port is None or (attempt and not restarting):
                self.port = free_port()
            elif attempt:
                time.sleep(1)
            # Not daemonized: the server stays our child, so it is reaped
            # and its process id cannot be taken over before it is stopped.
            self._process = subprocess.Popen(
                [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--pidfile", self._pidfile, "--logfile", os.path.join(self.directory, "redis.log"),
                 "--dir", self.directory, *self._replication()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return self
            self._process.kill()
            self._process.wait()
        raise RuntimeError(f"redis-server did not start: see {self.directory}/redis.log")

    def _replication(self) -> list[str]:
        if self.replica_of is None:
            return []
        return ["--replicaof", "127.0.0.1", str(self.replica_of.port)]

    def info(self, section: str) -> dict:
        """
        The fields of one section of C{INFO}.
        """
        request = b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode())
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            reply = b""
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                reply += chunk
                header, _, body = reply.partition(b"\r\n")
                if header.startswith(b"$") and len(body) >= int(header[1:]):
                    break
        fields = {}
        for line in reply.decode().splitlines()[1:]:
            key, colon, value = line.partition(":")
            if colon:
                fields[key] = value.strip()
        return fields

    def _wait_ready(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                if self.command("PING") == "PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def command(self, *words: str) -> str:
        """
        Send one command; returns the simple-string or integer reply.
        """
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply[1:].decode().strip()

    def pid(self) -> Optional[int]:
        process = getattr(self, "_process", None)
        if process is None or process.poll() is not None:
            return None
        return process.pid

    def stop(self) -> None:
        process = getattr(self, "_process", None)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def destroy(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class RedisSentinel:
    """
    A Redis Sentinel of its own (C{redis-server CONFIG --sentinel}, from
    the redis-server package) watching C{primary} as service C{service},
    with a quorum of one: C{SENTINEL FAILOVER} promotes a replica at once.
    """

    def __init__(self, primary: RedisServer, service: str = "mymaster"):
        self.program = shutil.which("redis-server")
        if self.program is None:
            raise EngineMissing("redis-server is not installed: apt-get install redis-server")
        self.primary = primary
        self.service = service
        self.port: Optional[int] = None
        self.directory: Optional[str] = None
        self._process: Optional[subprocess.Popen] = None

    def url(self, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/{db}"

    def start(self) -> "RedisSentinel":
        self.directory = tempfile.mkdtemp(prefix="msnp-sentinel-")
        for _ in range(5):
            self.port = free_port()
            # Sentinel rewrites its configuration file: one of its own.
            config = os.path.join(self.directory, "sentinel.conf")
            with open(config, "w") as f:
                f.write(
                    f"port {self.port}\nbind 127.0.0.1\ndaemonize no\n"
                    f"logfile {os.path.join(self.directory, 'sentinel.log')}\ndir {self.directory}\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
                    f"sentinel down-after-milliseconds {self.service} 2000\n"
                    f"sentinel failover-timeout {self.service} 10000\n"
                )
            self._process = subprocess.Popen(
                [self.program, config, "--sentinel"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    if self.primary_port() == self.primary.port:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"redis sentinel did not start: see {self.directory}/sentinel.log")

    def command(self, *words: str) -> bytes:
        """
        Send one command; returns the raw reply.
        """
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            reply = b""
            while _resp_end(reply, 0) is None:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def primary_port(self) -> Optional[int]:
        """
        The port of the primary the Sentinel names now.
        """
        lines = self.command("SENTINEL", "get-master-addr-by-name", self.service).split(b"\r\n")
        return int(lines[4]) if len(lines) > 4 and lines[4].isdigit() else None

    def knows_replica(self, replica: RedisServer) -> bool:
        """
        Whether the Sentinel lists C{replica} as a replica in good health
        (only then will it promote it).
        """
        reply = self.command("SENTINEL", "replicas", self.service).decode(errors="replace")
        if str(replica.port) not in reply:
            return False
        return "s_down" not in reply and "disconnected" not in reply

    def failover(self, replica: RedisServer, timeout: float = 60.0) -> None:
        """
        Force a failover to C{replica} and wait until the Sentinel names it.
        """
        deadline = time.monotonic() + timeout
        while not self.knows_replica(replica):
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinel never saw the replica in good health")
            time.sleep(0.1)
        while True:
            reply = self.command("SENTINEL", "failover", self.service)
            if reply.startswith(b"+OK"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"SENTINEL FAILOVER refused: {reply!r}")
            time.sleep(0.2)
        while self.primary_port() != replica.port:
            if time.monotonic() > deadline:
                raise RuntimeError("the failover did not complete")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def destroy(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _resp_end(data: bytes, start: int) -> Optional[int]:
    """
    Where the RESP value at C{start} of C{data} ends, or None while it is
    incomplete.
    """
    line_end = data.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind, header, after = data[start:start + 1], data[start + 1:line_end], line_end + 2
    if kind in (b"+", b"-", b":"):
        return after
    if kind == b"$":
        length = int(header)
        if length < 0:
            return after
        return after + length + 2 if len(data) >= after + length + 2 else None
    if kind == b"*":
        position = after
        for _ in range(max(int(header), 0)):
            position = _resp_end(data, position)
            if position is None:
                return None
        return position
    raise ValueError(f"not a RESP reply: {data[start:start + 20]!r}")
