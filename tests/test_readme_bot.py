"""
The echo bot in README.md, run exactly as written in its own process:
it signs in, and a message sent to it comes back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import defer, protocol, reactor

from msnp.client import Client

README = Path(__file__).parent.parent / "README.md"


def echo_bot_source() -> str:
    """
    The Python block of the README's bot section.
    """
    section = README.read_text(encoding="utf-8").split("## Bots: `msnp.client`", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


class BotProcess(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.signed_in = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"signed in as" in self.output and not self.signed_in.called:
            self.signed_in.callback(None)

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        if not self.signed_in.called:
            self.signed_in.errback(AssertionError(self.output.decode("utf-8", "replace")))
        self.ended.callback(None)


def test_echo_bot_is_short():
    """
    The README promises a complete bot under 30 lines.
    """
    assert len(echo_bot_source().strip().splitlines()) < 30


@pytest_twisted.inlineCallbacks
def test_echo_bot_runs_as_written(server, tmp_path):
    """
    The bot signs in as bob; alice's message comes back to her unchanged.
    """
    script = tmp_path / "echo_bot.py"
    script.write_text(echo_bot_source(), encoding="utf-8")
    bot = BotProcess()
    process = reactor.spawnProcess(
        bot, sys.executable, [sys.executable, str(script), "bob@example.com", "pw-bob", f"127.0.0.1:{server.dispatch_port}"],
        env=None,
    )
    try:
        yield bot.signed_in.addTimeout(20, reactor)
        alice = Client("alice@example.com", "pw-alice", server=f"127.0.0.1:{server.dispatch_port}", dialects=["MSNP7"])
        yield alice.sign_in()
        answered = defer.Deferred()
        alice.on_message(lambda conversation, message: answered.called or answered.callback(message))
        conversation = yield alice.start_conversation(["bob@example.com"])
        yield conversation.send("Is anybody there? \u00e9")
        message = yield answered.addTimeout(10, reactor)
        assert (message.sender, message.text) == ("bob@example.com", "Is anybody there? \u00e9")
        yield alice.sign_out()
    finally:
        if bot.ended.called is False:
            process.signalProcess("TERM")
        yield bot.ended
