"""
Presence documents: the MSN state mapping out (PIDF note/RPID, XPIDF
msnsubstatus) and in (PIDF, RPID, XPIDF, the tolerant readings seen from
real peers), with the parser property-tested against arbitrary bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msnp.sip import presence

ALICE = "sip:alice@example.com"


@pytest.mark.parametrize("status", ["NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", None])
@pytest.mark.parametrize("kind", [presence.PIDF, presence.XPIDF])
def test_every_state_reads_back_as_itself(status, kind):
    document = presence.render(kind, ALICE, status)
    assert presence.parse(kind, document) == status


def test_pidf_shape():
    document = presence.render_pidf(ALICE, "BRB").decode()
    assert 'entity="sip:alice@example.com"' in document
    assert "<basic>open</basic>" in document and "<note>Be Right Back</note>" in document
    assert "<rpid:in-transit/>" in document
    offline = presence.render_pidf(ALICE, None).decode()
    assert "<basic>closed</basic>" in offline and "rpid:activities" not in offline
    # Hidden is shown as offline.
    assert presence.parse(presence.PIDF, presence.render_pidf(ALICE, "HDN")) is None


def test_xpidf_shape():
    document = presence.render_xpidf(ALICE, "PHN").decode()
    assert '<status status="inuse"/>' in document and '<msnsubstatus substatus="onthephone"/>' in document


@pytest.mark.parametrize(
    "body, expected",
    [
        # Live's gateway: bare basic open
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:k@p"><tuple id="t"><status><basic>open</basic></status></tuple></presence>', "NLN"),
        # RPID activity beside the tuple
        (
            b'<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
            b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:k@p"><tuple id="t"><status><basic>open</basic></status></tuple>'
            b'<dm:person id="p"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person></presence>',
            "PHN",
        ),
        # baresip while Unknown: basic "?" and empty activities
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:k@p"><tuple id="t"><status><basic>?</basic></status></tuple></presence>', None),
        # entity without sip: (AOL), note in the tuple
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="k@p"><tuple id="t"><status><basic>open</basic></status><note>Busy</note></tuple></presence>', "BSY"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:k@p"><tuple id="t"><status><basic>closed</basic></status></tuple></presence>', None),
        (b"not xml at all", None),
        (b"", None),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><presence><tuple><status><basic>open</basic></status></tuple></presence>', None),
    ],
)
def test_inbound_documents(body, expected):
    assert presence.parse(presence.PIDF, body) == expected


def test_document_type_follows_accept():
    assert presence.choose_type([]) == presence.PIDF
    assert presence.choose_type(["application/xpidf+xml", "application/pidf+xml"]) == presence.XPIDF
    ocs = ["application/msrtc-event-categories+xml", "application/xpidf+xml", "text/xml+msrtc.pidf", "application/pidf+xml"]
    assert presence.choose_type(ocs) == presence.XPIDF
    assert presence.choose_type(["application/rlmi+xml"]) is None
    assert presence.choose_type(["*/*"]) == presence.PIDF


@given(st.binary(max_size=400))
def test_parser_never_raises(body):
    assert presence.parse(presence.PIDF, body) in (None, "NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN")


@given(st.text(max_size=60), st.sampled_from(["NLN", "BSY", "AWY", None]))
def test_entities_are_escaped(entity, status):
    document = presence.render_pidf("sip:" + entity, status)
    assert presence.parse(presence.PIDF, document) == status
