"""
Operator options of `twistd msnp`: each reaches ServerConfig, and the
switchboard login deadline follows --sb-auth-timeout.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msnp.core.messenger import Messenger
from msnp.directory.local import LocalDirectory
from msnp.msn.switchboard import SwitchboardServer
from msnp.tap import Options, config_from_options


def parsed(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return config_from_options(options)


def test_defaults_match_the_server_config():
    """
    With no options the config is the documented default, and the
    switchboard login deadline is 60 s (issue 3).
    """
    config = parsed()
    assert config.sb_auth_timeout == 60.0
    assert config.md5_login and config.supported_dialects == tuple(range(2, 19))


def test_operator_options_reach_the_config():
    config = parsed(
        "--public-host", "chat.example.net",
        "--dispatch", "tcp:2863", "--notification", "tcp:2864", "--switchboard", "tcp:2865",
        "--passport", "ssl:2443:privateKey=key.pem:certKey=cert.pem",
        "--cookie-lifetime", "30", "--sb-auth-timeout", "7.5", "--sb-idle-timeout", "90",
        "--ticket-lifetime", "45", "--challenge-deadline", "20", "--challenge-lifetime", "40",
        "--max-sb-payload", "4096", "--sb-message-rate", "250", "--sb-message-burst", "1000", "--login-failures-per-account", "2", "--login-failures-per-address", "6",
        "--login-failure-window", "120", "--shutdown-grace", "1.5", "--no-md5",
    )
    assert config.public_host == "chat.example.net"
    assert (config.dispatch_port, config.notification_port, config.switchboard_port, config.passport_port) == (2863, 2864, 2865, 2443)
    assert (config.cookie_lifetime, config.sb_auth_timeout, config.sb_idle_timeout) == (30.0, 7.5, 90.0)
    assert (config.passport_ticket_lifetime, config.challenge_deadline, config.challenge_lifetime) == (45.0, 20.0, 40.0)
    assert (config.max_sb_payload, config.sb_message_rate, config.sb_message_burst) == (4096, 250.0, 1000)
    assert (config.login_failures_per_account, config.login_failures_per_address, config.login_failure_window) == (2, 6, 120.0)
    assert config.shutdown_grace == 1.5
    assert not config.md5_login and config.supported_dialects == tuple(range(8, 19))


def test_silent_switchboard_connection_is_closed_after_sb_auth_timeout():
    """
    A switchboard connection that never logs in is closed when the
    configured deadline passes, not before.
    """
    clock = Clock()
    config = parsed("--sb-auth-timeout", "5")
    server = SwitchboardServer(config, Messenger(None, LocalDirectory(), clock, config.list_limits, config.max_groups), clock)
    protocol = server.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    protocol.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_settings_nobody_could_use_are_refused(tmp_path):
    """
    --no-md5 without --passport, a --db in a missing directory or not an
    SQLite database, and an ssl: endpoint naming a missing key or
    certificate are usage errors.
    """
    from twisted.python import usage

    from msnp.tap import check_options

    from msnp.devcert import write_self_signed

    key, cert, _ = write_self_signed(tmp_path)
    db = str(tmp_path / "msnp.sqlite")
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are not the accounts you are looking for\n" * 20)
    passport = f"ssl:1443:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    check_options(parsed_options("--db", db, "--no-md5", "--passport", passport))
    for argv, message in (
        (["--db", db, "--no-md5"], "--no-md5 without --passport leaves no way to log in"),
        (["--db", str(tmp_path / "missing" / "msnp.sqlite")], f"--db: no such directory: {tmp_path / 'missing'}"),
        (["--db", str(not_a_database)], f"--db: cannot use {not_a_database}: file is not a database"),
        (["--db", db, "--passport", f"ssl:1443:privateKey={tmp_path / 'nokey.pem'}:certKey={cert}"], f"--passport: no such file: {tmp_path / 'nokey.pem'}"),
        (["--db", db, "--dispatch", f"ssl:1863:privateKey={key}:certKey={tmp_path / 'nocert.pem'}"], f"--dispatch: no such file: {tmp_path / 'nocert.pem'}"),
    ):
        try:
            check_options(parsed_options(*argv))
        except usage.UsageError as error:
            assert str(error) == message
        else:
            raise AssertionError(f"accepted {argv}")


def parsed_options(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options
