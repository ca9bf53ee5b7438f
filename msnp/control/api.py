"""
The JSON API under C{/api/} (described in protocol-notes/admin.md).

Reads answer C{GET}; changes answer C{POST} or C{DELETE} and must say
C{Content-Type: application/json}, which a page in some other site cannot
send without the browser asking first, so an operator's browser cannot be
made to kick or delete anyone.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional
from urllib.parse import unquote

import attrs
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp import metrics
from msnp.control import live
from msnp.msn import wire
from msnp.store.records import NoSuchAccount, canonical_handle

log = Logger()

# Largest request body read (a broadcast or kick body is a few bytes).
MAX_BODY = 4096
# The longest maintenance notice that can be announced, in minutes.
MAX_MINUTES = 24 * 60


def database_identity(db_path: Optional[str], conninfo: Optional[str]) -> str:
    """
    A name for the database a server or msnp-admin works on: the real path
    of an SQLite file, or a digest of a PostgreSQL connection string (which
    may hold a password, so it is never shown itself).
    """
    if conninfo:
        return "postgres:" + hashlib.sha256(conninfo.encode("utf-8")).hexdigest()[:16]
    return os.path.realpath(db_path or "")


class APIError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def write_json(request, code: int, body: dict) -> None:
    if request.finished or request.channel is None:
        return
    data = json.dumps(body, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % len(data))
    request.write(data)
    request.finish()


def server_stats(state) -> dict:
    """
    The figures the status page shows, as data.
    """
    counts = state.live_counts
    sessions: dict[str, dict[str, int]] = {}
    for (role, dialect), count in sorted(counts["sessions"].items()):
        sessions.setdefault(role, {})[dialect] = count
    return {
        "version": state.version,
        "node": state.node,
        "uptime_seconds": round(state.uptime(), 3),
        "database": state.database,
        "listeners": state.listener_summary(),
        "connections": counts["connections"],
        "sessions": sessions,
        "statuses": dict(sorted(counts["statuses"].items())),
        "switchboard_conversations": counts["conversations"],
        "logins_accepted": int(metrics.total(metrics.LOGINS_ACCEPTED)),
        "logins_refused": int(metrics.total(metrics.LOGINS_REFUSED)),
        "switchboard_messages": int(metrics.total(metrics.SWITCHBOARD_MESSAGES)),
        "per_minute": {name: state.series.per_minute(name) for name in ("logins", "messages")},
        "recent_refused_logins": list(state.recent.refused_logins),
        "recent_disconnections": list(state.recent.disconnections),
    }


class AdminAPI(resource.Resource):
    """
    C{/api/...}: one leaf resource that routes on the rest of the path.
    """

    isLeaf = True

    def __init__(self, state):
        super().__init__()
        self._state = state

    def render(self, request):
        d = maybeDeferred(self._route, request)
        d.addCallback(lambda result: write_json(request, result[0], result[1]))
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    def _failed(self, failure, request) -> None:
        if failure.check(APIError):
            error = failure.value
            write_json(request, error.code, {"error": error.message})
        elif failure.check(NoSuchAccount):
            write_json(request, http.NOT_FOUND, {"error": f"no such account: {failure.value}"})
        else:
            log.failure("admin request {path} failed", failure, path=request.path.decode("utf-8", "replace"))
            write_json(request, http.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _route(self, request):
        parts = [unquote(part.decode("utf-8", "replace")) for part in request.postpath]
        if parts and parts[-1] == "":
            parts.pop()
        method = request.method.decode("ascii", "replace")
        live_sessions = self._state.live
        if parts == ["server"]:
            self._only(method, "GET")
            return self._state.refresh().addCallback(lambda _: (http.OK, server_stats(self._state)))
        if parts == ["sessions"]:
            self._only(method, "GET")
            return live_sessions.online().addCallback(
                lambda views: (http.OK, {"sessions": [attrs.asdict(view) for view in views]})
            )
        if parts == ["broadcast"]:
            self._only(method, "POST")
            body = self._body(request)
            minutes = body.get("minutes")
            if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes <= MAX_MINUTES:
                raise APIError(http.BAD_REQUEST, f"minutes must be a whole number from 0 to {MAX_MINUTES}")
            return live_sessions.broadcast(minutes).addCallback(lambda told: (http.OK, {"sessions_told": told}))
        if len(parts) in (2, 3) and parts[0] == "accounts":
            handle = self._handle(parts[1])
            action = parts[2] if len(parts) == 3 else None
            return self._account(request, method, handle, action)
        raise APIError(http.NOT_FOUND, "no such resource")

    def _account(self, request, method: str, handle: str, action: Optional[str]):
        live_sessions = self._state.live
        if action is None:
            if method == "GET":
                return live_sessions.account(handle).addCallback(lambda account: (http.OK, account))
            self._only(method, "DELETE")
            self._body(request)
            return live_sessions.delete_account(handle).addCallback(
                lambda ended: (http.OK, {"handle": handle, "deleted": True, "sessions_ended": ended})
            )
        if action == "kick":
            self._only(method, "POST")
            reason = self._body(request).get("reason", live.KICKED)
            if reason not in (live.KICKED, live.PASSWORD_CHANGED):
                raise APIError(http.BAD_REQUEST, f"reason must be {live.KICKED!r} or {live.PASSWORD_CHANGED!r}")
            return live_sessions.kick(handle, reason).addCallback(
                lambda ended: (http.OK, {"handle": handle, "sessions_ended": ended})
            )
        if action in ("lock", "unlock"):
            self._only(method, "POST")
            self._body(request)
            locked = action == "lock"
            return live_sessions.set_locked(handle, locked).addCallback(
                lambda ended: (http.OK, {"handle": handle, "locked": locked, "sessions_ended": ended})
            )
        raise APIError(http.NOT_FOUND, "no such resource")

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise APIError(http.NOT_ALLOWED, f"use {allowed}")

    @staticmethod
    def _handle(text: str) -> str:
        if not wire.is_valid_handle(text):
            raise APIError(http.BAD_REQUEST, "not an account name")
        return canonical_handle(text)

    @staticmethod
    def _body(request) -> dict:
        """
        The JSON object a change carries (empty allowed), after checking
        it says it is JSON.
        """
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            raise APIError(http.UNSUPPORTED_MEDIA_TYPE, "changes must be sent as Content-Type: application/json")
        data = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(data) > MAX_BODY:
            raise APIError(http.REQUEST_ENTITY_TOO_LARGE, "body too large")
        if not data.strip():
            return {}
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise APIError(http.BAD_REQUEST, "body is not JSON")
        if not isinstance(body, dict):
            raise APIError(http.BAD_REQUEST, "body must be a JSON object")
        return body
