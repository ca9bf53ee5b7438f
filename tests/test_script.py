"""
msnp-script: the transcript format, its placeholders, and the command
run against a live server (step output, the first mismatch with expected
and received, the summary line, JUnit XML, the exit status); property
tests for the transcript parser.
"""

from __future__ import annotations

import io
from xml.etree import ElementTree

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor

from msnp.script import expressions, main, transcript
from msnp.script.transcript import AnyOrder, Directive, Expect, Send, TranscriptSyntaxError

PASSING = """\
# Alice signs in and pings.
alice signs in with MSNP7 as NLN
alice> PNG
alice< QNG
"""

FAILING = """\
alice connects to notification
alice> VER 1 MSNP7
alice< VER 1 MSNP6
alice> this line is never sent
"""


def test_parse_steps_payloads_and_blocks():
    """
    Sent and received lines with their clients, payload lines joined by
    CRLF, an any-order block of indented received lines, directives.
    """
    parsed = transcript.parse(
        "alice connects to dispatch\n"
        "alice-sb> MSG 3 N {length}\n"
        "   | MIME-Version: 1.0\n"
        "   |\n"
        "   | hi\n"
        "in any order:\n"
        "   alice< ILN 8 NLN bob@example.com Bob\n"
        "   carol< NLN NLN alice@example.com Alice\n"
        "bob hears nothing for 0.25s\n"
        "alice sends raw 'VER 1\\n'\n"
        "alice ignores SBS, UBX\n"
        "timeout 2s\n"
    )
    steps = parsed.steps
    assert steps[0] == Directive("connect", "alice", ("dispatch",), 1, "alice connects to dispatch")
    assert steps[1] == Send("alice-sb", "MSG 3 N {length}", "MIME-Version: 1.0\r\n\r\nhi", 2)
    assert isinstance(steps[2], AnyOrder)
    assert steps[2].expects == [
        Expect("alice", "ILN 8 NLN bob@example.com Bob", None, 7),
        Expect("carol", "NLN NLN alice@example.com Alice", None, 8),
    ]
    assert steps[3].args == (0.25,)
    assert steps[4].args == (b"VER 1\n",)
    assert steps[5].args == ("SBS", "UBX")
    assert steps[6] == Directive("timeout", None, (2.0,), 12, "timeout 2s")


@pytest.mark.parametrize(
    "text",
    ["alice says hello", "| payload first", "in any order:\n  alice> PNG", "in any order:\nalice< X", "alice sends raw nope"],
)
def test_syntax_errors_name_the_line(text):
    """
    Anything that is not a transcript line is refused with its line number.
    """
    with pytest.raises(TranscriptSyntaxError) as refused:
        transcript.parse(text, "t.txt")
    assert str(refused.value).startswith("t.txt:")


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_parser_accepts_or_refuses_any_text(text):
    """
    Any text is either a transcript or a syntax error, never a crash.
    """
    try:
        transcript.parse(text)
    except TranscriptSyntaxError:
        pass


@pytest_twisted.ensureDeferred
async def test_placeholders():
    """
    Helpers compute login and challenge answers; a received line binds
    unbound names and matches bound ones; only literals, names, + and
    helper calls are evaluated.
    """
    names = {"challenge": "1234", "password": "pw"}
    helpers = dict(expressions.HELPERS, qry=lambda text: expressions.challenge_answer(7, text))
    sent = await expressions.substitute("USR 4 MD5 S {md5(challenge + password)}", names, helpers)
    assert sent == "USR 4 MD5 S " + expressions.md5_hex("1234pw")
    assert await expressions.substitute("{qry('15570131571988941333')}", names, helpers) == "8f2f5a91b72102cd28355e9fc9000d6e"
    pattern, captured = await expressions.pattern_for("XFR 10 SB {sb} CKI {cookie} ...", {"sb": "127.0.0.1:1865"}, helpers)
    assert captured == ["cookie"]
    assert pattern.fullmatch("XFR 10 SB 127.0.0.1:1865 CKI 1.2 extra").group("cookie") == "1.2"
    assert pattern.fullmatch("XFR 10 SB 127.0.0.1:9999 CKI 1.2") is None
    for bad in ("__import__('os')", "password.upper()", "[1]", "nothing"):
        with pytest.raises(expressions.ExpressionError):
            await expressions.substitute("{%s}" % bad, names, helpers)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}"), max_size=80))
@settings(max_examples=300, deadline=None)
def test_text_without_placeholders_matches_itself_only(text):
    """
    A received line without placeholders is matched literally: it matches
    itself and nothing longer, whatever regular-expression characters it
    holds.
    """
    pattern, captured = defer.ensureDeferred(expressions.pattern_for(text, {}, {}, rest_allowed=False)).result
    assert captured == [] and pattern.fullmatch(text) and not pattern.fullmatch(text + "x")


@pytest_twisted.inlineCallbacks
def test_command_reports_steps_mismatch_summary_and_junit(server, tmp_path):
    """
    Against a live server: the passing file's steps are printed as they
    pass; the failing one stops at its first mismatch (the line after it
    is never sent) showing expected and received; the last line counts
    files; the status is 1; the JUnit file says the same.
    """
    (tmp_path / "passing.txt").write_text(PASSING)
    (tmp_path / "failing.txt").write_text(FAILING)
    (tmp_path / "accounts").write_text("# handle password\nalice@example.com pw-alice Alice\n")
    args = main.options(
        [
            str(tmp_path / "passing.txt"),
            str(tmp_path / "failing.txt"),
            "--server", f"127.0.0.1:{server.dispatch_port}",
            "--notification", f"127.0.0.1:{server.notification_port}",
            "--accounts", str(tmp_path / "accounts"),
            "--junit", str(tmp_path / "junit.xml"),
        ]
    )
    out = io.StringIO()
    status = yield defer.ensureDeferred(main.run(reactor, args, out))
    text = out.getvalue()
    assert status == 1
    assert "  alice> PNG\n  alice< QNG\n" in text
    assert f"ok {tmp_path / 'passing.txt'}" in text
    assert f"FAIL {tmp_path / 'failing.txt'}:3: step 3 failed\n  expected  alice< VER 1 MSNP6\n  received  alice< VER 1 MSNP7\n" in text
    assert "never sent" not in text
    assert text.splitlines()[-1] == "1 passed, 1 failed"
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failures = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failures == [str(tmp_path / "failing.txt")]


@pytest_twisted.inlineCallbacks
def test_waits_silence_and_closes_fail_plainly(server, tmp_path):
    """
    A line that never comes, a line during a silence and a connection that
    stays open are each a failure with what happened instead.
    """
    cases = {
        "timeout 0.2s\nalice connects to notification\nalice< VER 1 MSNP7\n": "(nothing within 0.2s)",
        "alice connects to notification\nalice> VER 1 MSNP7\nalice hears nothing for 0.3s\n": "alice< VER 1 MSNP7",
        "timeout 0.2s\nalice connects to notification\nalice is disconnected\n": "(still connected after 0.2s)",
        "alice connects to notification\nalice> OUT\nalice< OUT\n": "(the connection was closed)",
        "alice connects to notification\nalice> OUT\nalice is disconnected\nalice> PNG\n": "the connection is closed",
        "in any order:\n  alice< A\nalice connects to dispatch\n": "alice to be connected",
    }
    for body, received in cases.items():
        path = tmp_path / "case.txt"
        path.write_text(body)
        args = main.options([str(path), "--server", f"127.0.0.1:{server.dispatch_port}", "--notification", f"127.0.0.1:{server.notification_port}", "-q"])
        out = io.StringIO()
        status = yield defer.ensureDeferred(main.run(reactor, args, out))
        assert status == 1
        assert received in out.getvalue(), (body, out.getvalue())
