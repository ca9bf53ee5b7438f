"""
The admin endpoint (C{--admin}): one twisted.web site with the status page
at C{/}, Prometheus metrics at C{/metrics} and the JSON API under
C{/api/}, behind a bearer token when one is configured.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from base64 import b64decode
from typing import Optional

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from twisted.application.service import Service
from twisted.logger import Logger, globalLogPublisher
from twisted.web import http, pages, resource, server

import msnp
from msnp import metrics
from msnp.control.api import AdminAPI, write_json
from msnp.control.history import MinuteSeries, RecentEvents
from msnp.control.live import LiveSessions
from msnp.control.page import StatusPage

log = Logger()

DEFAULT_ADMIN = "tcp:8081:interface=127.0.0.1"
_LOOPBACK_NAMES = {"localhost", "::1", "[::1]"}


class TokenFileError(Exception):
    pass


def load_or_create_token(path: str) -> tuple[str, bool]:
    """
    The bearer token kept in C{path}: read, or made and written there
    (mode 0600) when the file does not exist.  Returns the token and
    whether it was made now.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            with open(path, encoding="utf-8") as token_file:
                token = token_file.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise TokenFileError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}")
        if not token:
            raise TokenFileError(f"{path} is empty")
        return token, False
    except OSError as error:
        raise TokenFileError(f"cannot create {path}: {error.strerror}")
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w", encoding="utf-8") as token_file:
        token_file.write(token + "\n")
    return token, True


def _endpoint_parameters(description: str) -> tuple[str, list[str], dict[str, str]]:
    # Twisted escapes a colon inside a value as a backslash-colon.
    parts = re.split(r"(?<!\\):", description)
    positional, named = [], {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq:
            named[key] = value.replace("\\:", ":")
        else:
            positional.append(part.replace("\\:", ":"))
    return parts[0], positional, named


def endpoint_interface(description: str) -> Optional[str]:
    """
    The address a tcp:/ssl: endpoint listens on ("" for every address);
    None for endpoint kinds that have no such address (unix:, systemd:...).
    """
    kind, positional, named = _endpoint_parameters(description)
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    return named.get("interface", positional[2] if kind == "tcp" and len(positional) > 2 else "")


def is_loopback(interface: str) -> bool:
    return interface in _LOOPBACK_NAMES or interface.startswith("127.")


def listens_beyond_loopback(description: str) -> bool:
    """
    Whether an endpoint may be reached from other hosts: a tcp:/ssl: one
    not bound to a loopback address, or one of a kind whose address cannot
    be told from its description (systemd:); a unix: socket cannot.
    """
    kind = description.split(":", 1)[0]
    if kind == "unix":
        return False
    interface = endpoint_interface(description)
    return interface is None or not is_loopback(interface)


def listens_on_every_address(description: str) -> bool:
    interface = endpoint_interface(description)
    return interface is not None and interface in ("", "0.0.0.0", "::")


def admin_url(description: str, port: Optional[int]) -> str:
    """
    Where the admin endpoint is reached, for the start line.
    """
    kind = description.split(":", 1)[0]
    interface = endpoint_interface(description)
    if interface is None:
        return description
    host = interface if interface not in ("", "0.0.0.0", "::") else "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if kind == "ssl" else "http"
    return f"{scheme}://{host}:{port}/"


class AdminState:
    """
    What the admin site reads: the live sessions, the server's facts, the
    per-minute series and the recent events.
    """

    def __init__(self, service, clock, node: Optional[str] = None):
        self._service = service
        self._clock = clock
        self.live = LiveSessions(service)
        self.node = node or self.live.node
        self.version = msnp.__version__
        # msnp-admin compares it with its --db to know the server is the
        # one serving that database.
        self.database = service.database
        self.started = clock.seconds()
        self.series = MinuteSeries(
            {
                "logins": lambda: metrics.total(metrics.LOGINS_ACCEPTED),
                "messages": lambda: metrics.total(metrics.SWITCHBOARD_MESSAGES),
            },
            clock,
        )
        self.recent = RecentEvents(clock.seconds)
        self.live_counts = {"connections": {}, "sessions": {}, "statuses": {}, "conversations": 0}

    def uptime(self) -> float:
        return self._clock.seconds() - self.started

    def listener_summary(self) -> dict[str, str]:
        return self._service.listener_summary()

    def refresh(self):
        """
        Read the live counts again; a Deferred that fires once they are in
        L{live_counts}.
        """

        def store(counts):
            self.live_counts = counts

        return self.live.counts().addCallback(store)


class _Forward:
    """
    The process-wide registry (the counters and the process metrics) as
    one collector of the site's registry.
    """

    def __init__(self, registry):
        self._registry = registry

    def collect(self):
        return self._registry.collect()


class _LiveFigures:
    """
    Gauges read from live state at scrape time.
    """

    def __init__(self, state: AdminState):
        self._state = state

    def collect(self):
        counts = self._state.live_counts
        sessions = GaugeMetricFamily("msnp_sessions_online", "Signed-in sessions, by role and dialect.", labels=["role", "dialect"])
        for (role, dialect), count in sorted(counts["sessions"].items()):
            sessions.add_metric([role, dialect], count)
        yield sessions
        connections = GaugeMetricFamily("msnp_connections_open", "Open client connections, by role.", labels=["role"])
        for role, count in sorted(counts["connections"].items()):
            connections.add_metric([role], count)
        yield connections
        yield GaugeMetricFamily(
            "msnp_switchboard_conversations", "Switchboard sessions in progress.", value=counts["conversations"]
        )
        info = GaugeMetricFamily("msnp_build_info", "The running msnp version (always 1).", labels=["version"])
        info.add_metric([self._state.version], 1)
        yield info
        yield GaugeMetricFamily("msnp_uptime_seconds", "Seconds since the server started.", value=self._state.uptime())


class MetricsPage(resource.Resource):
    isLeaf = True

    def __init__(self, state: AdminState):
        super().__init__()
        self._state = state
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Forward(REGISTRY))
        self._registry.register(_LiveFigures(state))

    def render_GET(self, request):
        # The text format Prometheus asks for (OpenMetrics when it says so).
        accept = request.getHeader(b"accept")
        encode, content_type = choose_encoder(accept.decode("latin-1") if accept else None)

        def rendered(_):
            data = encode(self._registry)
            if request.finished or request.channel is None:
                return
            request.setHeader(b"Content-Type", content_type.encode("ascii"))
            request.setHeader(b"Content-Length", b"%d" % len(data))
            request.write(data)
            request.finish()

        self._state.refresh().addCallback(rendered)
        return server.NOT_DONE_YET


class _Refused(resource.Resource):
    isLeaf = True

    def __init__(self, code: int, message: str, challenge: bool):
        super().__init__()
        self._code = code
        self._message = message
        self._challenge = challenge

    def render(self, request):
        if self._challenge:
            # Bearer for tools; Basic (any user name, the token as the
            # password) so that a browser can ask for it.
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="msnp admin", Basic realm="msnp admin"')
        write_json(request, self._code, {"error": self._message})
        return server.NOT_DONE_YET


class TokenGuard(resource.Resource):
    """
    Lets a request through to C{wrapped} only with the bearer token (when
    one is set); without a token, only requests naming a loopback host,
    so that a web page cannot reach the API through a name it rebinds.
    """

    def __init__(self, wrapped: resource.Resource, token: Optional[str]):
        super().__init__()
        self._wrapped = wrapped
        self._token = token.encode("utf-8") if token is not None else None

    def getChildWithDefault(self, path, request):
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return self._wrapped.getChildWithDefault(path, request)

    def render(self, request):
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal.render(request)
        return self._wrapped.render(request)

    def _refusal(self, request) -> Optional[_Refused]:
        address = getattr(request.getClientAddress(), "host", "?")
        if self._token is None:
            host = _host_name(request.getHeader(b"host"))
            if host and not is_loopback(host):
                log.info("admin request refused from {address}: Host {host} is not a loopback name", address=address, host=host)
                return _Refused(http.FORBIDDEN, "only loopback host names are served without a token", False)
            return None
        presented = _presented_token(request.getHeader(b"authorization"))
        if presented is not None and hmac.compare_digest(presented, self._token):
            return None
        log.info(
            "admin request refused from {address}: {why} token",
            address=address,
            why="missing" if presented is None else "wrong",
        )
        return _Refused(http.UNAUTHORIZED, "a valid bearer token is required", True)


def _host_name(header: Optional[bytes]) -> str:
    """
    The host of a Host header, without port or IPv6 brackets.
    """
    text = (header or b"").decode("latin-1").strip()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if ":" in text else text


def _presented_token(header: Optional[bytes]) -> Optional[bytes]:
    if not header:
        return None
    scheme, _, value = header.strip().partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return value.strip()
    if scheme == b"basic":
        try:
            return b64decode(value.strip(), validate=True).partition(b":")[2]
        except ValueError:
            return b""
    return b""


class AdminSite(server.Site):
    def log(self, request):
        # Scrapes every few seconds would drown the log; refusals are
        # logged by the guard.
        pass


class _Root(resource.Resource):
    def getChild(self, path, request):
        return pages.notFound("No such page", "The status page is /, the metrics /metrics, the API under /api/.")


def make_admin_site(state: AdminState, token: Optional[str]) -> AdminSite:
    root = _Root()
    root.putChild(b"", StatusPage(state))
    root.putChild(b"metrics", MetricsPage(state))
    root.putChild(b"api", AdminAPI(state))
    site = AdminSite(TokenGuard(root, token))
    site.displayTracebacks = False
    return site


class AdminService(Service):
    """
    Keeps the admin site's history while the server runs: the per-minute
    series and the recent-events log observer.
    """

    def __init__(self, state: AdminState):
        self._state = state

    def startService(self) -> None:
        super().startService()
        globalLogPublisher.addObserver(self._state.recent)
        self._state.series.start()

    def stopService(self):
        self._state.series.stop()
        globalLogPublisher.removeObserver(self._state.recent)
        return super().stopService()
