"""
The conversation transcripts in tests/transcripts/, each played by
msnp-script's engine against a live server (dispatch, notification,
switchboard and the Passport login on TLS, all on 127.0.0.1 port 0).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from conftest import ACCOUNTS, start_server
from msnp.devcert import write_self_signed
from msnp.script import engine, transcript

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


@pytest.fixture(scope="session")
def passport_certificate(tmp_path_factory):
    """
    A key and self-signed certificate for the Passport login, made once.
    """
    return write_self_signed(tmp_path_factory.mktemp("passport-cert"))


@pytest.fixture
def transcript_server(tmp_path, server_config, accounts_database, passport_certificate):
    """
    The fixture server of conftest with the Passport login added, so that
    MSNP8+ transcripts can fetch tickets.
    """
    key_path, cert_path, _ = passport_certificate
    db_path = tmp_path / "msnp.sqlite"
    shutil.copyfile(accounts_database, db_path)
    passport = f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    running = pytest_twisted.blockon(start_server(str(db_path), server_config, extra_endpoints={"passport": passport}))
    yield running
    if running.service.running:
        pytest_twisted.blockon(running.stop())


def engine_for(server, cert_pem: bytes) -> engine.Engine:
    passport_port = server.service.listeners["passport"].port.getHost().port
    return engine.Engine(
        reactor,
        {
            "dispatch": f"127.0.0.1:{server.dispatch_port}",
            "notification": f"127.0.0.1:{server.notification_port}",
            "switchboard": f"127.0.0.1:{server.switchboard_port}",
        },
        {handle: password for handle, (password, _) in ACCOUNTS.items()},
        nexus=f"https://127.0.0.1:{passport_port}/rdr/pprdr.asp",
        trust=cert_pem,
    )


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
@pytest_twisted.inlineCallbacks
def test_transcript(path, transcript_server, passport_certificate):
    """
    Every step of the transcript happens as written.
    """
    runner = engine_for(transcript_server, passport_certificate[2])
    result = yield defer.ensureDeferred(runner.run(transcript.load(str(path))))
    if not result.passed:
        pytest.fail(result.describe(), pytrace=False)
