"""
C{twistd msnp}: command-line options and the service they build.
"""

from __future__ import annotations

from twisted.python import usage

from msnp.config import ServerConfig

DEFAULT_DB = "msnp.sqlite"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run an MSN Messenger service (MSNP2-MSNP7): dispatch, notification and "
        "switchboard servers over one SQLite store. ENDPOINT is a Twisted endpoint "
        "string (tcp:PORT:interface=ADDR, ssl:..., unix:PATH, systemd:...)."
    )
    optParameters = [
        ["dispatch", None, "tcp:1863:interface=127.0.0.1", "Dispatch server endpoint.", str],
        ["notification", None, "tcp:1864:interface=127.0.0.1", "Notification server endpoint.", str],
        ["switchboard", None, "tcp:1865:interface=127.0.0.1", "Switchboard server endpoint.", str],
        ["public-host", None, "127.0.0.1", "Address written into XFR and RNG replies.", str],
        ["db", None, DEFAULT_DB, "SQLite database file.", str],
        ["web-url", None, "", "Base URL answered to URL and CVR (default http://PUBLIC-HOST/).", str],
        ["cookie-lifetime", None, 120.0, "Seconds a switchboard cookie stays valid.", float],
        ["sb-idle-timeout", None, 300.0, "Seconds of silence before a switchboard participant is removed.", float],
    ]


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
        sb_idle_timeout=options["sb-idle-timeout"],
    )


def makeService(options):
    from msnp.service import MessengerService

    endpoints = {
        "dispatch": options["dispatch"],
        "notification": options["notification"],
        "switchboard": options["switchboard"],
    }
    return MessengerService(config_from_options(options), options["db"], endpoints)
