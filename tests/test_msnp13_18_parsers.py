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


from msnp.msn import soap  # noqa: E402

SOAP_PIECES = st.sampled_from(
    [
        "<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'>",
        "</soap:Envelope>",
        "<soap:Body>",
        "</soap:Body>",
        "<soap:Header><TicketToken>t=a&amp;p=b</TicketToken></soap:Header>",
        "<ABFindAll xmlns='http://www.msn.com/webservices/AddressBook'>",
        "</ABFindAll>",
        "<PassportCookie><t>x</t><p>y</p></PassportCookie>",
        "<!DOCTYPE x>",
        "&lt;",
        "&x;",
        "text",
    ]
)


@given(st.lists(SOAP_PIECES, max_size=12).map("".join))
def test_soap_requests_are_read_or_refused(document):
    """
    Whatever a client posts, the request reader gives the operation and
    the token, or refuses with its own error.
    """
    try:
        operation, root = soap.parse_request(document.encode())
    except soap.BadRequest:
        return
    assert safexml.local(operation.tag)
    token = soap.ticket_of(root)
    assert token is None or isinstance(token, str)


@given(st.binary(max_size=300))
def test_soap_bytes_never_raise(data):
    try:
        soap.parse_request(data)
    except soap.BadRequest:
        pass


def test_soap_size_limit():
    try:
        soap.parse_request(b"<a>" + b"x" * (soap.MAX_REQUEST + 1) + b"</a>")
    except soap.BadRequest as e:
        assert "too large" in str(e)
    else:
        raise AssertionError("accepted")
