"""
C{msnp-chat}: a terminal MSN client on L{msnp.client}.

    msnp-chat alice@example.com [--server HOST:PORT] [--dialect MSNP12]

The password is asked for.  Output (messages, presence, typing notices)
is printed above the input line, which prompt_toolkit keeps intact.  A
line not starting with C{/} goes to the current conversation (the last
one a message came from or went to); C{/help} lists the commands.
"""

from __future__ import annotations

import argparse
from typing import Optional

from msnp.client import passport

STATUS_WORDS = {
    "online": "NLN", "busy": "BSY", "away": "AWY", "idle": "IDL", "brb": "BRB",
    "phone": "PHN", "lunch": "LUN", "hidden": "HDN", "invisible": "HDN",
}
STATUS_NAMES = {code: word for word, code in STATUS_WORDS.items() if word != "invisible"}
STATUS_NAMES["FLN"] = "offline"

HELP = """\
/msg HANDLE TEXT      send TEXT to HANDLE (opens a conversation)
/invite HANDLE        bring HANDLE into the current conversation
/leave                leave the current conversation
/status STATUS        online, busy, away, idle, brb, phone, lunch, hidden
/name NAME            change your friendly name
/psm TEXT             set your personal message (MSNP11+)
/add HANDLE           add a contact        /remove HANDLE   remove a contact
/block HANDLE         block someone        /allow HANDLE    allow someone
/contacts             the contact list with presence
/conversations        the open conversations (* marks the current one)
/quit                 sign out
TEXT                  send TEXT to the current conversation"""

# A typing notice at most this often while the user types.
TYPING_INTERVAL = 4.0


def describe(contact) -> str:
    status = STATUS_NAMES.get(contact.status, contact.status)
    lists = ",".join(sorted(contact.lists))
    extra = f" — {contact.personal_message}" if contact.personal_message else ""
    return f"  {contact.handle} ({contact.name}) {status} [{lists}]{extra}"


class Chat:
    """
    What the user types, turned into client actions; what the client
    hears, turned into lines.
    """

    def __init__(self, client, reactor, say=print):
        self.client = client
        self.reactor = reactor
        self.say = say
        self.current = None
        self._last_typing = -TYPING_INTERVAL
        client.on_message(self._message)
        client.on_typing(lambda conversation, handle: self.say(f"{handle} is typing…"))
        client.on_presence(self._presence)
        client.on_added_by(lambda handle, name: self.say(f"* {handle} ({name}) added you to their list"))
        client.on_removed_by(lambda handle: self.say(f"* {handle} removed you from their list"))
        client.on_conversation(self._conversation)
        client.on_joined(lambda conversation, handle: self.say(f"* {handle} joined the conversation"))
        client.on_left(lambda conversation, handle: self.say(f"* {handle} left the conversation"))
        client.on_signed_out(lambda reason: self.say(f"* signed out ({reason})"))

    # Events

    def _message(self, conversation, message) -> None:
        self.current = conversation
        self.say(f"<{message.sender_name}> {message.text}")

    def _presence(self, contact) -> None:
        status = STATUS_NAMES.get(contact.status, contact.status)
        line = f"* {contact.handle} ({contact.name}) is {status}"
        if contact.personal_message:
            line += f" — {contact.personal_message}"
        self.say(line)

    def _conversation(self, conversation) -> None:
        self.current = conversation
        self.say(f"* conversation with {', '.join(conversation.participants)}")

    def show_contacts(self) -> None:
        if not self.client.contacts:
            self.say("  (no contacts)")
        for contact in sorted(self.client.contacts.values(), key=lambda c: (not c.online, c.handle)):
            self.say(describe(contact))

    # Input

    def typed(self) -> None:
        """
        The input line changed: tell the current conversation, now and
        then, that the user is typing.
        """
        now = self.reactor.seconds()
        if self.current is not None and now - self._last_typing >= TYPING_INTERVAL:
            self._last_typing = now
            self.current.send_typing()

    async def handle(self, line: str) -> bool:
        """
        Act on one input line; False when the user quits.
        """
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            if self.current is None or self.current.connection.is_closed:
                self.say("! no conversation: start one with /msg HANDLE TEXT")
            else:
                await self._send(self.current, line)
            return True
        command, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        try:
            return await self._command(command.lower(), rest)
        except Exception as problem:  # report it and keep the session going
            self.say(f"! {command}: {problem}")
            return True

    async def _send(self, conversation, text: str) -> None:
        self._last_typing = -TYPING_INTERVAL
        try:
            await conversation.send(text)
        except Exception as problem:
            self.say(f"! not delivered: {problem}")

    async def _command(self, command: str, rest: str) -> bool:
        client = self.client
        if command in ("quit", "exit"):
            return False
        if command == "help":
            self.say(HELP)
        elif command == "msg":
            handle, _, text = rest.partition(" ")
            conversation = self._conversation_with(handle.lower())
            if conversation is None:
                conversation = await client.start_conversation([handle])
                self.say(f"* conversation with {handle}")
            self.current = conversation
            if text:
                await self._send(conversation, text)
        elif command == "invite" and self.current is not None:
            await self.current.invite(rest)
        elif command == "leave" and self.current is not None:
            conversation, self.current = self.current, None
            await conversation.leave()
        elif command == "status":
            await client.set_status(STATUS_WORDS.get(rest.lower(), rest.upper()))
            self.say(f"* you are {STATUS_NAMES.get(client.status, client.status)}")
        elif command == "name":
            await client.set_name(rest)
            self.say(f"* you are now called {rest}")
        elif command == "psm":
            await client.set_personal_message(rest)
        elif command == "add":
            await client.add_contact(rest)
            self.say(f"* added {rest}")
        elif command == "remove":
            await client.remove_contact(rest)
            self.say(f"* removed {rest}")
        elif command == "block":
            await client.block(rest)
            self.say(f"* blocked {rest}")
        elif command == "allow":
            await client.allow(rest)
            self.say(f"* allowed {rest}")
        elif command == "contacts":
            self.show_contacts()
        elif command == "conversations":
            if not client.conversations:
                self.say("  (no conversations)")
            for conversation in client.conversations:
                mark = "*" if conversation is self.current else " "
                self.say(f" {mark} {', '.join(conversation.participants) or '(nobody yet)'}")
        else:
            self.say(f"! unknown command /{command} (try /help)")
        return True

    def _conversation_with(self, handle: str):
        for conversation in self.client.conversations:
            if set(conversation.participants) == {handle} and not conversation.connection.is_closed:
                return conversation
        return None


def options(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="msnp-chat", description="Chat on an MSN server from the terminal.")
    parser.add_argument("handle")
    parser.add_argument("--server", default="127.0.0.1:1863", metavar="HOST:PORT", help="the dispatch server")
    parser.add_argument("--dialect", default="MSNP12", help="the highest MSNP version to offer (MSNP2-MSNP18)")
    parser.add_argument("--nexus", default=passport.DEFAULT_NEXUS, metavar="URL", help="the Passport nexus (MSNP8+)")
    parser.add_argument("--ca", metavar="PEM", help="certificates to trust for Passport's TLS instead of the system's")
    return parser.parse_args(argv)


def offered(dialect: str) -> list[str]:
    top = int(dialect.upper().removeprefix("MSNP"))
    return [f"MSNP{n}" for n in range(top, 1, -1)]


def asking(coroutine):
    """
    An asyncio coroutine (prompt_toolkit's) as a Deferred, on the asyncio
    reactor.
    """
    import asyncio

    from twisted.internet import defer

    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


async def session(reactor, args) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    from msnp.client import Client

    prompt = PromptSession()
    password = await asking(prompt.prompt_async("Password: ", is_password=True))
    client = Client(args.handle, password, server=args.server, dialects=offered(args.dialect), nexus=args.nexus, trust=args.ca, reactor=reactor)
    with patch_stdout(raw=True):
        chat = Chat(client, reactor)
        print(f"signing in to {args.server} …")
        try:
            await client.sign_in()
        except Exception as problem:
            print(f"sign-in failed: {problem}")
            return
        print(f"signed in as {client.handle} ({client.name}) with {client.dialect.name}; /help for commands")
        chat.show_contacts()
        prompt.default_buffer.on_text_changed += lambda _: chat.typed()
        while True:
            try:
                line = await asking(prompt.prompt_async(f"{client.handle}> ", is_password=False))
            except (EOFError, KeyboardInterrupt):
                break
            if not await chat.handle(line):
                break
        await client.sign_out()


def main(argv: Optional[list] = None) -> None:
    args = options(argv)
    import asyncio

    from twisted.internet import asyncioreactor

    # prompt_toolkit runs on asyncio, so Twisted does too.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(session(reactor, args)))
