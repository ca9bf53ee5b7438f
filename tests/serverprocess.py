"""
A real C{twistd -n msnp} in a child process, for the tests that signal or
kill it: free ports on 127.0.0.1, its own database and log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectError

from engines import free_port
from msnclient import connect
from msnp.store.sqlite import Database

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def free_ports(count: int) -> list[int]:
    """
    C{count} distinct ports nothing listens on, below the range the kernel
    hands out to outgoing connections: a port picked from that range can be
    taken by some test's client socket before the server process binds it.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def make_accounts(db_path: str, accounts: dict) -> None:
    """
    Create C{handle: (password, name)} accounts with the store's own code.
    """
    db = Database(db_path)
    try:
        for handle, (password, name) in accounts.items():
            db.create_account(handle, password, name)
    finally:
        db.close()


@defer.inlineCallbacks
def sleep(seconds: float):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    yield d


class ServerProcess:
    def __init__(self, directory, db_path: str, *extra_args: str):
        self.directory = str(directory)
        self.db_path = db_path
        self.extra_args = list(extra_args)
        self.dispatch_port, self.notification_port, self.switchboard_port = free_ports(3)
        self.log_path = os.path.join(self.directory, "server.log")
        self.process: subprocess.Popen | None = None

    def start(self) -> defer.Deferred:
        endpoint = "tcp:{}:interface=127.0.0.1"
        args = [
            TWISTD, "-n", "--pidfile=", f"--logfile={self.log_path}", "msnp",
            "--dispatch", endpoint.format(self.dispatch_port),
            "--notification", endpoint.format(self.notification_port),
            "--switchboard", endpoint.format(self.switchboard_port),
            "--db", self.db_path,
            # Tests that want the admin interface give their own --admin.
            "--admin", "none",
        ] + self.extra_args
        self.process = subprocess.Popen(args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return self._wait_listening()

    @defer.inlineCallbacks
    def _wait_listening(self):
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError(f"twistd exited with {self.process.returncode}: {self.log()}")
            try:
                client = yield connect(self.switchboard_port, "readiness")
            except ConnectError:
                yield sleep(0.05)
                continue
            yield client.disconnect()
            return
        raise AssertionError("twistd did not start listening")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    @defer.inlineCallbacks
    def wait_exit(self, timeout: float = 15.0):
        for _ in range(int(timeout / 0.05)):
            if self.process.poll() is not None:
                return self.process.returncode
            yield sleep(0.05)
        self.process.kill()
        self.process.wait()
        raise AssertionError("twistd did not exit")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""
