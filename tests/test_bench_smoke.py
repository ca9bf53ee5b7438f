"""
A tiny run of every benchmark scenario, so the benchmarks keep working.
The figures are not checked: only that each scenario starts its server,
drives it, writes its results and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _processes_with(marker: str) -> list[int]:
    """
    Processes whose environment holds C{marker}: everything the benchmark
    started inherits it.
    """
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_every_scenario_runs(tmp_path):
    """
    C{python -m bench all --smoke} runs login, passport, presence,
    conversations (with the floor relay), capacity, sip and rvp at tiny sizes,
    succeeds, writes one JSON file per scenario, and every process it
    started is gone afterwards.
    """
    marker = f"msnp-bench-smoke-{uuid.uuid4().hex}"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--smoke", "--workers", "1", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT), MSNP_BENCH_SMOKE=marker),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for scenario in ("login", "passport", "presence", "conversations", "capacity", "sip", "rvp"):
        document = json.loads((tmp_path / f"{scenario}.json").read_text())
        assert document["scenario"] == scenario
    login = json.loads((tmp_path / "login.json").read_text())
    assert login["sustained"]["logins"] == 40 and login["sustained"]["failures"] == 0
    passport = json.loads((tmp_path / "passport.json").read_text())
    assert passport["sustained"]["logins"] == 6 and passport["sustained"]["failures"] == 0
    presence = json.loads((tmp_path / "presence.json").read_text())
    phase = presence["phases"][0]
    assert phase["notifications_received"] == phase["notifications_expected"] > 0
    conversations = json.loads((tmp_path / "conversations.json").read_text())
    assert conversations["floor"]["throughput"]["delivered"] > 0
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    assert capacity["online"] == 60
    sip = json.loads((tmp_path / "sip.json").read_text())
    assert sip["presence"]["notifies_matched"] == sip["presence"]["changes_sent"] > 0
    assert sip["messages"]["delivered"] == sip["messages"]["messages_sent"] > 0
    rvp = json.loads((tmp_path / "rvp.json").read_text())
    phase = rvp["phases"][0]
    assert phase["rvp_to_msn"]["received"] == phase["rvp_to_msn"]["sent"] > 0
    back = phase["msn_to_rvp"]
    # A NOTIFY may be replaced while queued by a later state; none is lost.
    assert back["lost"] == back["unmatched"] == 0
    assert 0 < back["received"] and back["received"] + back["superseded"] == back["expected"]
    assert _processes_with(marker) == []
