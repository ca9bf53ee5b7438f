"""
The conversation transcripts in tests/transcripts/, each played by
msnp-script's engine against a live server (dispatch, notification,
switchboard and the Passport login on TLS, all on 127.0.0.1 port 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from conftest import ACCOUNTS
from msnp.script import engine, transcript

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


def engine_for(server) -> engine.Engine:
    return engine.Engine(
        reactor,
        {
            "dispatch": f"127.0.0.1:{server.dispatch_port}",
            "notification": f"127.0.0.1:{server.notification_port}",
            "switchboard": f"127.0.0.1:{server.switchboard_port}",
        },
        {handle: password for handle, (password, _) in ACCOUNTS.items()},
        nexus=f"https://127.0.0.1:{server.passport_port}/rdr/pprdr.asp",
        trust=server.cert_pem,
    )


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
@pytest_twisted.inlineCallbacks
def test_transcript(path, live_server):
    """
    Every step of the transcript happens as written.
    """
    runner = engine_for(live_server)
    result = yield defer.ensureDeferred(runner.run(transcript.load(str(path))))
    if not result.passed:
        pytest.fail(result.describe(), pytrace=False)
