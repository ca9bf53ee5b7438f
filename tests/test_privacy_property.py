"""
Privacy as a property: across generated FL/AL/BL/BLP settings and
sequences of logins, status changes (HDN included) and logouts, what each
watcher believes about each contact (from the ILN/NLN/FLN it received) is
exactly what the rules allow it to see — never presence from someone who
hides from it.  Checked against the notification sessions in memory with
hypothesis, and through a live server for a few generated cases.
"""

from __future__ import annotations

import random
import types

import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock

from msnclient import login
from msnp.msn import dialects, wire
from msnp.core import privacy, status as statuses
from msnp.config import ServerConfig
from msnp.core.messenger import Messenger
from msnp.directory.local import LocalDirectory
from msnp.msn.notification import NotificationSession
from msnp.msn.phases import Phase
from msnp.store.records import UserState

HANDLES = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
PASSWORDS = {h: "pw-" + h.split("@")[0] for h in HANDLES}
STATES = ["NLN", "BSY", "AWY", "HDN"]


def may_see(owner_lists: dict, owner_blp: str, watcher: str) -> bool:
    """
    The reference's rule, written out independently: BL hides, AL shows,
    otherwise BLP decides.
    """
    if watcher in owner_lists["BL"]:
        return False
    if watcher in owner_lists["AL"]:
        return True
    return owner_blp == "AL"


@st.composite
def privacy_settings(draw):
    """
    For each user: FL, AL, BL (AL and BL disjoint) and BLP.
    """
    result = {}
    for handle in HANDLES:
        others = [h for h in HANDLES if h != handle]
        fl = draw(st.sets(st.sampled_from(others)))
        al = draw(st.sets(st.sampled_from(others)))
        bl = draw(st.sets(st.sampled_from(others))) - al
        blp = draw(st.sampled_from(["AL", "BL"]))
        result[handle] = {"FL": fl, "AL": al, "BL": bl, "blp": blp}
    return result


def reverse_lists(config: dict) -> dict:
    return {h: {o for o in HANDLES if h in config[o]["FL"]} for h in HANDLES}


def user_state(handle: str, config: dict) -> UserState:
    rl = reverse_lists(config)[handle]
    lists = {lst: {c: c.split("@")[0] for c in config[handle][lst]} for lst in ("FL", "AL", "BL")}
    lists["RL"] = {c: c.split("@")[0] for c in rl}
    return UserState(
        handle=handle,
        friendly_name=handle.split("@")[0],
        version=1,
        gtc="A",
        blp=config[handle]["blp"],
        properties={},
        lists=lists,
        groups={},
        memberships={},
    )


@given(st.sampled_from(STATES + ["NLN"]), privacy_settings())
def test_rule_matches_the_reference(status, config):
    """
    msnp.core.privacy.allows is the reference's rule for every generated
    combination, and HDN is shown to nobody.
    """
    for owner in HANDLES:
        user = user_state(owner, config)
        for watcher in HANDLES:
            if watcher != owner:
                assert privacy.allows(user, watcher) == may_see(config[owner], config[owner]["blp"], watcher)
    assert statuses.is_shown(dialects.STATUS_OF_CODE[status]) == (status != "HDN")


def sign_in(messenger, session, user) -> None:
    """
    What the realm does for a checked login: the session becomes the
    user's endpoint.
    """
    messenger.sign_in(session, user).addCallback(lambda me: setattr(session, "me", me))
    session._logout = lambda: messenger.sign_out(session.me)
    session.phase = Phase.LOGGED_IN


class RecordingConnection:
    def __init__(self) -> None:
        self.data = b""
        self.transport = types.SimpleNamespace(getPeer=lambda: types.SimpleNamespace(host="127.0.0.1", port=1))

    def send(self, data: bytes) -> None:
        self.data += data

    address = "127.0.0.1"

    def close(self, reason: str = "") -> None:
        pass


def beliefs_from(lines: list[str], beliefs: dict) -> None:
    """
    Update C{handle: status or None} from presence lines.
    """
    for line in lines:
        parts = line.split(" ")
        if parts[0] == "ILN":
            beliefs[parts[3]] = parts[2]
        elif parts[0] == "NLN":
            beliefs[parts[2]] = parts[1]
        elif parts[0] == "FLN":
            beliefs[parts[1]] = None


actions = st.lists(st.tuples(st.sampled_from(HANDLES), st.sampled_from(STATES + ["logout"])), max_size=25)


@settings(max_examples=300, deadline=None)
@given(privacy_settings(), actions)
def test_watchers_see_exactly_what_the_rules_allow(config, steps):
    """
    After every login, status change and logout, each online watcher
    believes each FL contact online (with its status) exactly when that
    contact is online, not hidden, and its rules let the watcher see it;
    about anyone else it has heard nothing.
    """
    clock = Clock()
    config_ = ServerConfig()
    messenger = Messenger(None, LocalDirectory(), clock, config_.list_limits, config_.max_groups)
    server = types.SimpleNamespace(config=config_, messenger=messenger, clock=clock)
    dialect = dialects.choose_dialect(["MSNP5"], server.config.supported_dialects)
    sessions: dict = {}
    beliefs: dict = {}
    for trid, (handle, action) in enumerate(steps, 1):
        session = sessions.get(handle)
        if action == "logout":
            if session is not None:
                session.connection_lost()
                del sessions[handle], beliefs[handle]
        else:
            if session is None:
                session = NotificationSession(RecordingConnection(), server)
                session.dialect = dialect
                sign_in(messenger, session, user_state(handle, config))
                sessions[handle] = session
                beliefs[handle] = {}
            session.command_received(wire.Command("CHG", trid, (action,)))
        for watcher, watcher_session in sessions.items():
            connection = watcher_session.connection
            beliefs_from(connection.data.decode("utf-8").split("\r\n"), beliefs[watcher])
            connection.data = b""
            for contact in HANDLES:
                if contact == watcher:
                    continue
                other = sessions.get(contact)
                other_status = dialects.CODE_OF_STATUS[other.me.status] if other is not None else None
                visible = (
                    contact in config[watcher]["FL"]
                    and other is not None
                    and other_status != "HDN"
                    and may_see(config[contact], config[contact]["blp"], watcher)
                )
                believed = beliefs[watcher].get(contact)
                assert believed == (other_status if visible else None), (watcher, contact, believed)
                # Nor may a hidden contact be rung for someone it hides from.
                if other is not None:
                    rings = other.me.record().reachable_by(watcher)
                    assert rings == (other_status != "HDN" and may_see(config[contact], config[contact]["blp"], watcher))


@defer.inlineCallbacks
def live_case(server, rng: random.Random):
    """
    Store a generated privacy configuration through the protocol, then log
    everyone in in a random order with a random status and compare what
    each watcher was told with the rules.
    """
    config = {}
    for handle in HANDLES:
        others = [h for h in HANDLES if h != handle]
        fl = {h for h in others if rng.random() < 0.6}
        al = {h for h in others if rng.random() < 0.3}
        bl = {h for h in others if rng.random() < 0.3} - al
        config[handle] = {"FL": fl, "AL": al, "BL": bl, "blp": rng.choice(["AL", "BL"])}
        client = yield login(server.notification_port, handle, PASSWORDS[handle], "MSNP5")
        trid = 10
        for lst in ("FL", "AL", "BL"):
            for contact in sorted(config[handle][lst]):
                trid += 1
                client.send(f"ADD {trid} {lst} {contact} {contact.split('@')[0]}")
                yield client.expect(rf"ADD {trid} {lst} \d+ {contact} \S+")
        if config[handle]["blp"] == "BL":
            client.send("BLP 9 BL")
            yield client.expect(r"BLP 9 \d+ BL")
        yield client.disconnect()

    order = list(HANDLES)
    rng.shuffle(order)
    statuses = {h: rng.choice(STATES) for h in HANDLES}
    clients = {}
    for handle in order:
        client = yield login(server.notification_port, handle, PASSWORDS[handle], "MSNP5")
        client.send(f"CHG 50 {statuses[handle]}")
        clients[handle] = client
        yield client.expect_line(f"CHG 50 {statuses[handle]}")
    beliefs: dict = {h: {} for h in HANDLES}
    yield check_beliefs(clients, config, statuses, beliefs)
    # Privacy changes while everyone is online are applied at once.
    for trid in range(60, 66):
        owner = rng.choice(HANDLES)
        watcher = rng.choice([h for h in HANDLES if h != owner])
        rules = config[owner]
        choice = rng.randrange(3)
        if choice == 0:
            rules["blp"] = "BL" if rules["blp"] == "AL" else "AL"
            clients[owner].send(f"BLP {trid} {rules['blp']}")
        elif choice == 1 and watcher not in rules["AL"]:
            lst = "BL"
            verb = "REM" if watcher in rules[lst] else "ADD"
        else:
            lst = "AL" if watcher not in rules["BL"] else "BL"
            verb = "REM" if watcher in rules[lst] else "ADD"
        if choice != 0:
            if verb == "ADD":
                rules[lst].add(watcher)
                clients[owner].send(f"ADD {trid} {lst} {watcher} x")
            else:
                rules[lst].discard(watcher)
                clients[owner].send(f"REM {trid} {lst} {watcher}")
        # The watchers' lines are written before the owner's reply.
        yield clients[owner].expect(rf"(BLP|ADD|REM) {trid} .*")
        yield check_beliefs(clients, config, statuses, beliefs)
    for client in clients.values():
        yield client.disconnect()


@defer.inlineCallbacks
def check_beliefs(clients: dict, config: dict, statuses: dict, beliefs: dict):
    """
    A round trip per client so that every line sent so far has arrived,
    then compare what each watcher was told with the rules.
    """
    for client in clients.values():
        client.send("PNG")
    for handle, client in clients.items():
        lines = []
        while True:
            line = yield client.next()
            if line.text == "QNG":
                break
            assert not line.name.isdigit(), line
            lines.append(line.text)
        beliefs_from(lines, beliefs[handle])
        for contact in HANDLES:
            if contact == handle:
                continue
            visible = contact in config[handle]["FL"] and statuses[contact] != "HDN" and may_see(config[contact], config[contact]["blp"], handle)
            assert beliefs[handle].get(contact) == (statuses[contact] if visible else None), (handle, contact, lines)


@pytest_twisted.inlineCallbacks
def test_live_server_shows_only_what_rules_allow(tmp_path):
    """
    Three generated configurations through a live server (a fresh database
    each): every watcher's ILN/NLN match the rules exactly.
    """
    from conftest import start_server

    for seed in range(3):
        running = yield start_server(str(tmp_path / f"privacy-{seed}.sqlite"))
        try:
            yield live_case(running, random.Random(seed))
        finally:
            yield running.stop()


@given(
    st.sets(st.sampled_from(HANDLES)),
    st.sets(st.sampled_from(HANDLES)),
    st.sampled_from(["AL", "BL"]),
    st.lists(st.sampled_from(HANDLES)),
    st.sampled_from(HANDLES + [""]),
)
def test_fan_out_filter_is_the_one_rule(allowed, blocked, blp, watchers, besides):
    """
    The fan-out filter keeps exactly the watchers the rule allows, in
    order, without C{besides} — even where AL and BL overlap.
    """
    owner = UserState(
        "owner@example.com", "Owner", 1, "A", blp, {},
        {"FL": {}, "AL": dict.fromkeys(allowed, ""), "BL": dict.fromkeys(blocked, ""), "RL": {}}, {}, {},
    )
    expected = [w for w in watchers if w != besides and may_see(owner.lists, blp, w)]
    assert privacy.allowed_among(owner, watchers, besides=besides) == expected
    assert [w for w in watchers if w != besides and privacy.allows(owner, w)] == expected
