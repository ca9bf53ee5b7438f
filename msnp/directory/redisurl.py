"""
The Redis URL of --redis, read without importing a Redis client (which
would take Twisted's reactor on import).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def parse_redis_url(url: str) -> dict:
    """
    The connection settings of C{redis://[[user]:password@]host[:port][/db]}.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"the port in {url} is not a number")
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis://host:port/db URL: {url}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database in {url} is not a number")
    return {
        "host": parts.hostname,
        "port": port,
        "dbid": int(path) if path else 0,
        "password": unquote(parts.password) if parts.password else None,
        "username": unquote(parts.username) if parts.username else None,
    }
