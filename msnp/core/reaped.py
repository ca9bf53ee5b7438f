"""
Telling watchers that users of a notification node that died went
offline: the directory reaps the node and hands over the presence records
its users had published; each shown one becomes an offline event for the
watchers its owner's reverse list and privacy rule name.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from msnp.core import events, status as statuses

log = Logger()


@inlineCallbacks
def announce_offline(store, directory, records):
    """
    For each L{PresenceRecord} of C{records} that was shown, deliver its
    user's going offline to the watchers allowed to have seen it.  The
    reverse list comes from the store (the dead node held the user's
    lists); a user the store cannot load is skipped with a warning.
    """
    for record in records:
        if not statuses.is_shown(record.status):
            continue
        try:
            user = yield store.load_user(record.handle)
        except Exception as error:
            log.warn("reaper: cannot load {handle} to tell its watchers ({error})", handle=record.handle, error=error)
            continue
        if user is None:
            continue
        watchers = [w for w in user.lists["RL"] if w != record.handle and record.privacy.allows(w)]
        if watchers:
            directory.deliver(
                watchers, events.PresenceChanged(record.handle, None, record.name, record.client_caps, record.msn_object, False)
            )
