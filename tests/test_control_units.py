"""
The admin interface's parts without a server: the per-minute series on a
fake clock, the recent-events observer, the chart, the token file and how
endpoint descriptions are judged.
"""

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from msnp.control.history import MinuteSeries, RecentEvents
from msnp.control.page import chart_svg, nice_ceiling
from msnp.control.site import (
    TokenFileError,
    admin_url,
    listens_beyond_loopback,
    listens_on_every_address,
    load_or_create_token,
)


def test_minute_series_records_what_each_minute_added():
    """
    Each sample keeps how much the total grew in that minute; the minute
    in progress comes last; an hour is kept at most; stopping leaves no
    timer.
    """
    clock = Clock()
    total = [0]
    series = MinuteSeries({"logins": lambda: total[0]}, clock)
    series.start()
    total[0] = 5
    clock.advance(60)
    total[0] = 7
    clock.advance(60)
    total[0] = 10
    assert series.per_minute("logins") == [5, 2, 3]
    for minute in range(100):
        total[0] += minute
        clock.advance(60)
    values = series.per_minute("logins")
    assert len(values) == 60 and values[-2] == 99 and values[-1] == 0
    series.stop()
    assert clock.getDelayedCalls() == []


def test_recent_events_keep_refused_logins_and_signed_in_disconnections():
    """
    The observer keeps log events marked as refused logins, and closes of
    notification connections that had an account, newest first, at most
    C{keep}; anything else is ignored.
    """
    recent = RecentEvents(lambda: 100.0, keep=2)
    for number in range(3):
        recent({"msnp_event": "login_refused", "handle": f"u{number}@example.com", "reason": "wrong password", "log_format": "x"})
    recent({"msnp_event": "disconnection", "role": "notification", "account": None, "log_format": "x"})
    recent({"msnp_event": "disconnection", "role": "dispatch", "account": "a@example.com", "log_format": "x"})
    recent({"msnp_event": "disconnection", "role": "notification", "account": "a@example.com", "reason": "", "peer": "127.0.0.1:5", "log_format": "x"})
    recent({"log_format": "something else"})
    assert [entry["handle"] for entry in recent.refused_logins] == ["u2@example.com", "u1@example.com"]
    assert [(entry["handle"], entry["reason"]) for entry in recent.disconnections] == [("a@example.com", "closed by the client")]


@given(st.floats(min_value=1, max_value=1e9))
def test_nice_ceiling_is_a_round_number_at_or_above(peak):
    """
    The chart's scale top is 1, 2 or 5 times a power of ten, at least the
    peak and less than 2.5 times it.
    """
    top = nice_ceiling(peak)
    assert peak <= top < peak * 2.5 + 1e-9
    mantissa = float(f"{top:e}".split("e")[0])
    assert mantissa in (1.0, 2.0, 5.0)


def test_chart_places_the_newest_minute_at_the_right_edge():
    """
    One polyline per series, its last point at the right edge and at the
    height of its value on the scale.
    """
    svg = chart_svg({"logins": [0, 10, 20], "messages": [5]})
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert 'class="series-logins"' in svg and 'class="series-messages"' in svg
    points = svg.split('class="series-logins" fill="none" stroke="#2b6cb0" stroke-width="2" points="')[1].split('"')[0].split()
    assert len(points) == 3
    x, y = (float(v) for v in points[-1].split(","))
    assert x == 628.0 and y == 12.0  # right edge, top of a scale of 20
    assert "<script" not in svg


def test_token_file_is_made_private_and_read_back(tmp_path):
    """
    A missing token file is created with mode 0600 holding a long random
    token; an existing one is read; an empty one is refused.
    """
    path = str(tmp_path / "admin.token")
    token, made = load_or_create_token(path)
    assert made and len(token) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(TokenFileError, match="is empty"):
        load_or_create_token(str(empty))
    with pytest.raises(TokenFileError, match="cannot create"):
        load_or_create_token(str(tmp_path / "missing" / "admin.token"))


@pytest.mark.parametrize(
    "description, beyond, everywhere",
    [
        ("tcp:8081:interface=127.0.0.1", False, False),
        ("tcp:8081:interface=127.0.0.2", False, False),
        ("tcp6:8081:interface=\\:\\:1", False, False),
        ("tcp:8081:interface=localhost", False, False),
        ("tcp:8081", True, True),
        ("tcp:8081:interface=0.0.0.0", True, True),
        ("tcp:8081:interface=192.0.2.10", True, False),
        ("ssl:8443:privateKey=k.pem", True, True),
        ("unix:/run/msnp/admin.sock", False, False),
        ("systemd:domain=INET:index=0", True, False),
    ],
)
def test_endpoint_reach(description, beyond, everywhere):
    """
    Loopback addresses (and unix: sockets) stay on the machine; no
    interface means every address; a systemd: socket's address cannot be
    told, so it counts as reachable.
    """
    assert listens_beyond_loopback(description) is beyond
    assert listens_on_every_address(description) is everywhere


def test_admin_url_names_scheme_host_and_bound_port():
    assert admin_url("tcp:0:interface=127.0.0.1", 40123) == "http://127.0.0.1:40123/"
    assert admin_url("ssl:8443:interface=\\:\\:1:privateKey=k.pem", 8443) == "https://[::1]:8443/"
    assert admin_url("tcp:8081", 8081) == "http://0.0.0.0:8081/"
    assert admin_url("unix:/run/msnp/admin.sock", None) == "unix:/run/msnp/admin.sock"


def test_recent_passport_refusal_shows_its_reason():
    """
    A refusal logged by the Passport site keeps the reason apart from the
    site's own text, and that is what the page shows.
    """
    recent = RecentEvents(lambda: 100.0)
    recent(
        {
            "msnp_event": "login_refused",
            "handle": "alice@example.com",
            "method": "passport_http",
            "address": "127.0.0.1",
            "reason": "refused login for alice@example.com: account locked (GET /login2.srf)",
            "refused_because": "account locked",
            "log_format": "x",
        }
    )
    assert recent.refused_logins[0]["reason"] == "account locked"
