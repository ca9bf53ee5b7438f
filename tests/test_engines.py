"""
The throwaway engines of the test run: each answers on 127.0.0.1 only, at
a port of its own, and once stopped leaves no process and no directory.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from engines import EngineMissing, PostgresCluster, RedisServer, process_alive


def test_session_cluster_answers_on_loopback(postgres_cluster):
    with psycopg.connect(postgres_cluster.conninfo(), autocommit=True) as connection:
        assert connection.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert int(connection.execute("SHOW port").fetchone()[0]) == postgres_cluster.port
        assert connection.execute("SELECT current_user").fetchone()[0] == "msnp"


def test_session_redis_answers_on_loopback(redis_server):
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("CONFIG", "GET", "bind").split()[-1] == "127.0.0.1"


def test_engines_leave_nothing_behind(postgres_cluster, redis_server):
    """
    A second cluster and server of their own (the session's are already
    running, so the engines are installed) start, stop and are gone.
    """
    cluster = PostgresCluster().start()
    redis = RedisServer().start()
    assert cluster.port not in (postgres_cluster.port, redis.port, redis_server.port)
    pids = [cluster.pid(), redis.pid()]
    directories = [cluster.directory, redis.directory]
    assert all(pid is not None and process_alive(pid) for pid in pids)
    cluster.destroy()
    redis.destroy()
    assert not any(process_alive(pid) for pid in pids)
    assert not any(os.path.exists(directory) for directory in directories)


def test_missing_postgres_is_said_plainly(monkeypatch):
    """
    Without the Debian package's programs the harness says what to
    install (the fixtures then skip, or fail in CI).
    """
    monkeypatch.setattr("engines.POSTGRES_BIN_GLOB", "/nonexistent/*/bin")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EngineMissing, match="apt-get install postgresql"):
        PostgresCluster()
