"""
A live server with its admin endpoint on 127.0.0.1 port 0, and a small
HTTP client for it (one connection per request, closed after the answer).
"""

from __future__ import annotations

import json
import shutil
from io import BytesIO
from typing import Optional

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers

from conftest import ENDPOINTS, RunningServer
from msnp.config import ServerConfig
from msnp.service import MessengerService

ADMIN_ENDPOINT = "tcp:0:interface=127.0.0.1"


@attrs.define
class Response:
    code: int
    headers: Headers
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


class AdminServer(RunningServer):
    """
    A running server with its admin endpoint; C{request} talks to it.
    """

    token: Optional[str] = None

    @property
    def admin_port(self) -> int:
        return self.service.listeners["admin"].port.getHost().port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @defer.inlineCallbacks
    def request(self, method: str, path: str, body=None, token: Optional[str] = "default", headers: Optional[dict] = None):
        """
        One request; C{body} (a dict) is sent as JSON; C{token} "default"
        sends the server's token when it has one, None sends none.
        """
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, pool=pool)
        sent = {} if headers is None else dict(headers)
        if token == "default":
            token = self.token
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        producer = None
        if body is not None or method in ("POST", "DELETE"):
            sent.setdefault("Content-Type", "application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body or {}).encode("utf-8")))
        response = yield agent.request(
            method.encode("ascii"),
            (self.admin_url + path).encode("ascii"),
            Headers({name: [value] for name, value in sent.items()}),
            producer,
        )
        data = yield _read_body(response)
        yield pool.closeCachedConnections()
        return Response(response.code, response.headers, data)


class _BodyCollector(Protocol):
    def __init__(self, finished: defer.Deferred):
        self._finished = finished
        self._chunks = []

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)

    def connectionLost(self, reason=None) -> None:
        if reason is None or reason.check(ResponseDone):
            self._finished.callback(b"".join(self._chunks))
        else:
            self._finished.errback(reason)


def _read_body(response) -> defer.Deferred:
    finished = defer.Deferred()
    response.deliverBody(_BodyCollector(finished))
    return finished


@defer.inlineCallbacks
def start_admin_server(db_path: str, token: Optional[str] = None, config: Optional[ServerConfig] = None):
    endpoints = dict(ENDPOINTS, admin=ADMIN_ENDPOINT)
    service = MessengerService(config or ServerConfig(), db_path, endpoints, reactor, admin_token=token)
    service.startService()
    yield service._store_ready
    running = AdminServer(service, db_path)
    running.token = token
    return running


def _admin_server(tmp_path, accounts_database, token=None):
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    running = pytest_twisted.blockon(start_admin_server(str(db_path), token))
    return running


@pytest.fixture
def admin_server(tmp_path, accounts_database):
    running = _admin_server(tmp_path, accounts_database)
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())


@pytest.fixture
def token_admin_server(tmp_path, accounts_database):
    running = _admin_server(tmp_path, accounts_database, token="s3cret-token")
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())

