"""
Real SIP user agents from Debian for the interop tests: installed when
missing (as root, with apt-get), run headless as child processes without
blocking the reactor the server under test runs on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import Optional

import pytest
from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol

# Program → the Debian package that has it.
PACKAGES = {"sipp": "sip-tester", "baresip": "baresip-core", "linphonec": "linphone-cli"}


def ensure_installed(program: str) -> str:
    """
    The path of C{program}, installing its package first when it is
    missing and this is a Debian machine we may install on; skips the
    test when it cannot be had.
    """
    path = shutil.which(program)
    if path is not None:
        return path
    package = PACKAGES[program]
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip(f"{program} ({package}) is not installed and cannot be installed here")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = [apt, "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run([apt, "update", "-qq"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} ({package}) could not be installed")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_sip_port() -> int:
    """
    A port free for UDP and TCP, with the next one free too: user agents
    listen on all three transports, TLS on the port after.
    """
    for _ in range(100):
        port = free_udp_port()
        if port < 65535 and _free(port) and _free(port + 1):
            return port
    raise RuntimeError("no free pair of ports")


class _Collect(ProcessProtocol):
    def __init__(self, log_path: Optional[str]):
        self.output = bytearray()
        self.ended = defer.Deferred()
        self._log = open(log_path, "ab") if log_path else None

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if self._log is not None:
            self._log.write(data)
            self._log.flush()

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        if self._log is not None:
            self._log.close()
        self.ended.callback(reason.value.exitCode)


class Child:
    """
    One running user agent: its output so far, its exit, and a way to stop
    it that leaves nothing behind.
    """

    def __init__(self, argv: list[str], cwd: str, env: Optional[dict] = None, log_path: Optional[str] = None):
        self.argv = argv
        self.protocol = _Collect(log_path)
        self.process = reactor.spawnProcess(self.protocol, argv[0], argv, env=env or dict(os.environ), path=cwd)
        self.exit_code: Optional[int] = None
        self.protocol.ended.addCallback(self._ended)

    def _ended(self, code):
        self.exit_code = code
        return code

    def send_line(self, text: str) -> None:
        """
        A line on the agent's standard input (its command prompt).
        """
        self.process.write(text.encode("utf-8") + b"\n")

    @property
    def output(self) -> str:
        return self.protocol.output.decode("utf-8", "replace")

    @property
    def running(self) -> bool:
        return self.exit_code is None and not self.protocol.ended.called

    def wait(self, timeout: float = 60.0) -> defer.Deferred:
        """
        Fires with the exit code; kills the process after C{timeout}.
        """
        if not self.running:
            return defer.succeed(self.exit_code)
        timer = reactor.callLater(timeout, self.kill)
        d = defer.Deferred()

        def ended(code):
            if timer.active():
                timer.cancel()
            d.callback(code)
            return code

        self.protocol.ended.addCallback(ended)
        return d

    def kill(self) -> None:
        if self.running:
            try:
                self.process.signalProcess("KILL")
            except OSError:
                pass

    @defer.inlineCallbacks
    def stop(self, signal: str = "TERM", grace: float = 5.0):
        if self.running:
            try:
                self.process.signalProcess(signal)
            except OSError:
                pass
        code = yield self.wait(grace)
        return code

    @defer.inlineCallbacks
    def wait_for_output(self, text: str, timeout: float = 15.0):
        """
        Until C{text} appears in the output (fails after C{timeout}).
        """
        deadline = reactor.seconds() + timeout
        while text not in self.output:
            if not self.running and text not in self.output:
                raise AssertionError(f"{self.argv[0]} ended without {text!r}:\n{self.output[-3000:]}")
            if reactor.seconds() > deadline:
                raise AssertionError(f"{self.argv[0]} did not say {text!r}:\n{self.output[-3000:]}")
            d = defer.Deferred()
            reactor.callLater(0.05, d.callback, None)
            yield d
