"""
Property tests for the MSNP13+ parsers: the ADL/RML/FQY payloads and the
hardened XML reader (no input raises anything but their own errors; what
the server writes reads back the same), and the web services' SOAP
requests.
"""

from hypothesis import given, settings, strategies as st

from msnp.msn import membership, safexml

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
HOST = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=2, max_size=3).map(".".join)
ENTRY = st.builds(lambda u, h, b: membership.ListEntry(f"{u}@{h}", b, 1), LOCAL, HOST, st.integers(1, 7))


@given(st.binary(max_size=400))
def test_any_bytes_are_refused_or_read(data):
    try:
        membership.parse(data)
    except membership.ListPayloadError as e:
        assert e.code in (201, 204, 240, 241)


@given(st.lists(ENTRY, max_size=20), st.booleans())
def test_render_reads_back(entries, initial):
    seen, unique = set(), []
    for entry in entries:
        if entry.handle not in seen:
            seen.add(entry.handle)
            unique.append(entry)
    parsed_initial, parsed = membership.parse(membership.render(unique, initial))
    assert parsed_initial == initial
    assert sorted(parsed, key=lambda e: e.handle) == sorted(unique, key=lambda e: e.handle)


@given(
    st.recursive(
        st.sampled_from(["<c/>", '<c n="x" l="1"/>', '<c n="y" l="9" t="1"/>', "text", "&amp;", "<t/>"]),
        lambda inner: st.builds(lambda tag, kids: f"<{tag} n=\"ex.com\" l=\"1\">{''.join(kids)}</{tag}>", st.sampled_from(["ml", "d", "c", "t", "x"]), st.lists(inner, max_size=3)),
        max_leaves=12,
    )
)
def test_structured_documents(document):
    try:
        membership.parse(document.encode())
    except membership.ListPayloadError as e:
        assert e.code in (201, 204, 240, 241)


def test_entities_and_depth_refused():
    for data in (
        b'<!DOCTYPE ml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ml>&b;</ml>',
        b'<!DOCTYPE ml SYSTEM "http://example.com/x.dtd"><ml/>',
        b"<ml>" + b"<d>" * 100 + b"</d>" * 100 + b"</ml>",
    ):
        try:
            safexml.parse_xml(data)
        except safexml.MalformedXML:
            pass
        else:
            raise AssertionError(data)
