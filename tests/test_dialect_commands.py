"""
The notification server's command table in msnp.msn.dialects: which dialect
has which command, which client lines carry a payload, and how a dialect
without a command answers it.
"""

import pytest

from msnp.msn import dialects, errors
from msnp.msn.dialects import ALL_DIALECTS, CLOSE, UNKNOWN


def test_payload_commands_are_framed_in_every_dialect():
    """
    The client's payload commands are framed by name alone; GCF is not one
    of them (only its answer has a payload).
    """
    assert dialects.NS_PAYLOAD_COMMANDS == frozenset(
        {"QRY", "UUX", "SDC", "PAG", "PGD", "MSG", "ADL", "RML", "FQY", "UUN", "UUM", "PUT", "SDG"}
    )
    assert "GCF" not in dialects.NS_PAYLOAD_COMMANDS


@pytest.mark.parametrize(
    "name,present",
    [
        ("GCF", range(11, 13)),
        ("SDC", range(5, 19)),
        ("PAG", range(5, 9)),
        ("PGD", range(9, 19)),
        ("SND", range(2, 5)),
    ],
)
def test_command_spans(name, present):
    """
    Each command exists exactly in the dialects of its span.
    """
    have = [n for n, dialect in ALL_DIALECTS.items() if dialect.has_command(name)]
    assert have == list(present)


@pytest.mark.parametrize(
    "name,version,answer",
    [
        ("GCF", 10, CLOSE),
        ("GCF", 2, CLOSE),
        ("PAG", 9, errors.NOT_EXPECTED),
        ("PAG", 12, errors.NOT_EXPECTED),
        ("PAG", 4, UNKNOWN),
        ("PGD", 8, UNKNOWN),
        ("SDC", 4, UNKNOWN),
        ("SND", 5, UNKNOWN),
        ("ADD", 10, CLOSE),
        ("INF", 8, CLOSE),
        ("XYZ", 12, UNKNOWN),
    ],
)
def test_answer_when_absent(name, version, answer):
    """
    A dialect without the command answers 200, closes, or gives the error
    the original service gave.
    """
    assert ALL_DIALECTS[version].answer_when_absent(name) == answer


def test_gcf_answer_shape():
    """
    GCF's answer names the file and ends with the payload length.
    """
    line = ALL_DIALECTS[11].config_file(7, dialects.SHIELDS_FILE, dialects.SHIELDS_CONFIG)
    head, _, payload = line.partition(b"\r\n")
    assert head == b"GCF 7 Shields.xml %d" % len(dialects.SHIELDS_CONFIG)
    assert payload == dialects.SHIELDS_CONFIG
