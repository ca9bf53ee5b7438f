"""
Percentiles, the printed table and the JSON results.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Iterable, Optional

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(ordered: list[float], fraction: float) -> Optional[float]:
    """
    The nearest-rank percentile of an already sorted list.
    """
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def latency_summary(samples: Iterable[float]) -> dict:
    """
    p50/p99/max/mean of latencies given in seconds, reported in ms.
    """
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return {
        "count": len(ordered),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1]),
        "mean_ms": ms(sum(ordered) / len(ordered)),
    }


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            memory = int(meminfo.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import twisted

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "kernel": platform.release(),
    }


class Table:
    """
    Rows of (figure, value, target) printed under a title.
    """

    def __init__(self, title: str):
        self.title = title
        self.rows: list[tuple[str, str, str]] = []

    def add(self, figure: str, value, target: str = "") -> None:
        self.rows.append((figure, _show(value), target))

    def render(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [6])
        value_width = max([len(r[1]) for r in self.rows] + [5])
        lines = [self.title, "-" * len(self.title)]
        for figure, value, target in self.rows:
            line = f"{figure:<{width}}  {value:>{value_width}}"
            if target:
                line += f"   (target {target})"
            lines.append(line)
        return "\n".join(lines)


def _show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(scenario: str, results: dict, directory: Optional[Path] = None) -> Path:
    directory = Path(directory) if directory else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario}.json"
    document = {"scenario": scenario, "machine": machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]), **results}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
