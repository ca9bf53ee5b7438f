"""
/metrics over real HTTP: Prometheus text with the counters counted where
things happen (logins, commands, errors, bytes, forced disconnections,
switchboard sessions and messages, presence lines, store latency), the
live gauges and the process metrics.  Counters are process-wide, so each
check compares a scrape before with one after.
"""

import re
import shutil

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families

from adminhttp import admin_server, start_admin_server  # noqa: F401 (fixture)
from msnclient import answer_ring, attempt_login, connect, go_online, login, open_switchboard
from msnp.config import ServerConfig
from ns_steps import sign_out


def samples(text: str) -> dict:
    """
    {(sample name, sorted label items): value} of a scrape.
    """
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest_twisted.inlineCallbacks
def scrape(server):
    response = yield server.request("GET", "/metrics")
    assert response.code == 200
    assert response.header("Content-Type").startswith("text/plain; version=0.0.4")
    return samples(response.body.decode("utf-8"))


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest_twisted.inlineCallbacks
def test_counters_move_with_what_clients_do(admin_server):
    """
    A login, a refused one, a list edit that gets an error, presence seen
    by a watcher, and a switchboard conversation with one message each
    show in their counters; the gauges count who is signed in now.
    """
    before = yield scrape(admin_server)
    alice = yield login(admin_server.notification_port, "alice@example.com", "pw-alice", "MSNP7")
    bob = yield login(admin_server.notification_port, "bob@example.com", "pw-bob", "MSNP7")
    refused = yield attempt_login(admin_server.notification_port, "carol@example.com", "wrong")
    yield refused.expect_line("911 3")
    yield refused.expect_close()
    unknown = yield attempt_login(admin_server.notification_port, "nobody@example.com", "pw")
    yield unknown.expect_line("911 3")
    yield unknown.expect_close()
    bob.send("ADD 5 FL alice@example.com Alice")
    yield bob.expect(r"ADD 5 FL \d+ alice@example\.com Alice 0")
    yield alice.expect(r"ADD 0 RL \d+ bob@example\.com Bob")
    bob.send("ADD 6 XL alice@example.com Alice")
    yield bob.expect_line("201 6")
    yield go_online(bob, 7)
    yield go_online(alice, 6)
    yield bob.expect_line("NLN NLN alice@example.com Alice")
    sb_alice = yield open_switchboard(alice, "alice@example.com", trid=10)
    sb_alice.send("CAL 2 bob@example.com")
    yield sb_alice.expect(r"CAL 2 RINGING \d+")
    sb_bob, _, _ = yield answer_ring(bob, "bob@example.com")
    yield sb_alice.expect(r"JOI bob@example\.com Bob")
    sb_alice.send_payload("MSG 3 N", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello")
    yield sb_bob.expect(r"MSG alice@example\.com Alice \d+")
    after = yield scrape(admin_server)

    assert delta(before, after, "msnp_logins_accepted_total", method="md5") == 2
    assert delta(before, after, "msnp_logins_refused_total", method="md5", reason="bad_password") == 1
    assert delta(before, after, "msnp_logins_refused_total", method="md5", reason="unknown_account") == 1
    assert delta(before, after, "msnp_commands_total", role="notification", command="ADD") == 2
    assert delta(before, after, "msnp_commands_total", role="notification", command="USR") == 8
    assert delta(before, after, "msnp_commands_total", role="switchboard", command="CAL") == 1
    assert delta(before, after, "msnp_commands_total", role="switchboard", command="MSG") == 1
    assert delta(before, after, "msnp_errors_sent_total", role="notification", code="201") == 1
    assert delta(before, after, "msnp_errors_sent_total", role="notification", code="911") == 2
    assert delta(before, after, "msnp_switchboard_sessions_total") == 1
    assert delta(before, after, "msnp_switchboard_messages_total") == 1
    assert delta(before, after, "msnp_presence_notifications_total", kind="online") == 1
    assert delta(before, after, "msnp_received_bytes_total", role="notification") > 200
    assert delta(before, after, "msnp_sent_bytes_total", role="switchboard") > 100
    assert delta(before, after, "msnp_store_operation_duration_seconds_count", operation="load_user") >= 4
    assert after[("msnp_sessions_online", (("dialect", "MSNP7"), ("role", "notification")))] == 2
    assert after[("msnp_sessions_online", (("dialect", "MSNP7"), ("role", "switchboard")))] == 2
    assert after[("msnp_connections_open", (("role", "switchboard"),))] == 2
    assert after[("msnp_switchboard_conversations", ())] == 1
    assert after[("msnp_build_info", (("version", admin_server.service.admin.version),))] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in after)
    assert any(name == "process_resident_memory_bytes" for name, _ in after)
    yield sign_out(sb_alice, sb_bob, alice, bob)
    bob_gone = yield scrape(admin_server)
    assert ("msnp_sessions_online", (("dialect", "MSNP7"), ("role", "notification"))) not in bob_gone


@pytest_twisted.inlineCallbacks
def test_forced_disconnections_are_counted(tmp_path, accounts_database):
    """
    A command flood and an over-long line each close the connection and
    count under their reason.
    """
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    config = ServerConfig(command_burst=3, command_rate=0.001, flood_strikes=2, max_line_length=200)
    server = yield start_admin_server(str(db_path), config=config)
    try:
        before = yield scrape(server)
        flooder = yield connect(server.notification_port)
        flooder.send("VER 1 MSNP7")
        for _ in range(10):
            flooder.send("PNG")
        yield flooder.wait_closed()
        long_line = yield connect(server.notification_port)
        long_line.send("VER 1 " + "X" * 400)
        yield long_line.wait_closed()
        after = yield scrape(server)
    finally:
        yield server.stop()
    assert delta(before, after, "msnp_forced_disconnections_total", role="notification", reason="flood") == 1
    assert delta(before, after, "msnp_forced_disconnections_total", role="notification", reason="line_too_long") == 1


@pytest_twisted.inlineCallbacks
def test_names_follow_prometheus_conventions(admin_server):
    """
    Every msnp metric is msnp_ and snake case; counters end in _total,
    and figures with a unit name it (bytes, seconds).
    """
    response = yield admin_server.request("GET", "/metrics")
    families = list(text_string_to_metric_families(response.body.decode("utf-8")))
    ours = [family for family in families if family.name.startswith("msnp_")]
    assert len(ours) >= 14
    for family in ours:
        assert re.fullmatch(r"msnp_[a-z][a-z0-9_]*", family.name), family.name
        if family.type == "counter":
            assert all(sample.name.endswith("_total") for sample in family.samples), family.name
        if "byte" in family.name:
            assert family.name.endswith("_bytes"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_slow_reader_drop_is_counted():
    """
    A client dropped for not reading what is queued for it counts as a
    slow_reader disconnection of its role.
    """
    from prometheus_client import REGISTRY

    from test_hardening_limits import dispatch_factory, open_backlogged

    labels = {"role": "dispatch", "reason": "slow_reader"}
    before = REGISTRY.get_sample_value("msnp_forced_disconnections_total", labels) or 0.0
    factory = dispatch_factory(max_outbound_buffer=1000, outbound_grace=2.0)
    protocol, transport = open_backlogged(factory)
    protocol.send(b"x" * 5000)
    assert transport.aborted
    protocol.connectionLost(None)
    assert REGISTRY.get_sample_value("msnp_forced_disconnections_total", labels) == before + 1
