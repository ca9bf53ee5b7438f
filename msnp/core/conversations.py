"""
Conversations: who is in one, who has been invited, and what each
participant is sent when others join, leave or speak.

A conversation lives in the process of the switchboard that opened it;
the directory only reserves its id, holds the cookies that admit people to
it, and carries the invitation (L{events.Ring}) to the callee's endpoints.
Participants are front-end objects providing L{IParticipant}, so a
conversation can hold users of any protocol.
"""

from __future__ import annotations

import secrets
from typing import Optional

from twisted.internet.defer import Deferred, DeferredList
from zope.interface import Attribute, Interface

from msnp import metrics
from msnp.core import errors, events

# The counter's one child, kept: added to once per relayed message.
_RELAYED = metrics.SWITCHBOARD_MESSAGES.labels()


class IParticipant(Interface):
    handle = Attribute("who")
    name = Attribute("shown as")

    def joined(newcomer):
        """
        C{newcomer} (another participant) joined.
        """

    def left(leaver, idle):
        """
        C{leaver} left, removed for idling when C{idle}.
        """

    def message(sender, payload, now):
        """
        C{sender} said C{payload} (the MIME message, byte-exact); whether it
        was delivered, or a Deferred firing with that for a participant
        that learns it later (a federated user's server).
        """


class Conversation:
    """
    One conversation: its participants in the order they joined and the
    invitations still ringing.
    """

    def __init__(self, session_id: str, address: str):
        self.session_id = session_id
        self.address = address
        self.participants: dict[str, object] = {}
        self._ringing: dict[str, float] = {}  # callee -> when the invitation lapses

    def __repr__(self) -> str:
        return f"<Conversation {self.session_id} {list(self.participants)}>"

    @property
    def ended(self) -> bool:
        return not self.participants

    def is_ringing(self, handle: str, now: float) -> bool:
        expires = self._ringing.get(handle)
        if expires is None:
            return False
        if expires <= now:
            del self._ringing[handle]
            return False
        return True

    def ringing_count(self, now: float) -> int:
        return sum(1 for handle in list(self._ringing) if self.is_ringing(handle, now))

    def ring(self, handle: str, expires: float) -> None:
        self._ringing[handle] = expires

    def join(self, newcomer) -> list:
        """
        Add C{newcomer}; tell the others and return who was there before,
        in joining order.
        """
        present = list(self.participants.values())
        self._ringing.pop(newcomer.handle, None)
        self.participants[participant_key(newcomer)] = newcomer
        for other in present:
            other.joined(newcomer)
        return present

    def leave(self, leaver, idle: bool = False) -> None:
        key = participant_key(leaver)
        if self.participants.get(key) is not leaver:
            return
        del self.participants[key]
        for other in list(self.participants.values()):
            other.left(leaver, idle)

    def has_user(self, handle: str) -> bool:
        """
        Whether any endpoint of C{handle} takes part.
        """
        return handle in self.participants or any(p.handle == handle for p in self.participants.values())

    def endpoints_of(self, handle: str) -> list:
        return [p for p in self.participants.values() if p.handle == handle]

    def relay(self, sender, payload: bytes, now: Optional[float] = None):
        """
        Give C{payload} from C{sender} to every other participant; True when
        all of them (at least one) received it.  When a participant can
        only tell later, a Deferred firing with that.
        """
        _RELAYED.value += 1
        delivered = None
        later = None
        for other in self.participants.values():
            if other is sender:
                continue
            outcome = other.message(sender, payload, now)
            if outcome.__class__ is not bool and isinstance(outcome, Deferred):
                later = [outcome] if later is None else later + [outcome]
                if delivered is None:
                    delivered = True
            elif outcome:
                if delivered is None:
                    delivered = True
            else:
                delivered = False
        if later is None:
            return bool(delivered)
        return DeferredList(later, consumeErrors=True).addCallback(
            lambda results: bool(delivered) and all(ok and bool(value) for ok, value in results)
        )


def participant_key(participant) -> str:
    """
    How a conversation files a participant: by handle, and for a point of
    presence (an endpoint with an C{instance}) by handle and instance, so
    that several endpoints of one user can take part.
    """
    instance = getattr(participant, "instance", "")
    return f"{participant.handle};{instance.lower()}" if instance else participant.handle


class Conversations:
    """
    Opening conversations under ids unique to the service, and inviting
    people into them.
    """

    def __init__(self, directory, clock):
        self._directory = directory
        self._clock = clock

    def open(self, address: str) -> Deferred:
        """
        A new, empty conversation held at C{address}.
        """
        session_id = str(secrets.randbelow(9 * 10**8) + 10**8)
        d = self._directory.claim_session_id(session_id, address)

        def claimed(ok):
            if not ok:
                return self.open(address)
            return Conversation(session_id, address)

        return d.addCallback(claimed)

    def close(self, conversation: Conversation) -> None:
        self._directory.release_session_id(conversation.session_id)

    def invite(self, conversation: Conversation, caller, callee: str, expires: float, except_instance: str = "") -> Deferred:
        """
        Ring C{callee} for C{caller} (a participant) when they are shown
        online, take invitations and their privacy lets C{caller} reach them;
        L{errors.UserOffline} otherwise.  C{except_instance}: the point of
        presence not to ring (a user bringing a conversation to their other
        endpoints).
        """
        d = self._directory.presence_of([callee])

        def found(records):
            record = records.get(callee)
            if record is None or not record.reachable_by(caller.handle):
                raise errors.UserOffline(callee)
            conversation.ring(callee, expires)
            self._directory.deliver(
                [callee],
                events.Ring(callee, conversation.session_id, conversation.address, caller.handle, caller.name, except_instance),
            )

        return d.addCallback(found)
