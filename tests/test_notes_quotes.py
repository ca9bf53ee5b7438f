"""
The transcripts quoted in protocol-notes/ are the ones the suite runs:
every ```transcript FILE block must be a run of lines of FILE.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
QUOTE = re.compile(r"^```transcript (\S+)\n(.*?)^```", re.S | re.M)


def quotes():
    for note in sorted((ROOT / "protocol-notes").glob("*.md")):
        for match in QUOTE.finditer(note.read_text(encoding="utf-8")):
            yield pytest.param(note.name, match.group(1), match.group(2), id=f"{note.name}:{match.group(1)}")


def steps(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_notes_quote_transcripts():
    """
    The notes quote at least the login, list, presence, privacy and
    switchboard transcripts.
    """
    quoted = {path for _, path, _ in (q.values for q in quotes())}
    assert len(quoted) >= 6


@pytest.mark.parametrize("note, path, block", list(quotes()))
def test_quote_is_in_the_file(note, path, block):
    """
    The quoted lines appear, in order and together, in the transcript.
    """
    wanted = steps(block)
    have = steps((ROOT / path).read_text(encoding="utf-8"))
    assert wanted, f"{note}: empty quote of {path}"
    starts = [i for i in range(len(have)) if have[i : i + len(wanted)] == wanted]
    assert starts, f"{note} quotes lines that are not (together) in {path}"
