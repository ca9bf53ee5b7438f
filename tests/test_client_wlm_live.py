"""
msnp.client as Windows Live Messenger (MSNP13-MSNP18) against a live
server: TWN and single sign-on, the lists read over SOAP, presence in every
shape, list edits with ADL/RML, conversations with points of presence, and
offline messages left with UUM and read from the web service.
"""

from __future__ import annotations

import pytest

from msnp.client import BUSY, OFFLINE, ONLINE, UnsupportedByDialect
from test_client import client_for, live, next_event, until


@pytest.mark.parametrize("dialect", ["MSNP13", "MSNP15", "MSNP16", "MSNP18"])
@live
async def test_wlm_sign_in_lists_and_presence(live_server, dialect):
    """
    Signed in with TWN (13) or SSO (15+), the client adds a contact with
    ADL, sees him come online, change status and personal message, learns
    he added it back, and sees him go; the next sign-in reads the contact
    back from the address book service.
    """
    alice = client_for(live_server, "alice@example.com", dialect)
    await alice.sign_in()
    assert alice.dialect.name == dialect and alice.status == ONLINE and alice.name == "Alice"
    await alice.add_contact("bob@example.com", "Bob")
    await alice.allow("bob@example.com")
    assert alice.contacts["bob@example.com"].lists == {"FL", "AL"}

    bob = client_for(live_server, "bob@example.com", "MSNP12")
    came = until(alice, "presence", lambda c: c.status == ONLINE)
    await bob.sign_in()
    (contact,) = await came
    assert contact.handle == "bob@example.com" and contact.name == "Bob"
    added = next_event(alice, "added_by")
    await bob.add_contact("alice@example.com")
    assert await added == ("bob@example.com", "Bob")
    changed = until(alice, "presence", lambda c: c.status == BUSY)
    await bob.set_status(BUSY)
    await changed
    said = until(alice, "presence", lambda c: c.personal_message == "out & about")
    await bob.set_personal_message("out & about")
    await said
    gone = until(alice, "presence", lambda c: c.status == OFFLINE)
    await bob.sign_out()
    await gone
    with pytest.raises(UnsupportedByDialect):
        await alice.add_group("Friends")
    await alice.block("carol@example.com")
    await alice.sign_out()

    again = client_for(live_server, "alice@example.com", dialect)
    await again.sign_in()
    assert again.contacts["bob@example.com"].lists == {"FL", "AL", "RL"}
    assert again.contacts["carol@example.com"].blocked
    removed = next_event(bob, "removed_by")
    await bob.sign_in()
    await again.remove_contact("bob@example.com")
    assert "FL" not in again.contacts["bob@example.com"].lists
    assert await removed == ("alice@example.com",)
    await again.sign_out()
    await bob.sign_out()


@live
async def test_wlm_conversation_with_points_of_presence(live_server):
    """
    Two MSNP18 users chat; each sees the other once in the conversation
    (not their endpoint, nor themself after WLM's own JOI), messages arrive
    both ways, and a second point of presence of alice stays signed in.
    """
    alice = client_for(live_server, "alice@example.com", "MSNP18")
    laptop = client_for(live_server, "alice@example.com", "MSNP18")
    bob = client_for(live_server, "bob@example.com", "MSNP18")
    await alice.sign_in()
    await laptop.sign_in()
    await bob.sign_in()
    assert alice.machine_guid != laptop.machine_guid and not alice.signed_out.called
    incoming = next_event(bob, "conversation")
    conversation = await alice.start_conversation(["bob@example.com"])
    assert conversation.participants == {"bob@example.com": "Bob"}
    (theirs,) = await incoming
    heard = next_event(bob, "message")
    await conversation.send("hello from the desk")
    _, message = await heard
    assert message.sender == "alice@example.com" and message.text == "hello from the desk"
    assert "alice@example.com" in theirs.participants and all(";" not in h for h in theirs.participants)
    await conversation.leave()
    for client in (alice, laptop, bob):
        await client.sign_out()


@live
async def test_offline_message_left_with_uum_is_read_at_sign_in(live_server):
    """
    A message left for an offline user (UUM at MSNP18) is read from the
    web service at her next sign-in, given to her as an event and deleted.
    """
    bob = client_for(live_server, "bob@example.com", "MSNP18")
    await bob.sign_in()
    await bob.send_offline_message("alice@example.com", "see you at eight")
    old = client_for(live_server, "carol@example.com", "MSNP15")
    await old.sign_in()
    with pytest.raises(UnsupportedByDialect):
        await old.send_offline_message("dave@example.com", "hi")
    alice = client_for(live_server, "alice@example.com", "MSNP18")
    read = next_event(alice, "offline_message")
    await alice.sign_in()
    (message,) = await read
    assert (message.sender, message.sender_name, message.text) == ("bob@example.com", "Bob", "see you at eight")
    await alice.sign_out()
    await bob.sign_out()
    await old.sign_out()
