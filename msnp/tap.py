"""
C{twistd msnp}: command-line options and the service they build.
"""

from __future__ import annotations

import os
import re
import socket

from twisted.python import usage

from msnp.config import ServerConfig

DEFAULT_DB = "msnp.sqlite"
ROLES = ("dispatch", "notification", "switchboard")
# Twisted listens with a queue of 50 unless told otherwise; a burst of
# logins overflows that and each dropped connection waits a second for its
# SYN to be retried.  The kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = "4096"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run an MSN Messenger service (MSNP2-MSNP12): dispatch, notification and "
        "switchboard servers over one SQLite store (or PostgreSQL with --postgres), and with --passport the HTTPS "
        "Passport login MSNP8+ clients need. ENDPOINT is a Twisted endpoint "
        "string (tcp:PORT:interface=ADDR, ssl:..., unix:PATH, systemd:...)."
    )
    optParameters = [
        [
            "dispatch",
            None,
            "tcp:1863:interface=127.0.0.1:backlog=" + LISTEN_BACKLOG,
            "ENDPOINT the dispatch server listens on (where clients first connect).",
            str,
        ],
        ["notification", None, "tcp:1864:interface=127.0.0.1:backlog=" + LISTEN_BACKLOG, "ENDPOINT the notification server listens on.", str],
        ["switchboard", None, "tcp:1865:interface=127.0.0.1:backlog=" + LISTEN_BACKLOG, "ENDPOINT the switchboard server listens on.", str],
        [
            "public-host",
            None,
            "127.0.0.1",
            "Host name or address clients reach this server by; written into XFR and RNG replies.",
            str,
        ],
        ["db", None, DEFAULT_DB, "SQLite database of accounts and lists (created if missing; manage it with msnp-admin).", str],
        [
            "postgres",
            None,
            None,
            "CONNINFO: keep accounts and lists in PostgreSQL instead of --db, e.g. "
            "'host=db.example.net dbname=msnp user=msnp' (a libpq connection string; the schema is created "
            "if missing). Every process of a cluster names the same database.",
            str,
        ],
        [
            "redis",
            None,
            None,
            "URL redis://[:PASSWORD@]HOST[:PORT][/DB] of a Redis shared by every process of a cluster: who is "
            "signed in where, presence, switchboard cookies, and delivery between processes (default: in-process).",
            str,
        ],
        ["node-id", None, None, "NAME of this process among the cluster's (default: host name and notification port).", str],
        [
            "roles",
            None,
            ",".join(ROLES),
            "Which servers this process runs, comma-separated, of " + ", ".join(ROLES) + ".",
            str,
        ],
        ["web-url", None, "", "Base URL answered to URL and CVR (default http://PUBLIC-HOST/).", str],
        ["cookie-lifetime", None, 120.0, "Seconds a switchboard cookie (from XFR SB or RNG) stays valid.", float],
        ["sb-auth-timeout", None, 60.0, "Seconds a switchboard connection has to log in (USR or ANS) before it is closed.", float],
        ["sb-idle-timeout", None, 300.0, "Seconds of silence before a switchboard participant is removed.", float],
        [
            "passport",
            None,
            None,
            "ENDPOINT of the HTTPS Passport login MSNP8+ clients need, e.g. "
            "ssl:1443:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem (off when not given).",
            str,
        ],
        ["ticket-lifetime", None, 300.0, "Seconds a Passport ticket may be used to log in.", float],
        ["challenge-deadline", None, 50.0, "Seconds an MSNP6+ client has to answer a CHL challenge with QRY before it is closed.", float],
    ]
    optFlags = [
        [
            "no-md5",
            None,
            "Refuse MD5 logins: MSNP2-MSNP7 clients cannot log in and those dialects are not offered "
            "(then `msnp-admin md5 purge` drops the stored MD5 password-equivalents).",
        ],
    ]
    # Limits against broken and hostile clients: (option, ServerConfig field, type, help).
    LIMITS = [
        ("max-line-length", "max_line_length", int, "Longest command line in bytes; a longer one closes the connection."),
        ("max-payload-length", "max_payload_length", int, "Largest payload of a notification command in bytes."),
        ("max-connections-per-address", "max_connections_per_address", int, "Open connections per source address and role (0: no limit)."),
        ("command-rate", "command_rate", float, "Commands per second a connection may send, sustained."),
        ("command-burst", "command_burst", int, "Commands a connection may send at once before the rate applies."),
        ("flood-strikes", "flood_strikes", int, "Commands refused with 713/800 in a row before the connection is closed."),
        ("max-outbound-buffer", "max_outbound_buffer", int, "Bytes queued to a client that stays behind for the grace period (or four times that at any moment) before it is dropped."),
        ("outbound-grace", "outbound_grace", float, "Seconds a client may stay over the outbound buffer limit."),
        ("notification-lease", "notification_lease", float, "Seconds a silent notification connection is kept."),
        ("dispatch-lease", "dispatch_lease", float, "Seconds a silent dispatch connection is kept."),
        ("max-sb-participants", "max_sb_participants", int, "Participants in one switchboard session."),
        ("max-sb-payload", "max_sb_payload", int, "Largest switchboard MSG payload in bytes."),
        ("sb-message-rate", "sb_message_rate", float, "Switchboard MSG per second a participant may send, sustained (never below --command-rate)."),
        ("sb-message-burst", "sb_message_burst", int, "Switchboard MSG a participant may send at once before that rate applies."),
        ("challenge-lifetime", "challenge_lifetime", float, "Seconds the challenge of an MD5 login (USR MD5 S) may be answered."),
        ("login-failures-per-account", "login_failures_per_account", int, "Failed logins of one account answered without delay."),
        ("login-failures-per-address", "login_failures_per_address", int, "Failed logins from one address answered without delay."),
        ("login-failure-window", "login_failure_window", float, "Seconds a failed login counts towards the delay."),
        ("login-delay-max", "login_delay_max", float, "Longest delay in seconds before answering a repeated failed login."),
        ("shutdown-grace", "shutdown_grace", float, "Seconds clients get to leave after OUT SSD on shutdown before they are cut off."),
        ("max-fl", None, int, "Entries on a forward list (FL)."),
        ("max-al", None, int, "Entries on an allow list (AL)."),
        ("max-bl", None, int, "Entries on a block list (BL)."),
    ]
    _defaults = ServerConfig()
    for _option, _field, _type, _help in LIMITS:
        _value = getattr(_defaults, _field) if _field else _defaults.list_limits[_option[-2:].upper()]
        optParameters.append([_option, None, _value, _help, _type])
    del _defaults, _option, _field, _type, _help, _value


def check_options(options) -> None:
    """
    Refuse, before anything listens, settings that would start a server
    nobody can log in to or end in a traceback.
    """
    if options["no-md5"] and not options["passport"]:
        raise usage.UsageError("--no-md5 without --passport leaves no way to log in")
    roles = _roles(options)
    if not roles:
        raise usage.UsageError("--roles: name at least one of " + ", ".join(ROLES))
    if options["redis"]:
        _check_redis(options["redis"])
    if options["postgres"]:
        _check_postgres(options["postgres"])
    else:
        directory = os.path.dirname(os.path.abspath(options["db"]))
        if not os.path.isdir(directory):
            raise usage.UsageError(f"--db: no such directory: {directory}")
        _check_database(options["db"])
    for role in ("dispatch", "notification", "switchboard", "passport"):
        for path in _endpoint_files(options[role] or ""):
            if not os.path.isfile(path):
                raise usage.UsageError(f"--{role}: no such file: {path}")


def _check_database(path: str) -> None:
    """
    Open (creating if need be) and close the database once, so that an
    unreadable or foreign file stops the start instead of every login.
    """
    import sqlite3

    from msnp.store.sqlite import Database

    try:
        Database(path).close()
    except sqlite3.Error as error:
        raise usage.UsageError(f"--db: cannot use {path}: {error}")


def _roles(options) -> list[str]:
    roles = [role.strip() for role in options["roles"].split(",") if role.strip()]
    for role in roles:
        if role not in ROLES:
            raise usage.UsageError(f"--roles: no role {role!r} (roles: {', '.join(ROLES)})")
    return roles


def _check_redis(url: str) -> None:
    """
    Parse the URL and ask the server for a PONG, so that a wrong URL or an
    unreachable Redis stops the start.
    """
    import socket

    from msnp.directory.redisurl import parse_redis_url

    try:
        settings = parse_redis_url(url)
    except ValueError as error:
        raise usage.UsageError(f"--redis: {error}")
    commands = []
    if settings["password"] is not None:
        commands.append(["AUTH", *([settings["username"]] if settings["username"] else []), settings["password"]])
    commands += [["SELECT", str(settings["dbid"])], ["PING"]]
    request = b"".join(
        b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        for words in commands
    )
    try:
        with socket.create_connection((settings["host"], settings["port"]), timeout=10) as connection:
            connection.sendall(request)
            replies = b""
            while replies.count(b"\r\n") < len(commands):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                replies += chunk
    except OSError as error:
        raise usage.UsageError(f"--redis: cannot reach {settings['host']}:{settings['port']}: {error}")
    lines = replies.split(b"\r\n")[: len(commands)]
    refused = [line.decode("utf-8", "replace") for line in lines if not line.startswith(b"+")]
    if refused or len(lines) < len(commands):
        raise usage.UsageError(f"--redis: the server refused: {'; '.join(refused) or 'no answer'}")


def _check_postgres(conninfo: str) -> None:
    """
    Connect once (creating the schema if need be), so that a wrong
    connection string or an unreachable database stops the start.
    """
    import psycopg

    from msnp.store.postgres import PostgresDatabase

    try:
        PostgresDatabase.open(conninfo).close()
    except psycopg.Error as error:
        raise usage.UsageError(f"--postgres: cannot use the database: {str(error).strip()}")


def _endpoint_files(description: str) -> list[str]:
    """
    The key and certificate files an ssl: endpoint description names.
    """
    if not description.startswith("ssl:"):
        return []
    # Twisted escapes a colon inside a value as a backslash-colon.
    named = dict(part.partition("=")[::2] for part in re.split(r"(?<!\\):", description))
    named.setdefault("privateKey", "server.pem")  # Twisted's default
    keys = ("privateKey", "certKey", "extraCertChain", "dhParameters")
    return [named[key].replace("\\:", ":") for key in keys if named.get(key)]


def _port_from_endpoint(description: str, default: int) -> int:
    parts = description.split(":")
    if len(parts) >= 2 and parts[0] in ("tcp", "ssl", "tcp6") and parts[1].isdigit():
        return int(parts[1])
    for part in parts[1:]:
        if part.startswith("port=") and part[5:].isdigit():
            return int(part[5:])
    return default


def config_from_options(options) -> ServerConfig:
    return ServerConfig(
        public_host=options["public-host"],
        dispatch_port=_port_from_endpoint(options["dispatch"], 1863),
        notification_port=_port_from_endpoint(options["notification"], 1864),
        switchboard_port=_port_from_endpoint(options["switchboard"], 1865),
        web_url=options["web-url"],
        cookie_lifetime=options["cookie-lifetime"],
        sb_auth_timeout=options["sb-auth-timeout"],
        sb_idle_timeout=options["sb-idle-timeout"],
        passport_port=_port_from_endpoint(options["passport"], 0) if options["passport"] else 0,
        passport_ticket_lifetime=options["ticket-lifetime"],
        challenge_deadline=options["challenge-deadline"],
        md5_login=not options["no-md5"],
        supported_dialects=tuple(range(8, 13)) if options["no-md5"] else tuple(range(2, 13)),
        list_limits={lst: options["max-" + lst.lower()] for lst in ("FL", "AL", "BL")},
        **{field: options[option] for option, field, _, _ in Options.LIMITS if field},
    )


def makeService(options):
    from msnp.service import MessengerService

    try:
        check_options(options)
    except usage.UsageError as error:
        raise SystemExit(f"twistd msnp: {error}")

    roles = _roles(options)
    endpoints = {role: options[role] if role in roles else None for role in ROLES}
    endpoints["passport"] = options["passport"]
    config = config_from_options(options)
    store = directory = None
    if options["postgres"]:
        from msnp.store.postgres import PostgresStore

        store = PostgresStore(options["postgres"])
    node = options["node-id"] or f"{socket.gethostname()}:{config.notification_port}"
    if options["redis"]:
        # Imported only now: its client takes Twisted's reactor on import.
        from msnp.directory.redis import RedisDirectory

        directory = RedisDirectory(options["redis"], node)
    else:
        from msnp.directory.local import LocalDirectory

        directory = LocalDirectory(node)
    return MessengerService(config, options["db"], endpoints, store=store, directory=directory)
