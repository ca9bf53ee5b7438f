"""
Checks made on C{twistd msnp}'s options before anything listens or twistd
forks: settings nobody could log in with, that would give passwords or the
admin interface away, or that would only fail later (an endpoint that
cannot be parsed, a key that cannot be read, a database, Redis or
PostgreSQL out of reach).  Each refusal is a C{usage.UsageError} naming
the option, which twistd prints as one line.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from twisted.python import usage

from msnp.control.site import listens_beyond_loopback, listens_on_every_address

ROLES = ("dispatch", "notification", "switchboard")


def sip_settings(options):
    """
    The SIP edge's settings from the --sip* options (disabled when none).
    """
    from msnp.sip.options import SipOptionError, settings_from_options

    try:
        return settings_from_options(
            options.get("sip", []),
            options.get("sip-udp"),
            options.get("sip-domain", []),
            options.get("sip-peer", []),
            options["public-host"],
            options.get("sip-ca"),
        )
    except SipOptionError as error:
        raise usage.UsageError(str(error))


def admin_endpoint(options) -> Optional[str]:
    value = options["admin"]
    return None if not value or value.lower() == "none" else value


def check_options(options) -> list[str]:
    """
    Refuse, before anything listens, settings that would start a server
    nobody can log in to, one that gives away passwords or its admin
    interface, or one that would end in a traceback.  Returns the warnings
    to log about settings that are allowed but risky.
    """
    if options["no-md5"] and not options["passport"]:
        raise usage.UsageError("--no-md5 without --passport leaves no way to log in")
    roles = roles_of(options)
    if not roles:
        raise usage.UsageError("--roles: name at least one of " + ", ".join(ROLES))
    if "switchboard" not in roles and (options["rvp"] or options.get("sip") or options.get("sip-udp")):
        # Their conversations live in this process's switchboard, and the
        # RNG they send names its address.
        raise usage.UsageError("--rvp and --sip need the switchboard role in the same process: add it to --roles")
    if options["log-format"] not in ("text", "json"):
        raise usage.UsageError(f"--log-format: 'text' or 'json', not {options['log-format']!r}")
    if options["redis"]:
        _check_redis(options["redis"])
    if not 0.3 <= options["node-lease"] <= 3600:
        raise usage.UsageError("--node-lease: between 0.3 and 3600 seconds")
    if not 0.1 <= options["node-sweep"] <= 86400:
        raise usage.UsageError("--node-sweep: between 0.1 and 86400 seconds")
    if options["postgres"]:
        _check_postgres(options["postgres"])
    else:
        directory = os.path.dirname(os.path.abspath(options["db"]))
        if not os.path.isdir(directory):
            raise usage.UsageError(f"--db: no such directory: {directory}")
        _check_database(options["db"])
    endpoints = {role: options[role] if role in roles else None for role in ROLES}
    endpoints["passport"] = options["passport"]
    endpoints["gateway"] = options["gateway"]
    endpoints["admin"] = admin_endpoint(options)
    for role, description in endpoints.items():
        if description:
            _check_endpoint(role, description)
    passport = endpoints["passport"]
    if passport and passport.split(":", 1)[0] in ("tcp", "tcp6") and not options["insecure-passport"]:
        raise usage.UsageError(
            "--passport: a plain tcp: endpoint would carry passwords in clear; use ssl: "
            "(or --insecure-passport behind a TLS-terminating proxy)"
        )
    admin = endpoints["admin"]
    if admin and listens_beyond_loopback(admin) and not options["admin-token-file"]:
        raise usage.UsageError(f"--admin: {admin} is reachable beyond the loopback interface; give --admin-token-file")
    if options["rvp"]:
        if not options["rvp-domain"]:
            raise usage.UsageError("--rvp needs --rvp-domain (whose accounts are RVP principals)")
        _check_endpoint("rvp", options["rvp"])
    if options["rvp-host"]:
        from msnp.rvp.service import parse_host

        try:
            parse_host(options["rvp-host"])
        except ValueError as error:
            raise usage.UsageError(f"--rvp-host: {error}")
    sip = sip_settings(options)
    for description in sip.stream_endpoints:
        _check_endpoint("sip", description)
    if sip.tls_ca:
        _check_sip_tls(sip)
    warnings = []
    if not options["no-md5"]:
        exposed = [
            role for role in ("dispatch", "notification") if endpoints[role] and listens_on_every_address(endpoints[role])
        ]
        if exposed:
            warnings.append(
                f"MD5 logins are enabled and {' and '.join('--' + role for role in exposed)} listen on every address: "
                "MD5 logins need a password-equivalent on the server and are open to offline guessing from what "
                "crosses the network; consider --no-md5 (see protocol-notes/passwords.md)"
            )
    if passport and options["insecure-passport"] and passport.split(":", 1)[0] in ("tcp", "tcp6"):
        warnings.append(f"--passport on {passport} with --insecure-passport: Passport passwords arrive in clear here")
    return warnings


def _check_endpoint(role: str, description: str) -> None:
    """
    Parse an endpoint description as Twisted will (without listening), so
    a typo or an unreadable key stops the start with one line.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    for key, path in _endpoint_files(description, named=True):
        if not os.path.isfile(path):
            raise usage.UsageError(f"--{role}: no such file: {path}")
        try:
            with open(path, "rb") as pem:
                data = pem.read()
        except OSError as error:
            raise usage.UsageError(f"--{role}: cannot read {path}: {error.strerror}")
        problem = _pem_problem(key, data)
        if problem:
            raise usage.UsageError(f"--{role}: {key} {path}: {problem}")
    try:
        serverFromString(reactor, description)
    except Exception as error:
        if description.startswith("ssl:"):
            reason = f"cannot load the key or certificate of {description}: {_describe(error)}"
        else:
            reason = f"not a usable endpoint: {description} ({_describe(error)})"
        raise usage.UsageError(f"--{role}: {reason}")


def _describe(error: Exception) -> str:
    text = str(error).strip()
    if not text or text.startswith("[("):
        # pyOpenSSL's errors are lists of (library, function, reason).
        reasons = [part[-1] for part in getattr(error, "args", [[]])[0] if isinstance(part, tuple)]
        text = "; ".join(reasons) or type(error).__name__
    return text


def _check_sip_tls(settings) -> None:
    from msnp.sip.tls import FederationTls, TlsSettingError, parse_ssl_description

    if not os.path.isfile(settings.tls_ca):
        raise usage.UsageError(f"--sip-ca: no such file: {settings.tls_ca}")
    for description in settings.stream_endpoints:
        if description.startswith("ssl:"):
            listener = parse_ssl_description(description)
            try:
                FederationTls(listener.private_key, listener.certificate_path, settings.tls_ca)
            except TlsSettingError as error:
                raise usage.UsageError(f"--sip/--sip-ca: {error}")


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


def roles_of(options) -> list[str]:
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
    if settings["sentinels"]:
        settings["host"], settings["port"] = _primary_of(settings)
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


def _primary_of(settings: dict) -> tuple[str, int]:
    """
    The primary's address, from the first Sentinel that names it.
    """
    import socket

    words = ["SENTINEL", "get-master-addr-by-name", settings["service"]]
    request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
    problems = []
    for host, port in settings["sentinels"]:
        try:
            with socket.create_connection((host, port), timeout=10) as connection:
                connection.sendall(request)
                reply = b""
                # *2 $len host $len port: five lines; a null or an error: one.
                while not (reply.startswith((b"-", b"*-1", b"$-1")) and reply.endswith(b"\r\n")) and reply.count(b"\r\n") < 5:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as error:
            problems.append(f"{host}:{port}: {error}")
            continue
        lines = reply.split(b"\r\n")
        if reply.startswith(b"*2") and len(lines) >= 5 and lines[4].isdigit():
            return lines[2].decode("utf-8", "replace"), int(lines[4])
        problems.append(f"{host}:{port} does not know {settings['service']}: {lines[0].decode('utf-8', 'replace')}")
    raise usage.UsageError(f"--redis: no Sentinel names the primary of {settings['service']}: {'; '.join(problems)}")


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


def _endpoint_files(description: str, named: bool = False) -> list:
    """
    The key and certificate files an ssl: endpoint description names
    (with C{named}, as (parameter, path) pairs).
    """
    if not description.startswith("ssl:"):
        return []
    # Twisted escapes a colon inside a value as a backslash-colon.
    parameters = dict(part.partition("=")[::2] for part in re.split(r"(?<!\\):", description))
    parameters.setdefault("privateKey", "server.pem")  # Twisted's default
    keys = ("privateKey", "certKey", "extraCertChain", "dhParameters")
    files = [(key, parameters[key].replace("\\:", ":")) for key in keys if parameters.get(key)]
    return files if named else [path for _, path in files]


def _pem_problem(parameter: str, data: bytes) -> Optional[str]:
    """
    What is wrong with the PEM file given as C{parameter}, or None.  The
    private key may sit in the certificate file (Twisted reads certKey
    from privateKey when it is not given).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if parameter == "privateKey":
        try:
            serialization.load_pem_private_key(data, password=None)
        except TypeError:
            return "the private key is encrypted (a passphrase cannot be given)"
        except Exception:
            return "not a readable PEM private key"
    elif parameter in ("certKey", "extraCertChain"):
        try:
            x509.load_pem_x509_certificate(data)
        except Exception:
            return "not a readable PEM certificate"
    return None
