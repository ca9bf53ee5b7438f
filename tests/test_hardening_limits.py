"""
Limits on one connection, driven without a network: the line-length
cut-off and the memory it frees, the command rate limit (713/800, then a
close), connections per address, failed-login delays, and the wire layer
under generated input.
"""

from __future__ import annotations

import tracemalloc

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msnp.msn import wire
from msnp.core.accounts import LoginThrottle
from msnp.config import ServerConfig
from msnp.msn.dispatch import DispatchServer
from msnp.msn.protocol import TokenBucket


def open_connection(factory, host: str = "10.0.0.1", port: int = 5000):
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    protocol.makeConnection(transport)
    return protocol, transport


def take_output(transport) -> list[str]:
    data = transport.value().decode("utf-8")
    transport.clear()
    return [line for line in data.split("\r\n") if line]


def dispatch_factory(**settings):
    return DispatchServer(attrs.evolve(ServerConfig(), **settings), Clock())


def test_endless_line_frees_its_buffer():
    """
    64 MiB without a newline, fed in 64 KiB reads: the connection is
    aborted as soon as the line limit is passed, nothing of the line is kept,
    and memory is back where it was.
    """
    factory = dispatch_factory(max_line_length=8192)
    protocol, transport = open_connection(factory)
    chunk = b"A" * 65536
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(1024):
            protocol.dataReceived(chunk)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert transport.disconnecting
    assert protocol.framer.buffered == 0
    assert after - before < 256 * 1024
    assert peak - before < 1024 * 1024
    protocol.connectionLost(None)


def test_line_at_the_limit_is_accepted():
    """
    A line of exactly the limit is parsed; one byte more closes.
    """
    factory = dispatch_factory(max_line_length=64)
    protocol, transport = open_connection(factory)
    line = b"ZZZ 1 " + b"x" * (64 - 6)
    protocol.dataReceived(line + b"\n")
    assert take_output(transport) == ["200 1"]
    protocol.dataReceived(line + b"xy\n")
    assert transport.disconnecting
    protocol.connectionLost(None)


def test_command_flood_gets_713_then_close():
    """
    Past the burst, commands are refused with 713 (800 for REA and PRP,
    which change stored settings) without being run; the refusals continue
    for C{flood_strikes} commands, then the connection is closed.  Time
    refills the allowance.
    """
    factory = dispatch_factory(command_rate=1.0, command_burst=3, flood_strikes=3)
    protocol, transport = open_connection(factory)
    protocol.dataReceived(b"VER 1 MSNP7\r\nINF 2\r\nINF 3\r\nINF 4\r\n")
    assert take_output(transport) == ["VER 1 MSNP7", "INF 2 MD5", "INF 3 MD5", "713 4"]
    factory.clock.advance(1)
    protocol.dataReceived(b"INF 5\r\n")
    assert take_output(transport) == ["INF 5 MD5"]
    protocol.dataReceived(b"REA 6 a@b.com x\r\nPRP 7 PHH 1\r\nINF 8\r\n")
    assert take_output(transport) == ["800 6", "800 7", "713 8"]
    assert not transport.disconnecting
    protocol.dataReceived(b"INF 9\r\n")
    assert take_output(transport) == []
    assert transport.disconnecting
    protocol.connectionLost(None)


def test_flood_strikes_reset_when_a_command_gets_through():
    """
    Only refusals in a row count toward the close: a client that slows down
    after a 713 is not punished for it later.
    """
    factory = dispatch_factory(command_rate=1.0, command_burst=1, flood_strikes=2)
    protocol, transport = open_connection(factory)
    for trid in range(1, 6):
        protocol.dataReceived(b"ZZZ %d\r\nZZZ %d\r\n" % (trid, trid + 100))
        assert take_output(transport) == [f"200 {trid}", f"713 {trid + 100}"]
        factory.clock.advance(1)
    assert not transport.disconnecting
    protocol.connectionLost(None)


def test_token_bucket_refills_at_its_rate():
    """
    The bucket holds at most C{burst} and refills at C{rate} per second.
    """
    clock = Clock()
    bucket = TokenBucket(2.0, 4, clock.seconds)
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    clock.advance(1.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.advance(100)
    assert sum(bucket.take() for _ in range(10)) == 4


def test_connections_per_address():
    """
    Past the limit a new connection from the same address is aborted at
    once; other addresses are not affected, and a closed connection frees
    its place.
    """
    factory = dispatch_factory(max_connections_per_address=2)
    first, t1 = open_connection(factory, port=1)
    second, t2 = open_connection(factory, port=2)
    third, t3 = open_connection(factory, port=3)
    assert not t1.disconnecting and not t2.disconnecting
    assert t3.disconnecting and third.session is None
    other, t4 = open_connection(factory, host="10.0.0.2")
    assert not t4.disconnecting
    third.connectionLost(None)
    first.connectionLost(None)
    fourth, t5 = open_connection(factory, port=4)
    assert not t5.disconnecting
    assert factory.connections.count("10.0.0.1") == 2
    for protocol in (second, other, fourth):
        protocol.connectionLost(None)
    assert len(factory.connections) == 0


def test_failed_logins_delay_grows_per_account_and_address():
    """
    The first failures for an account are answered at once; then the delay
    doubles up to its cap.  An address trying many accounts is slowed the
    same way, and old failures are forgotten after the window.
    """
    clock = Clock()
    config = ServerConfig(login_failures_per_account=3, login_failures_per_address=5, login_delay_base=1.0, login_delay_max=8.0)
    throttle = LoginThrottle(config, clock.seconds)
    delays = [throttle.record_failure("x@example.com", "10.0.0.1") for _ in range(8)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 8]
    # Another account from another address starts afresh...
    assert throttle.record_failure("y@example.com", "10.0.0.2") == 0
    # ...but many accounts from one address are slowed too.
    spread = [throttle.record_failure(f"u{i}@example.com", "10.0.0.3") for i in range(7)]
    assert spread == [0, 0, 0, 0, 0, 1, 2]
    clock.advance(config.login_failure_window + 1)
    assert throttle.record_failure("x@example.com", "10.0.0.1") == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_wire_parses_or_refuses_any_line(line):
    """
    Any bytes without a newline either parse into a command or raise
    WireError; nothing else escapes the wire layer.
    """
    try:
        command, length = wire.parse_client_line(line.replace(b"\n", b""), frozenset({"MSG", "QRY"}), 1664)
    except wire.WireError as error:
        assert error.code in (None, 200)
        assert error.trid is None or 0 <= error.trid <= wire.MAX_TRID
    else:
        assert len(command.name) == 3
        assert length is None or 0 <= length <= 1664


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_protocol_survives_any_byte_stream(chunks):
    """
    Arbitrary reads fed to a dispatch connection never raise, every answer
    is a whole CRLF line, and the line buffer never holds more than the
    limit.
    """
    factory = dispatch_factory(max_line_length=512)
    protocol, transport = open_connection(factory)
    for chunk in chunks:
        protocol.dataReceived(chunk)
        assert protocol.framer.buffered <= 512 + 1
    assert transport.value() == b"" or transport.value().endswith(b"\r\n")
    protocol.connectionLost(None)


def test_dispatch_connection_has_a_lease():
    """
    A dispatch connection that says nothing for its lease is closed; any
    line starts the lease again.
    """
    factory = dispatch_factory(dispatch_lease=60.0)
    protocol, transport = open_connection(factory)
    factory.clock.advance(59)
    protocol.dataReceived(b"VER 1 MSNP7\r\n")
    factory.clock.advance(59)
    assert not transport.disconnecting
    factory.clock.advance(1)
    assert transport.disconnecting
    protocol.connectionLost(None)
    assert not factory.clock.getDelayedCalls()


def test_limit_options_reach_the_config():
    """
    Every limit is a C{twistd msnp} option that lands in ServerConfig.
    """
    from msnp.tap import Options, config_from_options

    options = Options()
    options.parseOptions(
        [
            "--max-line-length", "4096", "--max-payload-length", "2048", "--max-connections-per-address", "7",
            "--command-rate", "3", "--command-burst", "9", "--flood-strikes", "4", "--max-outbound-buffer", "65536",
            "--outbound-grace", "0.5", "--notification-lease", "90", "--dispatch-lease", "15", "--max-sb-participants", "12",
            "--login-delay-max", "8", "--max-fl", "150", "--max-al", "20", "--max-bl", "30",
        ]
    )
    config = config_from_options(options)
    assert (config.max_line_length, config.max_payload_length, config.max_connections_per_address) == (4096, 2048, 7)
    assert (config.command_rate, config.command_burst, config.flood_strikes) == (3.0, 9, 4)
    assert (config.max_outbound_buffer, config.outbound_grace) == (65536, 0.5)
    assert (config.notification_lease, config.dispatch_lease, config.max_sb_participants, config.login_delay_max) == (90.0, 15.0, 12, 8.0)
    assert config.list_limits == {"FL": 150, "AL": 20, "BL": 30}
    defaults = config_from_options(Options())
    assert defaults.notification_lease == 20 * 60 and defaults.max_line_length == 8192


def test_passport_checker_refusals_are_slowed_per_account():
    """
    Wrong passwords at the Passport login: the first few refusals come at
    once, later ones only after the account's growing delay; another
    account is not slowed, and a right password never is.
    """
    from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
    from twisted.cred.credentials import UsernamePassword

    from msnp.core.accounts import ThrottledChecker

    clock = Clock()
    config = ServerConfig(login_failures_per_account=2, login_delay_base=1.0)
    inner = InMemoryUsernamePasswordDatabaseDontUse(**{"alice@example.com": b"right"})
    checker = ThrottledChecker(inner, LoginThrottle(config, clock.seconds), clock)

    def attempt(handle: str, password: bytes) -> list:
        outcome: list = []
        checker.requestAvatarId(UsernamePassword(handle.encode(), password)).addBoth(outcome.append)
        return outcome

    for _ in range(2):
        outcome = attempt("alice@example.com", b"wrong")
        assert outcome and outcome[0].check(UnauthorizedLogin)
    for delay in (1, 2):
        outcome = attempt("alice@example.com", b"wrong")
        clock.advance(delay - 0.5)
        assert outcome == []
        clock.advance(0.5)
        assert outcome and outcome[0].check(UnauthorizedLogin)
    outcome = attempt("bob@example.com", b"wrong")
    assert outcome and outcome[0].check(UnauthorizedLogin)
    assert attempt("alice@example.com", b"right") == [b"alice@example.com"]


def test_blank_line_flood_is_closed():
    """
    Blank lines are skipped, but they use up the allowance like commands,
    so a flood of them ends in a close rather than going on for ever.
    """
    factory = dispatch_factory(command_rate=1.0, command_burst=3, flood_strikes=2)
    protocol, transport = open_connection(factory)
    protocol.dataReceived(b"\r\n" * 5)
    assert take_output(transport) == []
    assert not transport.disconnecting
    protocol.dataReceived(b"\r\n")
    assert transport.disconnecting
    protocol.connectionLost(None)


class BacklogTransport(StringTransport):
    """
    A transport whose written bytes stay queued (as on a socket nobody
    reads) until C{drain} is called.
    """

    offset = 0
    _tempDataLen = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dataBuffer = b""
        self.aborted = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self.dataBuffer += data

    def drain(self) -> None:
        self.dataBuffer = b""

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def open_backlogged(factory):
    address = IPv4Address("TCP", "10.0.0.9", 9)
    protocol = factory.buildProtocol(address)
    transport = BacklogTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def test_reader_that_catches_up_within_the_grace_is_kept():
    """
    Over the outbound limit, a client gets the grace period: if the queue
    has drained by then it stays.
    """
    factory = dispatch_factory(max_outbound_buffer=1000, outbound_grace=2.0)
    protocol, transport = open_backlogged(factory)
    protocol.send(b"x" * 1500)
    assert not transport.aborted
    transport.drain()
    factory.clock.advance(2.0)
    assert not transport.aborted
    protocol.connectionLost(None)


def test_reader_still_behind_after_the_grace_is_dropped():
    """
    A client still over the limit when the grace period ends is aborted,
    and nothing more is written to it.
    """
    factory = dispatch_factory(max_outbound_buffer=1000, outbound_grace=2.0)
    protocol, transport = open_backlogged(factory)
    protocol.send(b"x" * 1500)
    factory.clock.advance(1.9)
    assert not transport.aborted
    factory.clock.advance(0.1)
    assert transport.aborted
    written = len(transport.value())
    protocol.send(b"more")
    assert len(transport.value()) == written
    protocol.connectionLost(None)
    assert not factory.clock.getDelayedCalls()


def test_reader_far_behind_is_dropped_at_once():
    """
    Past four times the limit there is no grace.
    """
    factory = dispatch_factory(max_outbound_buffer=1000, outbound_grace=2.0)
    protocol, transport = open_backlogged(factory)
    for _ in range(4):
        protocol.send(b"x" * 1000)
    assert not transport.aborted
    protocol.send(b"x")
    assert transport.aborted
    protocol.connectionLost(None)
    assert not factory.clock.getDelayedCalls()


def test_group_id_taken_meanwhile_is_a_store_refusal(tmp_path):
    """
    A session whose view of the groups is stale (another session of the
    same account just made that group) gets a refusal the session turns
    into an error answer, not an integrity failure from SQLite.
    """
    import pytest

    from msnp.store.sqlite import Database

    from msnp.store.records import GroupIdTaken, StoreError

    db = Database(str(tmp_path / "groups.sqlite"))
    try:
        db.create_account("alice@example.com", "pw", "Alice")
        db.add_group("alice@example.com", 1, "Work")
        with pytest.raises(StoreError) as refused:
            db.add_group("alice@example.com", 1, "Friends")
        assert isinstance(refused.value, GroupIdTaken)
        assert db.load_user("alice@example.com").groups[1] == "Work"
    finally:
        db.close()
