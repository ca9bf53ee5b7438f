"""
C{twistd msnp}: command-line options and the service they build (the
checks made on them before anything starts are in L{msnp.preflight}).
"""

from __future__ import annotations

import os
import socket
import sys

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from msnp.config import ServerConfig
from msnp.control.site import DEFAULT_ADMIN
from msnp.preflight import ROLES, admin_endpoint, check_options, roles_of, sip_settings

log = Logger()

DEFAULT_DB = "msnp.sqlite"
# Twisted listens with a queue of 50 unless told otherwise; a burst of
# logins overflows that and each dropped connection waits a second for its
# SYN to be retried.  The kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = "4096"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run an MSN Messenger service (MSNP2-MSNP18): dispatch, notification and "
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
            "URL redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] of a Redis shared by every process of a cluster: who is "
            "signed in where, presence, switchboard cookies, and delivery between processes (default: in-process). "
            "Or a Sentinel set, redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB] "
            "(Sentinel port 26379 unless given): the primary of SERVICE, followed after a failover.",
            str,
        ],
        ["node-id", None, None, "NAME of this process among the cluster's (default: host name and notification port).", str],
        [
            "node-lease",
            None,
            10.0,
            "Seconds a notification or switchboard node stays live in the cluster without renewing its lease "
            "(renewed every third of it); a node silent that long is reaped, its users shown offline, and no client "
            "is referred to it any more (with --redis).",
            float,
        ],
        [
            "node-sweep",
            None,
            30.0,
            "Seconds between checks that each signed-in user of this node was not replaced by a login on another "
            "node whose OUT OTH did not arrive (with --redis).",
            float,
        ],
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
        [
            "gateway",
            None,
            None,
            "ENDPOINT of the HTTP gateway (/gateway/gateway.dll) for clients that cannot reach the MSNP ports, "
            "e.g. tcp:80 (off when not given).",
            str,
        ],
        [
            "admin",
            None,
            DEFAULT_ADMIN,
            "ENDPOINT of the admin interface (status page at /, Prometheus /metrics, JSON API under /api/), "
            "or 'none'. Beyond the loopback interface it needs --admin-token-file.",
            str,
        ],
        [
            "admin-token-file",
            None,
            None,
            "File holding the admin interface's bearer token (made, mode 0600, when missing). "
            "Given, the token is required on every admin request, on loopback too.",
            str,
        ],
        ["log-format", None, "text", "text (twistd's line shape) or json (one JSON object a line, for log shippers).", str],
        ["challenge-deadline", None, 50.0, "Seconds an MSNP6+ client has to answer a CHL challenge with QRY before it is closed.", float],
        ["rvp", None, None, "ENDPOINT of the RVP (Exchange 2000 Instant Messaging) server, e.g. tcp:80 (off when not given).", str],
        ["rvp-domain", None, None, "DOMAIN whose accounts are RVP principals, at http://RVP-HOST/instmsg/aliases/<local part>.", str],
        ["rvp-host", None, None, "NAME[:PORT] in principal URLs (default --public-host and the port --rvp binds).", str],
    ]
    optFlags = [
        [
            "insecure-passport",
            None,
            "Allow --passport on a plain tcp: endpoint (passwords in clear: only behind a TLS-terminating proxy).",
        ],
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

    def __init__(self):
        super().__init__()
        self["rvp-peer"] = {}

    def opt_rvp_peer(self, value: str) -> None:
        """DOMAIN=URL: where another domain's RVP server is (repeatable; else DNS SRV _rvp._tcp.DOMAIN); its requests are accepted without user credentials from that host's address."""
        from msnp.rvp.service import parse_peer

        try:
            domain, url = parse_peer(value)
        except ValueError as error:
            raise usage.UsageError(f"--rvp-peer: {error}")
        self["rvp-peer"][domain] = url

    # SIP federation (msnp/sip/, protocol-notes/sip.md); off by default.
    def opt_sip(self, value: str) -> None:
        """ENDPOINT (tcp:5060 or ssl:5061:privateKey=KEY:certKey=CERT) where the SIP federation edge listens (repeatable)."""
        self.setdefault("sip", []).append(value)

    def opt_sip_udp(self, value: str) -> None:
        """PORT[:interface=ADDR] of the SIP edge's UDP socket (default interface 127.0.0.1)."""
        self["sip-udp"] = value

    def opt_sip_domain(self, value: str) -> None:
        """DOMAIN whose accounts SIP peers reach as sip:user@DOMAIN (repeatable; needed with --sip/--sip-udp)."""
        self.setdefault("sip-domain", []).append(value)

    def opt_sip_ca(self, value: str) -> None:
        """PEM file of the authorities whose certificates federated peers must present over TLS; needed with an ssl: --sip listener, whose certificate this server presents to peers."""
        self["sip-ca"] = value

    def opt_sip_peer(self, value: str) -> None:
        """DOMAIN=sip:HOST[:PORT][;transport=udp|tcp|tls][;im=session][;route=contact], or DOMAIN alone for DNS SRV _sip._tcp: a federated SIP domain, whose users may be on the lists (repeatable). im=session: IMs in INVITE sessions (OCS); route=contact: address users at the Contact they last sent (a peer that is one user agent)."""
        self.setdefault("sip-peer", []).append(value)


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
        gateway_port=_port_from_endpoint(options["gateway"], 0) if options["gateway"] else 0,
        challenge_deadline=options["challenge-deadline"],
        md5_login=not options["no-md5"],
        supported_dialects=tuple(range(8, 19)) if options["no-md5"] else tuple(range(2, 19)),
        list_limits={lst: options["max-" + lst.lower()] for lst in ("FL", "AL", "BL")},
        **{field: options[option] for option, field, _, _ in Options.LIMITS if field},
    )


class TwistdService(MultiService):
    """
    What C{twistd msnp} runs: the server, with a failed start turned into
    one line on standard error and a non-zero exit (nothing left
    listening), and with C{--log-format json} the JSON log observer.
    """

    def __init__(self, messenger, log_format: str = "text", twistd_options=None):
        super().__init__()
        self.messenger = messenger
        messenger.setServiceParent(self)
        self._log_format = log_format
        self._twistd_options = twistd_options or {}

    def setServiceParent(self, parent):
        # twistd puts the service in an Application, whose ILogObserver
        # component (when set) is the observer twistd starts logging to,
        # unless --logger names another; syslog stays twistd's own.
        if hasattr(parent, "setComponent") and not self._twistd_options.get("syslog"):
            if self._log_format == "json":
                parent.setComponent(ILogObserver, json_log_observer(self._twistd_options))
            elif self._twistd_options:
                parent.setComponent(ILogObserver, text_log_observer(self._twistd_options))
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        self._guarded(super().privilegedStartService)

    def startService(self) -> None:
        self._guarded(super().startService)

    def _guarded(self, start) -> None:
        from msnp.service import StartFailed

        try:
            start()
        except StartFailed as failure:
            self._remove_pidfile()
            # twistd writes it to the log (standard error is logged too)
            # or, when logging has not begun, to standard error.
            raise SystemExit(f"twistd msnp: {failure}")

    def _remove_pidfile(self) -> None:
        # twistd wrote it before starting the service and removes it only
        # on an exception, not on SystemExit.
        path = self._twistd_options.get("pidfile")
        try:
            with open(path) as pidfile:
                if pidfile.read().strip() == str(os.getpid()):
                    os.unlink(path)
        except (OSError, TypeError):
            pass


def _log_stream(twistd_options):
    """
    Where twistd would write its log: standard output with C{-n} and no
    C{--logfile} (or C{--logfile -}), else the log file, rotated by size
    and on SIGUSR1 as twistd's own is.
    """
    from twisted.python.logfile import LogFile

    name = twistd_options.get("logfile")
    if name == "-" or (not name and twistd_options.get("nodaemon")):
        return sys.stdout
    stream = LogFile.fromFullPath(name or "twistd.log")
    import signal

    if not signal.getsignal(signal.SIGUSR1):

        def rotate(number, frame):
            from twisted.internet import reactor

            reactor.callFromThread(stream.rotate)

        signal.signal(signal.SIGUSR1, rotate)
    return stream


def json_log_observer(twistd_options):
    """
    twisted.logger's JSON observer, one event a line, writing where twistd
    would have written its text lines.
    """
    from twisted.logger import jsonFileLogObserver

    return jsonFileLogObserver(_log_stream(twistd_options), recordSeparator="")


def text_log_observer(twistd_options):
    """
    twistd's text lines, from the lean observer (L{msnp.logs}): the same
    lines where twistd would write them, at a fraction of the cost (twistd's
    own formats the time of every event; at a few hundred logins a second
    that was a fifth of the server's CPU).
    """
    from msnp.logs import TextLineObserver

    return TextLineObserver(_log_stream(twistd_options))


def makeService(options):
    from msnp.control.api import database_identity
    from msnp.control.site import TokenFileError, load_or_create_token
    from msnp.service import MessengerService

    try:
        warnings = check_options(options)
    except usage.UsageError as error:
        raise SystemExit(f"twistd msnp: {error}")
    token = None
    if options["admin-token-file"]:
        try:
            token, made = load_or_create_token(options["admin-token-file"])
        except TokenFileError as error:
            raise SystemExit(f"twistd msnp: --admin-token-file: {error}")
        if made:
            log.info("admin token written to {path} (mode 0600)", path=options["admin-token-file"])
        elif os.stat(options["admin-token-file"]).st_mode & 0o077:
            warnings.append(f"--admin-token-file {options['admin-token-file']} can be read by other users: chmod 600 it")
    for warning in warnings:
        log.warn("WARNING: {warning}", warning=warning)

    roles = roles_of(options)
    endpoints = {role: options[role] if role in roles else None for role in ROLES}
    endpoints["passport"] = options["passport"]
    endpoints["gateway"] = options["gateway"]
    endpoints["admin"] = admin_endpoint(options)
    config = config_from_options(options)
    store = directory = None
    if options["postgres"]:
        from msnp.store.postgres import PostgresStore

        store = PostgresStore(options["postgres"])
    node = options["node-id"] or f"{socket.gethostname()}:{config.notification_port}"
    if options["redis"]:
        # Imported only now: its client takes Twisted's reactor on import.
        from msnp.directory.redis import RedisDirectory

        directory = RedisDirectory(options["redis"], node, lease=options["node-lease"], sweep=options["node-sweep"])
    else:
        from msnp.directory.local import LocalDirectory

        directory = LocalDirectory(node)
    messenger = MessengerService(
        config, options["db"], endpoints, store=store, directory=directory, admin_token=token, sip_settings=sip_settings(options)
    )
    if options["postgres"]:
        messenger.database = database_identity(None, options["postgres"])
    if options["rvp"]:
        _add_rvp(messenger, options)
    parent = getattr(options, "parent", None)
    return TwistdService(messenger, options["log-format"], parent if parent is not None else {})


def _add_rvp(service, options) -> None:
    from msnp.rvp.bridge import MessengerHome
    from msnp.rvp.service import RvpService

    host = options["rvp-host"] or options["public-host"]
    home = MessengerHome(service.messenger, service.switchboard)
    rvp = RvpService(service.reactor, options["rvp"], home, options["rvp-domain"], host, options["rvp-peer"])
    rvp.setServiceParent(service)
