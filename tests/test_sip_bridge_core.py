"""
The core's side of federation and the SIP bridge without sockets: the
contact-list service accepting federated handles, the directory's domain
routes, conversations with a participant that answers later, and the
bridge's rules (consent, presence records, ringing) over the recording
store, the local directory, a recording edge and a task.Clock.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from corefakes import RecordingEndpoint, World
from msnp.core import errors, events, status as statuses
from msnp.core.conversations import Conversation
from msnp.sip.bridge import RING_TIMEOUT, SipBridge, Unsupported, read_msn_payload, text_payloads
from msnp.sip.link import ALLOWED, BLOCKED, FILTERED, DeliveryFailed, IMessengerLink, ISipFederation, Left, PresenceView, Text, Typing

KIM = "kim@partner.example"
ALICE = "alice@example.com"


@implementer(ISipFederation)
class RecordingEdge:
    """
    The edge as the bridge calls it: every call noted; sends succeed
    unless C{refuse} holds a status.
    """

    def __init__(self):
        self.calls = []
        self.refuse = None

    def is_federated(self, handle):
        return handle.endswith("@partner.example")

    def presence_changed(self, owner):
        self.calls.append(("presence_changed", owner))

    def watch(self, owner, contact):
        self.calls.append(("watch", owner, contact))

    def unwatch(self, owner, contact):
        self.calls.append(("unwatch", owner, contact))

    def send(self, sender, recipient, event):
        self.calls.append(("send", sender, recipient, event))
        if self.refuse:
            return fail(DeliveryFailed(self.refuse))
        return succeed(None)


class Host:
    """
    Conversations held as the switchboard holds them.
    """

    def __init__(self, messenger):
        self.messenger = messenger
        self.conversations = {}

    def open_conversation(self):
        def opened(conversation):
            self.conversations[conversation.session_id] = conversation
            return conversation

        return self.messenger.conversations.open("127.0.0.1:1865").addCallback(opened)

    def close_conversation(self, conversation):
        self.conversations.pop(conversation.session_id, None)


class Local:
    """
    A local participant that keeps what it is given.
    """

    caps = 0

    def __init__(self, handle, answer=True):
        self.handle = handle
        self.name = handle
        self.got = []
        self.answer = answer

    def joined(self, newcomer):
        self.got.append(("joined", newcomer.handle))

    def left(self, leaver, idle):
        self.got.append(("left", leaver.handle))

    def message(self, sender, payload, now=None):
        self.got.append(("message", sender.handle, payload))
        return self.answer


@pytest.fixture
def world():
    world = World()
    world.edge = RecordingEdge()
    world.host = Host(world.messenger)
    world.bridge = SipBridge(world.messenger, world.host, world.clock, 1664)
    world.result(world.bridge.start(world.edge, ["partner.example"]))
    return world


def fired(d):
    """
    What C{d} fired with (taking it), or None while it has not fired.
    """
    if not d.called:
        return None
    results = []
    d.addBoth(results.append)
    return results[0]


def test_interfaces(world):
    verifyObject(IMessengerLink, world.bridge)


# The contact-list service


def test_federated_handle_goes_on_the_forward_list_and_is_told(world):
    """
    No account here, but of a federated domain: listed, and the handle is
    told (through the domain route, version 0), so the edge subscribes.
    """
    alice = world.sign_in(ALICE)
    world.events()
    edit = world.result(world.messenger.lists.add(alice.me, "FL", KIM, "Kim"))
    assert not isinstance(edit, Failure)
    assert alice.me.user.lists["FL"] == {KIM: "Kim"}
    assert ("watch", ALICE, KIM) in world.edge.calls
    assert world.bridge.forward == {ALICE: {KIM}}
    assert world.store.database.load_user(ALICE).lists["FL"] == {KIM: "Kim"}


def test_other_domains_are_still_no_such_user(world):
    alice = world.sign_in(ALICE)
    outcome = world.result(world.messenger.lists.add(alice.me, "FL", "kim@elsewhere.example", "Kim"))
    assert isinstance(outcome, Failure) and outcome.check(errors.NoSuchUser)


def test_removal_and_group_removal_are_told_too(world):
    alice = world.sign_in(ALICE)
    lists = world.messenger.lists
    world.result(lists.add(alice.me, "FL", KIM, "Kim"))
    world.result(lists.remove(alice.me, "FL", KIM))
    assert ("unwatch", ALICE, KIM) in world.edge.calls and world.bridge.forward == {}
    group = world.result(lists.add_group(alice.me, "SIP")).group_id
    world.result(lists.add(alice.me, "FL", KIM, "Kim", group))
    world.edge.calls.clear()
    world.result(lists.remove_group(alice.me, group))
    assert ("unwatch", ALICE, KIM) in world.edge.calls


def test_allow_and_block_lists_take_federated_handles(world):
    alice = world.sign_in(ALICE)
    assert not isinstance(world.result(world.messenger.lists.add(alice.me, "AL", KIM, KIM)), Failure)
    assert not isinstance(world.result(world.messenger.lists.add(alice.me, "BL", "lee@partner.example", "lee")), Failure)


def test_federated_watcher_goes_on_the_reverse_list_once(world):
    alice = world.sign_in(ALICE)
    world.events()
    world.result(world.bridge.watcher_subscribed(ALICE, KIM, "Kim"))
    version = world.store.database.load_user(ALICE).version
    assert world.events() == [(ALICE, events.ReverseListChanged(ALICE, KIM, "Kim", True, version))]
    world.result(world.bridge.watcher_subscribed(ALICE, KIM, "Kim"))
    assert world.events() == []
    # Only federated domains' users may be put there.
    outcome = world.result(world.messenger.lists.federated_watcher_added(ALICE, "eve@elsewhere.example", "Eve"))
    assert isinstance(outcome, Failure) and outcome.check(errors.NoSuchUser)


def test_entries_listed_before_start_are_watched(world):
    alice = world.sign_in(ALICE)
    world.result(world.messenger.lists.add(alice.me, "FL", KIM, "Kim"))
    world.result(world.messenger.lists.add(alice.me, "AL", "lee@partner.example", "Lee"))
    bridge = SipBridge(world.messenger, world.host, world.clock, 1664)
    edge = RecordingEdge()
    world.result(bridge.start(edge, ["partner.example"]))
    assert edge.calls == [("watch", ALICE, KIM)]


# The directory's domain routes


def test_domain_route_stands_for_handles_without_endpoints(world):
    directory = world.directory
    got = []
    directory.route_domain("elsewhere.example", lambda handle: RecordingEndpoint(handle, got))
    own = RecordingEndpoint("own@elsewhere.example", got)
    world.result(directory.attach(own, own.endpoint_record(own.handle, 0)))
    event = events.PropertyChanged(ALICE, "PHH", "1")
    directory.deliver(["lee@elsewhere.example", "own@elsewhere.example", "x@nowhere.example"], event)
    assert got == [("lee@elsewhere.example", event), ("own@elsewhere.example", event)]
    directory.unroute_domain("elsewhere.example")
    directory.deliver(["lee@elsewhere.example"], event)
    assert len(got) == 2


# Conversations with a participant that answers later


def test_relay_waits_for_a_participant_that_answers_later():
    conversation = Conversation("1", "127.0.0.1:1865")
    sender, local = Local("a@x"), Local("b@x")

    class Later(Local):
        def message(self, sender, payload, now=None):
            self.d = Deferred()
            return self.d

    later = Later("c@y")
    for participant in (sender, local, later):
        conversation.join(participant)
    outcome = conversation.relay(sender, b"hi")
    assert isinstance(outcome, Deferred) and fired(outcome) is None
    later.d.callback(True)
    assert fired(outcome) is True
    outcome = conversation.relay(sender, b"hi")
    later.d.callback(False)
    assert fired(outcome) is False
    local.answer = False
    outcome = conversation.relay(sender, b"hi")
    later.d.callback(True)
    assert fired(outcome) is False


# The bridge's rules


@pytest.mark.parametrize(
    "edits, status, expected",
    [
        ([], statuses.ONLINE, PresenceView(FILTERED)),
        ([("AL", KIM)], statuses.ONLINE, PresenceView(ALLOWED, "NLN")),
        ([("FL", KIM)], statuses.BUSY, PresenceView(ALLOWED, "BSY")),
        ([("FL", KIM)], statuses.HIDDEN, PresenceView(ALLOWED, None)),
        ([("FL", KIM), ("BL", KIM)], statuses.ONLINE, PresenceView(BLOCKED)),
        ([("AL", "lee@partner.example"), ("blp", "BL")], statuses.ONLINE, PresenceView(FILTERED)),
        ([("FL", KIM), ("blp", "BL")], statuses.ONLINE, PresenceView(FILTERED)),
        ([("FL", KIM), ("AL", KIM), ("blp", "BL")], statuses.ONLINE, PresenceView(ALLOWED, "NLN")),
    ],
)
def test_what_a_sip_watcher_may_see(world, edits, status, expected):
    """
    The MSN privacy rule, plus consent: the forward or allow list.  The
    same answer from the presence record (signed in) and from the store
    (signed out, then offline).
    """
    alice = world.sign_in(ALICE)
    for lst, contact in edits:
        if lst == "blp":
            world.result(world.messenger.lists.set_privacy(alice.me, "blp", contact))
        else:
            world.result(world.messenger.lists.add(alice.me, lst, contact, contact))
    world.messenger.presence.set_status(alice.me, status)
    assert world.result(world.bridge.presence_for(ALICE, KIM)) == expected
    world.messenger.sign_out(alice.me)
    offline = PresenceView(expected.access, None) if expected.access == ALLOWED else expected
    assert world.result(world.bridge.presence_for(ALICE, KIM)) == offline


def test_local_presence_change_reaches_the_edge_once(world):
    """
    However many SIP watchers, one re-read per user and turn, after the
    core has finished the change.
    """
    alice = world.sign_in(ALICE, statuses.ONLINE)
    world.result(world.messenger.lists.add(alice.me, "AL", KIM, KIM))
    world.result(world.bridge.watcher_subscribed(ALICE, KIM, "Kim"))
    world.result(world.bridge.watcher_subscribed(ALICE, "lee@partner.example", "Lee"))
    world.result(world.messenger.lists.add(alice.me, "AL", "lee@partner.example", "Lee"))
    # As alice's session does with the notices it is given.
    for handle, event in world.events():
        if isinstance(event, events.ReverseListChanged):
            world.messenger.lists.apply_reverse_change(alice.me, event)
    world.edge.calls.clear()
    world.messenger.presence.set_status(alice.me, statuses.BUSY)
    world.messenger.presence.set_status(alice.me, statuses.AWAY)
    assert world.edge.calls == []
    world.clock.advance(0)
    assert world.edge.calls == [("presence_changed", ALICE)]
    # Signing out: the edge reads the state after the record is withdrawn.
    world.edge.calls.clear()
    world.messenger.sign_out(alice.me)
    world.clock.advance(0)
    assert world.edge.calls == [("presence_changed", ALICE)]
    assert world.result(world.bridge.presence_for(ALICE, KIM)) == PresenceView(ALLOWED, None)


@pytest.mark.parametrize(
    "status, before, edit, after",
    [
        # Shown, BLP AL: off the allow list changes no MSN view, but consent.
        (statuses.ONLINE, [("add", "AL", KIM)], ("remove", "AL", KIM), PresenceView(FILTERED)),
        # Hidden: no presence event at all, whatever the edit.
        (statuses.HIDDEN, [("add", "AL", KIM)], ("remove", "AL", KIM), PresenceView(FILTERED)),
        (statuses.HIDDEN, [("add", "FL", KIM)], ("add", "BL", KIM), PresenceView(BLOCKED)),
        (statuses.HIDDEN, [("add", "FL", KIM)], ("blp", "BL"), PresenceView(FILTERED)),
        (statuses.HIDDEN, [], ("add", "AL", KIM), PresenceView(ALLOWED, None)),
        (statuses.ONLINE, [("blp", "BL")], ("add", "AL", KIM), PresenceView(ALLOWED, "NLN")),
    ],
)
def test_every_privacy_edit_reaches_the_edge_at_once(world, status, before, edit, after):
    """
    The edge re-reads alice's SIP subscriptions on every allow, block or
    mode edit concerning a SIP watcher, shown or hidden, even when no MSN
    watcher's view changed; what it then reads is the new answer.
    """
    alice = world.sign_in(ALICE, status)
    lists = world.messenger.lists
    world.result(world.bridge.watcher_subscribed(ALICE, KIM, "Kim"))
    for handle, event in world.events():
        if isinstance(event, events.ReverseListChanged) and handle == ALICE:
            lists.apply_reverse_change(alice.me, event)

    def apply(change):
        if change[0] == "blp":
            return lists.set_privacy(alice.me, "blp", change[1])
        if change[0] == "remove":
            return lists.remove(alice.me, change[1], change[2])
        return lists.add(alice.me, change[1], change[2], change[2])

    for change in before:
        assert not isinstance(world.result(apply(change)), Failure)
    world.clock.advance(0)
    world.edge.calls.clear()
    assert not isinstance(world.result(apply(edit)), Failure)
    world.clock.advance(0)
    assert world.edge.calls == [("presence_changed", ALICE)]
    assert world.result(world.bridge.presence_for(ALICE, KIM)) == after


def test_privacy_edits_of_local_contacts_leave_the_edge_alone(world):
    alice = world.sign_in(ALICE, statuses.HIDDEN)
    world.result(world.bridge.watcher_subscribed(ALICE, KIM, "Kim"))
    world.clock.advance(0)
    world.edge.calls.clear()
    world.result(world.messenger.lists.add(alice.me, "AL", "bob@example.com", "Bob"))
    world.result(world.messenger.lists.add(alice.me, "BL", "carol@example.com", "Carol"))
    world.clock.advance(0)
    assert world.edge.calls == []


def test_display_name_of_a_local_user(world):
    """
    What the edge puts in From: the friendly name shown while signed in,
    the account's otherwise.
    """
    alice = world.sign_in(ALICE, statuses.ONLINE)
    world.result(world.messenger.lists.set_friendly_name(alice.me, "Alice <A>"))
    assert world.result(world.bridge.display_name(ALICE)) == "Alice <A>"
    world.messenger.sign_out(alice.me)
    assert world.result(world.bridge.display_name(ALICE)) == "Alice <A>"
    assert world.result(world.bridge.display_name("bob@example.com")) == "Bob"
    assert world.result(world.bridge.display_name("nobody@example.com")) == ""


def test_contact_presence_is_a_record_only_its_watchers_see(world):
    alice = world.sign_in(ALICE, statuses.ONLINE)
    bob = world.sign_in("bob@example.com", statuses.ONLINE)
    world.result(world.messenger.lists.add(alice.me, "FL", KIM, "Kim"))
    world.events()
    world.bridge.contact_presence(ALICE, KIM, "BSY")
    assert world.events() == [(ALICE, events.PresenceChanged(KIM, statuses.BUSY, KIM))]
    assert [r.handle for r in world.result(world.messenger.presence.visible_contacts(alice.me, [KIM]))] == [KIM]
    assert world.result(world.messenger.presence.visible_contacts(bob.me, [KIM])) == []
    # bob never listed kim: what kim's server tells about bob is ignored.
    world.bridge.contact_presence("bob@example.com", KIM, "NLN")
    assert world.events() == []
    world.bridge.contact_presence(ALICE, KIM, "BSY")
    assert world.events() == []
    world.bridge.contact_presence(ALICE, KIM, None)
    assert world.events() == [(ALICE, events.PresenceChanged(KIM, None, KIM))]
    assert world.result(world.directory.presence_of([KIM])) == {}


def test_unanswered_ring_is_480_and_the_conversation_closes(world):
    alice = world.sign_in(ALICE, statuses.ONLINE)
    d = world.bridge.deliver(KIM, ALICE, Text("hello"))
    ring = [event for handle, event in world.events() if isinstance(event, events.Ring)]
    assert ring and ring[0].caller == KIM and ring[0].callee == ALICE
    assert fired(d) is None and len(world.host.conversations) == 1
    world.clock.advance(RING_TIMEOUT)
    outcome = fired(d)
    assert isinstance(outcome, Failure) and outcome.value.status == 480
    assert world.host.conversations == {} and world.bridge.pairs == {}
    assert alice.me is not None


def test_answered_ring_delivers_in_order_and_typing_opens_nothing(world):
    world.sign_in(ALICE, statuses.ONLINE)
    assert fired(world.bridge.deliver(KIM, ALICE, Typing())) is None
    assert world.host.conversations == {}
    first = world.bridge.deliver(KIM, ALICE, Text("one"))
    second = world.bridge.deliver(KIM, ALICE, Text("two"))
    (conversation,) = world.host.conversations.values()
    alice = Local(ALICE)
    conversation.join(alice)
    assert first.called is False and second.called is False
    world.clock.advance(0)
    assert first.called and fired(first) is None and fired(second) is None
    texts = [payload.rsplit(b"\r\n\r\n", 1)[1] for kind, _, payload in (g for g in alice.got if g[0] == "message")]
    assert texts == [b"one", b"two"]
    assert world.clock.getDelayedCalls() == []
    fired(world.bridge.deliver(KIM, ALICE, Typing()))
    assert b"TypingUser: kim@partner.example" in alice.got[-1][2]
    # The local participant's reply goes to the edge; a refusal is False.
    participant = conversation.participants[KIM]
    assert fired(participant.message(alice, b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nback", None)) is True
    assert world.edge.calls[-1] == ("send", ALICE, KIM, Text("back"))
    world.edge.refuse = 404
    assert fired(participant.message(alice, b"Content-Type: text/plain\r\n\r\nagain", None)) is False
    # kim leaves (BYE of an IM session): the conversation ends.
    fired(world.bridge.deliver(KIM, ALICE, Left()))
    assert ("left", KIM) in alice.got and world.bridge.pairs == {}


def test_message_while_blocked_is_480_without_a_ring(world):
    alice = world.sign_in(ALICE, statuses.ONLINE)
    world.result(world.messenger.lists.add(alice.me, "BL", KIM, KIM))
    world.events()
    outcome = fired(world.bridge.deliver(KIM, ALICE, Text("hi")))
    assert isinstance(outcome, Failure) and outcome.value.status == 480
    assert world.events() == [] and world.host.conversations == {}


def test_stop_lets_go_of_everything(world):
    alice = world.sign_in(ALICE, statuses.ONLINE)
    world.result(world.messenger.lists.add(alice.me, "FL", KIM, "Kim"))
    d = world.bridge.deliver(KIM, ALICE, Text("hello"))
    world.bridge.contact_presence(ALICE, KIM, "NLN")
    world.bridge.stop()
    outcome = fired(d)
    assert isinstance(outcome, Failure) and outcome.value.status == 503
    assert world.host.conversations == {} and world.clock.getDelayedCalls() == []
    assert world.messenger.lists.federated_domains == set()
    assert world.result(world.directory.presence_of([KIM])) == {}


# MSN payloads


def test_msn_payloads_read():
    assert read_msn_payload(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi \xc3\xa9") == Text("hi \u00e9")
    assert read_msn_payload(b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b\r\n\r\n\r\n") == Typing()
    assert read_msn_payload(b"MIME-Version: 1.0\r\nContent-Type: text/x-clientcaps\r\n\r\nClient-Name: x\r\n") is None
    for payload in (b"no header block", b"Content-Type: text/x-msmsgsinvite\r\n\r\n", b"Content-Type: text/plain\r\n\r\n\xff"):
        with pytest.raises(Unsupported):
            read_msn_payload(payload)


@given(st.binary(max_size=300))
def test_any_payload_is_read_or_refused(payload):
    try:
        read_msn_payload(payload)
    except Unsupported:
        pass


@given(st.text(max_size=3000), st.integers(min_value=0, max_value=2000))
def test_text_payloads_keep_every_character_within_the_limit(text, limit):
    payloads = text_payloads(text, limit)
    bodies = [p.split(b"\r\n\r\n", 1)[1] for p in payloads]
    joined = b"".join(bodies).decode("utf-8")
    assert joined == text.replace("\r\n", "\n").replace("\n", "\r\n")
    for body in bodies:
        body.decode("utf-8")
    if limit >= 200:
        assert all(len(p) <= limit for p in payloads)
