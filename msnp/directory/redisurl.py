"""
The Redis URL of --redis, read without importing a Redis client (which
would take Twisted's reactor on import).

Two forms:

  redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
      one Redis server (port 6379 unless given);
  redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]
      the primary of SERVICE, as a set of Sentinels names it (each
      Sentinel's port 26379 unless given).  The user and password are the
      Redis servers'; the Sentinels are asked without.  This is the form
      of the Redis-Sentinel-Url package for redis-py (also read by RedisVL
      and Prefect).

An IPv6 host is written in brackets: C{[::1]:26379}.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

REDIS_PORT = 6379
SENTINEL_PORT = 26379
SENTINEL_SCHEME = "redis+sentinel"

URL_FORMS = (
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
    "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]"
)


def parse_redis_url(url: str) -> dict:
    """
    The connection settings of a C{redis://} or C{redis+sentinel://} URL:
    host, port, dbid, password, username, and for a Sentinel set
    C{sentinels} (a list of (host, port)) and C{service}; C{sentinels} is
    None for a single server.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"{url} has a query or fragment: not a {URL_FORMS} URL")
    scheme = parts.scheme.lower()
    if scheme == SENTINEL_SCHEME:
        return _parse_sentinel_url(url, parts)
    try:
        port = parts.port or REDIS_PORT
    except ValueError:
        raise ValueError(f"the port in {url} is not a number")
    if scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a {URL_FORMS} URL: {url}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database in {url} is not a number")
    return {
        "host": parts.hostname,
        "port": port,
        "dbid": int(path) if path else 0,
        "password": unquote(parts.password) if parts.password else None,
        "username": unquote(parts.username) if parts.username else None,
        "sentinels": None,
        "service": None,
    }


def _parse_sentinel_url(url: str, parts) -> dict:
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = None, None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = [_host_port(item, url) for item in hosts.split(",")]
    path = parts.path.split("/")[1:]
    if not path or not path[0]:
        raise ValueError(f"{url} names no Sentinel service: redis+sentinel://HOST[:PORT][,...]/SERVICE[/DB]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"the database in {url} is not a number")
    return {
        "host": sentinels[0][0],
        "port": sentinels[0][1],
        "dbid": int(path[1]) if len(path) == 2 else 0,
        "password": password,
        "username": username,
        "sentinels": sentinels,
        "service": unquote(path[0]),
    }


def _host_port(item: str, url: str) -> tuple[str, int]:
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"a Sentinel address in {url} is not HOST[:PORT]: {item!r}")
        port = rest[1:]
    else:
        host, _, port = item.partition(":")
    if not host or any(c in host for c in "/@ ") or (":" in host and not item.startswith("[")):
        raise ValueError(f"a Sentinel address in {url} is not HOST[:PORT]: {item!r}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"the port in {url} is not a number: {item!r}")
    return host, int(port) if port else SENTINEL_PORT
