"""
msnp-chat driven in a pseudo-terminal (pexpect) against a live server:
the password prompt, the contact list, presence and messages arriving
while the user types, commands, and sign-out.  The server and the other
user (an msnp.client) run on the test's reactor; the terminal is driven
from a thread so that the reactor keeps serving.
"""

from __future__ import annotations

import os
import sys

import pexpect
import pytest_twisted
from twisted.internet import defer, reactor, threads

from msnp.client import Client

CHAT = os.path.join(os.path.dirname(sys.executable), "msnp-chat")


def on_reactor(function, *args):
    """
    Run C{function} (which may return a Deferred) on the reactor from the
    terminal thread and wait for its result.
    """
    from twisted.internet.threads import blockingCallFromThread

    return blockingCallFromThread(reactor, lambda: defer.maybeDeferred(function, *args).addTimeout(15, reactor))


@pytest_twisted.inlineCallbacks
def test_chat_session_in_a_terminal(live_server):
    """
    alice uses msnp-chat, bob the library.  alice signs in with a prompted
    password, adds bob, sees him come online, gets his message above her
    prompt after a typing notice, answers it (bob is told she is typing),
    changes status, lists her contacts, and quits.
    """
    server = live_server
    bob = Client(
        "bob@example.com",
        "pw-bob",
        server=f"127.0.0.1:{server.dispatch_port}",
        dialects=["MSNP12"],
        nexus=f"https://127.0.0.1:{server.passport_port}/rdr/pprdr.asp",
        trust=server.cert_pem,
    )
    yield bob.sign_in()
    yield bob.add_contact("alice@example.com")
    heard = defer.Deferred()
    bob.on_message(lambda conversation, message: heard.called or heard.callback((conversation, message)))
    typing = defer.Deferred()
    bob.on_typing(lambda conversation, handle: typing.called or typing.callback(handle))
    status_seen = defer.Deferred()
    bob.on_presence(lambda contact: contact.status == "BSY" and not status_seen.called and status_seen.callback(contact))

    def terminal():
        chat = pexpect.spawn(
            CHAT,
            ["alice@example.com", "--server", f"127.0.0.1:{server.dispatch_port}", "--dialect", "MSNP7"],
            encoding="utf-8",
            timeout=15,
            dimensions=(40, 120),
            # A pseudo-terminal answers no cursor-position request; without
            # this prompt_toolkit waits for one before each prompt.
            env=dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1"),
        )
        try:
            chat.expect("Password:")
            chat.sendline("pw-alice")
            chat.expect(r"signed in as alice@example\.com \(Alice\) with MSNP7")
            chat.expect(r"bob@example\.com \(Bob\) offline \[RL\]")
            chat.sendline("/add bob@example.com")
            chat.expect(r"\* added bob@example\.com")
            chat.expect(r"bob@example\.com \(Bob\) is online")
            # bob writes first: the message appears while alice's prompt waits.
            conversation = on_reactor(bob.start_conversation, ["alice@example.com"])
            on_reactor(conversation.send_typing)
            chat.expect(r"bob@example\.com is typing")
            on_reactor(conversation.send, "Hi Alice, it's Bob")
            chat.expect(r"<Bob> Hi Alice, it's Bob")
            chat.send("Hello")
            chat.sendline(" Bob!")
            chat.sendline("/status busy")
            chat.expect(r"\* you are busy")
            chat.sendline("/contacts")
            chat.expect(r"bob@example\.com \(Bob\) online \[FL,RL\]")
            chat.sendline("/conversations")
            chat.expect(r" \* bob@example\.com")
            chat.sendline("/quit")
            chat.expect(pexpect.EOF)
        finally:
            chat.close(force=True)
        return chat.exitstatus

    status = yield threads.deferToThread(terminal)
    assert status == 0
    conversation, message = yield heard.addTimeout(5, reactor)
    assert (message.sender, message.text) == ("alice@example.com", "Hello Bob!")
    assert (yield typing.addTimeout(5, reactor)) == "alice@example.com"
    contact = yield status_seen.addTimeout(5, reactor)
    assert contact.handle == "alice@example.com"
    yield bob.sign_out()
