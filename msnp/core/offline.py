"""
Offline messages: a message to a user who cannot take it now is kept, and
read and deleted by them later.  Protocol-neutral: the MSN front-end keeps
them from its OIM web service and MSNP18's UUM, and reads them out through
its own web service.
"""

from __future__ import annotations

import uuid
from typing import Optional

from twisted.internet.defer import Deferred, fail

from msnp.core import errors, events
from msnp.store.records import MailboxFull, OfflineMessage, UnknownAccount


class OfflineMessages:
    """
    Keeping, listing and deleting a user's offline messages, within
    C{max_count} messages and C{max_bytes} of text per recipient and
    C{max_message_bytes} per message.  C{service_user(handle)} gives the
    recipient's lists (to ask whether they accept the sender).
    """

    def __init__(self, store, directory, clock, service_user, max_count: int, max_bytes: int, max_message_bytes: int):
        self._store = store
        self._directory = directory
        self._clock = clock
        self._service_user = service_user
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_message_bytes = max_message_bytes

    def leave(self, sender: str, sender_name: str, recipient: str, text: str, run_id: str = "", sequence: int = 1) -> Deferred:
        """
        Keep C{text} for C{recipient}; fires with the L{OfflineMessage} once
        committed, after which the recipient's endpoints (if any) hear of
        it.  L{errors.NoSuchUser}, L{errors.NotAccepted} (the recipient's
        privacy refuses the sender), L{errors.MessageTooLarge} and
        L{errors.MailboxFull} refuse it.
        """
        if len(text.encode("utf-8")) > self.max_message_bytes:
            return fail(errors.MessageTooLarge(f"{len(text)} characters"))
        d = self._service_user(recipient)

        def found(owner):
            if owner is None:
                raise errors.NoSuchUser(recipient)
            if not owner.allows(sender):
                raise errors.NotAccepted(f"{recipient} does not accept {sender}")
            message = OfflineMessage(str(uuid.uuid4()).upper(), sender, sender_name, self._clock.seconds(), run_id, sequence, text)
            stored = self._store.store_offline_message(recipient, message, self.max_count, self.max_bytes)
            return stored.addCallback(lambda _: message)

        def kept(message):
            self._directory.deliver([recipient], events.OfflineMessageArrived(recipient, message))
            return message

        def refused(failure):
            if failure.check(MailboxFull):
                raise errors.MailboxFull(recipient)
            if failure.check(UnknownAccount):
                raise errors.NoSuchUser(recipient)
            return failure

        return d.addCallback(found).addCallback(kept).addErrback(refused)

    def messages(self, recipient: str) -> Deferred:
        return self._store.offline_messages(recipient)

    def message(self, recipient: str, message_id: str) -> Deferred:
        """
        Fires with one of the recipient's messages, or None.
        """

        def pick(messages) -> Optional[OfflineMessage]:
            return next((m for m in messages if m.message_id == message_id), None)

        return self._store.offline_messages(recipient).addCallback(pick)

    def delete(self, recipient: str, message_ids: list[str]) -> Deferred:
        """
        Delete messages the recipient has read; fires with the ids deleted,
        after the recipient's endpoints heard how many went.
        """

        def deleted(ids):
            if ids:
                self._directory.deliver([recipient], events.OfflineMessagesDeleted(recipient, len(ids)))
            return ids

        return self._store.delete_offline_messages(recipient, list(message_ids)).addCallback(deleted)
