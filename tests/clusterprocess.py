"""
Real C{twistd -n msnp} processes forming a cluster on the test run's own
Redis and PostgreSQL: a dispatch server and notification nodes, each in a
child process of its own (so it can be killed, frozen and thawed), with
helpers to log in through the dispatch server.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from twisted.internet import defer
from twisted.internet.error import ConnectError

from msnclient import connect, md5_answer
from serverprocess import TWISTD, free_ports, sleep

# Short leases keep the tests short; the default is 10 s.
TEST_LEASE = 3.0


class ClusterProcess:
    """
    One process of the cluster: C{roles} on ports of its own.
    """

    def __init__(self, directory, name: str, roles: str, redis_url: str, postgres: str, *extra: str):
        self.name = name
        self.directory = os.path.join(str(directory), name)
        os.makedirs(self.directory, exist_ok=True)
        self.roles = roles
        self.dispatch_port, self.notification_port, self.switchboard_port = free_ports(3)
        self.log_path = os.path.join(self.directory, "server.log")
        endpoint = "tcp:{}:interface=127.0.0.1"
        self.args = [
            TWISTD, "-n", "--pidfile=", f"--logfile={self.log_path}", "msnp",
            "--dispatch", endpoint.format(self.dispatch_port),
            "--notification", endpoint.format(self.notification_port),
            "--switchboard", endpoint.format(self.switchboard_port),
            "--roles", roles, "--node-id", name, "--redis", redis_url, "--postgres", postgres,
            "--node-lease", str(TEST_LEASE), "--admin", "none", *extra,
        ]
        self.process = None

    @property
    def port(self) -> int:
        """
        The port of its first role: dispatch, notification, switchboard.
        """
        if self.roles == "dispatch":
            return self.dispatch_port
        return self.notification_port if "notification" in self.roles else self.switchboard_port

    def start(self, redis_server=None) -> defer.Deferred:
        self.process = subprocess.Popen(
            self.args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        return self._wait_ready(redis_server)

    @defer.inlineCallbacks
    def _wait_ready(self, redis_server):
        """
        Listening, and (a notification or switchboard node) holding its
        lease.
        """
        for _ in range(600):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.log()}")
            try:
                client = yield connect(self.port, "readiness")
            except ConnectError:
                yield sleep(0.05)
                continue
            yield client.disconnect()
            break
        else:
            raise AssertionError(f"{self.name} did not start listening")
        if redis_server is not None and self.roles != "dispatch":
            yield self.wait_lease(redis_server)

    @defer.inlineCallbacks
    def wait_lease(self, redis_server, timeout: float = 30.0):
        for _ in range(int(timeout / 0.05)):
            if redis_server.command("EXISTS", f"node:{self.name}") == "1":
                return
            yield sleep(0.05)
        raise AssertionError(f"{self.name} holds no lease: {self.log()}")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    @defer.inlineCallbacks
    def wait_exit(self, timeout: float = 30.0):
        for _ in range(int(timeout / 0.05)):
            if self.process.poll() is not None:
                return self.process.returncode
            yield sleep(0.05)
        raise AssertionError(f"{self.name} did not exit")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # A frozen process must be thawed to die of SIGTERM; SIGKILL
            # needs no thaw.
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@defer.inlineCallbacks
def referral(dispatch_port: int, handle: str, dialect: str = "MSNP7"):
    """
    Ask the dispatch server where C{handle} logs in: the port of the
    notification server it refers to, or the error code it answers.
    """
    client = yield connect(dispatch_port, "dispatch")
    try:
        client.send(f"VER 1 {dialect} CVR0")
        yield client.expect_line(f"VER 1 {dialect}")
        client.send(f"USR 2 MD5 I {handle}")
        line = yield client.next(timeout=30)
        match = re.fullmatch(r"XFR 2 NS 127\.0\.0\.1:(\d+) 0 \S+", line.text)
        if match:
            return int(match.group(1))
        error = re.fullmatch(r"(\d{3}) 2", line.text)
        if error:
            return error.group(1)
        raise AssertionError(f"dispatch answered {line.text!r}")
    finally:
        yield client.disconnect()


@defer.inlineCallbacks
def login_at(port: int, handle: str, password: str, dialect: str = "MSNP7"):
    """
    Log in at a notification server; returns the client.
    """
    client = yield connect(port, handle.split("@")[0])
    client.send(f"VER 1 {dialect} CVR0")
    yield client.expect_line(f"VER 1 {dialect}")
    client.send(f"USR 3 MD5 I {handle}")
    match = yield client.expect(r"USR 3 MD5 S (\S+)", timeout=30)
    client.send(f"USR 4 MD5 S {md5_answer(match.group(1), password)}")
    yield client.expect(rf"USR 4 OK {re.escape(handle)} .*", timeout=30)
    profile = yield client.next()
    assert profile.name == "MSG", profile
    return client


@defer.inlineCallbacks
def login_through(dispatch_port: int, handle: str, password: str, dialect: str = "MSNP7"):
    """
    Log in as a client does: referred by the dispatch server; returns the
    client and the notification port it was referred to.
    """
    port = yield referral(dispatch_port, handle, dialect)
    assert isinstance(port, int), f"dispatch refused {handle}: {port}"
    client = yield login_at(port, handle, password, dialect)
    return client, port
