"""
The status page at C{/}: one HTML document a person reads in a browser,
made on the server with its chart as inline SVG.  It loads nothing else
(no script, no font, no stylesheet from elsewhere), and its Content
Security Policy forbids it to.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Sequence

from twisted.web import resource, server

from msnp.control.api import server_stats

# Nothing but the page itself and its inline style.
CONTENT_SECURITY_POLICY = b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# Rows of recent events shown (the API gives them all).
RECENT_ROWS = 8
CHART_WIDTH = 640
CHART_HEIGHT = 180
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 44, 12, 12, 26
_SERIES = (("logins", "Logins", "#2b6cb0"), ("messages", "Messages", "#c05621"))

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 60em; color: #1a202c; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.6em; border-bottom: 1px solid #cbd5e0; }
.facts { color: #4a5568; }
table { border-collapse: collapse; margin: 0.4em 0; }
th, td { text-align: left; padding: 0.2em 0.9em 0.2em 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: flex; gap: 3em; flex-wrap: wrap; }
.empty { color: #718096; font-style: italic; }
svg text { font-size: 11px; fill: #4a5568; }
"""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s"


def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def nice_ceiling(peak: float) -> float:
    """
    The top of the chart's scale: the least of 1, 2 or 5 times a power of
    ten that is at least C{peak} (itself at least 1).
    """
    magnitude = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 5):
        if step * magnitude >= peak:
            return float(step * magnitude)
    return float(10 * magnitude)


def chart_svg(series: dict[str, Sequence[float]]) -> str:
    """
    Per-minute figures as an SVG line chart: the last hour, the minute in
    progress at the right edge.
    """
    width = CHART_WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    height = CHART_HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    scale = nice_ceiling(max([1.0] + [value for values in series.values() for value in values]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="per-minute-chart" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="Logins and messages per minute, last hour">',
        f'<rect x="{_MARGIN_LEFT}" y="{_MARGIN_TOP}" width="{width}" height="{height}" fill="#f7fafc" stroke="#cbd5e0"/>',
    ]
    for fraction in (0.5, 1.0):
        y = _MARGIN_TOP + height * (1 - fraction)
        parts.append(f'<line x1="{_MARGIN_LEFT}" y1="{y:.1f}" x2="{_MARGIN_LEFT + width}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{scale * fraction:g}</text>')
    parts.append(f'<text x="{_MARGIN_LEFT - 6}" y="{_MARGIN_TOP + height + 4}" text-anchor="end">0</text>')
    for minutes_ago, anchor in ((60, "start"), (30, "middle"), (0, "end")):
        x = _MARGIN_LEFT + width * (60 - minutes_ago) / 60
        label = "now" if minutes_ago == 0 else f"-{minutes_ago} min"
        parts.append(f'<text x="{x:.1f}" y="{CHART_HEIGHT - 8}" text-anchor="{anchor}">{label}</text>')
    for key, _, colour in _SERIES:
        values = list(series.get(key, ()))[-60:]
        if not values:
            continue
        # The newest value sits at the right edge; older ones step left.
        points = []
        for index, value in enumerate(values):
            x = _MARGIN_LEFT + width * (60 - (len(values) - 1 - index)) / 60
            y = _MARGIN_TOP + height * (1 - value / scale)
            points.append(f"{x:.1f},{y:.1f}")
        if len(points) == 1:
            x, y = points[0].split(",")
            parts.append(f'<circle class="series-{key}" cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
        else:
            parts.append(
                f'<polyline class="series-{key}" fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'
            )
    legend_x = _MARGIN_LEFT + 8
    for key, label, colour in _SERIES:
        parts.append(f'<rect x="{legend_x}" y="{_MARGIN_TOP + 6}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{_MARGIN_TOP + 15}">{label}/min</text>')
        legend_x += 100
    parts.append("</svg>")
    return "".join(parts)


def _table(headings: Sequence[str], rows: list[Sequence[str]], table_id: str, empty: str) -> str:
    if not rows:
        return f'<p class="empty" id="{table_id}">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(text, figure: str = "") -> str:
    if figure:
        return f'<td class="n" data-figure="{escape(figure)}">{escape(str(text))}</td>'
    return f"<td>{escape(str(text))}</td>"


def render_page(stats: dict) -> str:
    listeners = [[_cell(role), _cell(text)] for role, text in stats["listeners"].items()]
    if "passport" not in stats["listeners"]:
        listeners.append([_cell("passport"), _cell("off (MSNP8+ clients cannot log in)")])
    dialect_rows = [
        [_cell(role), _cell(dialect), _cell(count, f"sessions/{role}/{dialect}")]
        for role, by_dialect in stats["sessions"].items()
        for dialect, count in by_dialect.items()
    ]
    status_rows = [[_cell(status), _cell(count, f"status/{status}")] for status, count in stats["statuses"].items()]
    totals = [
        [_cell("Signed in (notification)"), _cell(sum(stats["sessions"].get("notification", {}).values()), "online")],
        [_cell("Switchboard conversations"), _cell(stats["switchboard_conversations"], "conversations")],
        [_cell("Logins accepted"), _cell(stats["logins_accepted"], "logins_accepted")],
        [_cell("Logins refused"), _cell(stats["logins_refused"], "logins_refused")],
        [_cell("Messages relayed"), _cell(stats["switchboard_messages"], "switchboard_messages")],
    ]
    refused = [
        [_cell(_clock(entry["time"])), _cell(entry["handle"]), _cell(entry["method"]), _cell(entry["address"]), _cell(entry["reason"])]
        for entry in stats["recent_refused_logins"][:RECENT_ROWS]
    ]
    closed = [
        [_cell(_clock(entry["time"])), _cell(entry["handle"]), _cell(entry["address"]), _cell(entry["reason"])]
        for entry in stats["recent_disconnections"][:RECENT_ROWS]
    ]
    per_minute = stats["per_minute"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<link rel="icon" href="data:,">
<title>msnp status</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>msnp status</h1>
<p class="facts">Version <span id="version">{escape(stats["version"])}</span> on {escape(stats["node"])} ·
up <span id="uptime">{escape(_duration(stats["uptime_seconds"]))}</span> · page made {escape(_clock(time.time()))}</p>
<h2>Listeners</h2>
{_table(["Role", "Endpoint"], listeners, "listeners", "Nothing listening.")}
<div class="grid">
<div>
<h2>Now</h2>
{_table(["", "Count"], totals, "totals", "")}
</div>
<div>
<h2>Sessions by dialect</h2>
{_table(["Role", "Dialect", "Sessions"], dialect_rows, "sessions-by-dialect", "Nobody is signed in.")}
</div>
<div>
<h2>Sessions by status</h2>
{_table(["Status", "Sessions"], status_rows, "sessions-by-status", "Nobody is signed in.")}
</div>
</div>
<h2>Last hour, per minute</h2>
{chart_svg(per_minute)}
<p class="facts">This minute so far: <span data-figure="logins_this_minute">{per_minute["logins"][-1]:g}</span> logins,
<span data-figure="messages_this_minute">{per_minute["messages"][-1]:g}</span> messages.</p>
<h2>Recent refused logins</h2>
{_table(["Time", "Account", "Method", "Address", "Reason"], refused, "refused-logins", "None since the server started.")}
<h2>Recent disconnections</h2>
{_table(["Time", "Account", "Address", "Reason"], closed, "disconnections", "None since the server started.")}
<p class="facts">Figures as data: <code>/api/server</code>; for Prometheus: <code>/metrics</code>.</p>
</body>
</html>
"""


class StatusPage(resource.Resource):
    isLeaf = True

    def __init__(self, state):
        super().__init__()
        self._state = state

    def render_GET(self, request):
        def rendered(_):
            data = render_page(server_stats(self._state)).encode("utf-8")
            if request.finished or request.channel is None:
                return
            request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
            request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Content-Length", b"%d" % len(data))
            request.write(data)
            request.finish()

        self._state.refresh().addCallback(rendered)
        return server.NOT_DONE_YET
