"""
The SIP codec: header grammar, datagram and stream parsing, serialisation,
limits, and hypothesis properties (round trip, any chunking of a stream,
arbitrary bytes never raise anything but ParseError).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msnp.sip.grammar import Address, CSeq, GrammarError, URI, Via, display_name_part, split_list
from msnp.sip.message import COMPACT_FORMS, Headers, ParseError, Request, Response, StreamParser, parse_datagram

MESSAGE = (
    "MESSAGE sip:alice@example.com SIP/2.0\r\n"
    "v: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK77;rport\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Kim Ö" <sip:kim@partner.example>;tag=abc\r\n'
    "t: <sip:alice@example.com>\r\n"
    "i: 1234@partner.example\r\n"
    "CSeq: 1 MESSAGE\r\n"
    "c: text/plain;charset=UTF-8\r\n"
    "l: 6\r\n"
    "\r\n"
    "hé ho"
).encode("utf-8")


def test_compact_forms_and_octet_content_length():
    """
    Compact names are read as their full names; Content-Length counts
    octets, so a UTF-8 body comes through byte for byte.
    """
    message = parse_datagram(MESSAGE)
    assert isinstance(message, Request)
    assert message.method == "MESSAGE" and message.uri == "sip:alice@example.com"
    assert message.call_id == "1234@partner.example"
    assert message.headers.get("Content-Type") == "text/plain;charset=UTF-8"
    assert message.body == "hé ho".encode("utf-8")
    assert message.from_.display == "Kim Ö" and message.from_.tag == "abc"
    assert message.top_via.branch == "z9hG4bK77" and "rport" in message.top_via.params
    wire = message.to_bytes()
    assert b"\r\nContent-Length: 6\r\n\r\nh\xc3\xa9 ho" in wire
    assert b"\r\nCall-ID: 1234@partner.example\r\n" in wire


def test_datagram_body_rules():
    """
    Without Content-Length a datagram's body runs to its end; a shorter
    one cuts the rest off; a longer one is refused with 400.
    """
    head, body = MESSAGE.split(b"\r\n\r\n", 1)
    no_length = head.replace(b"l: 6\r\n", b"").replace(b"\r\nl: 6", b"") + b"\r\n\r\n" + body
    assert parse_datagram(no_length).body == body
    assert parse_datagram(MESSAGE + b"trailing junk").body == body
    with pytest.raises(ParseError) as error:
        parse_datagram(MESSAGE.replace(b"l: 6", b"l: 60"))
    assert error.value.status == 400 and error.value.message is not None


@pytest.mark.parametrize(
    "mangle, status",
    [
        (lambda m: m.replace(b"CSeq: 1 MESSAGE", b"CSeq: x MESSAGE"), 400),
        (lambda m: m.replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INVITE"), 400),
        (lambda m: m.replace(b"i: 1234@partner.example\r\n", b""), 400),
        (lambda m: m.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (lambda m: m.replace(b"Max-Forwards: 70", b"Max-Forwards: many"), 400),
        # Digits of other scripts are not numbers here.
        (lambda m: m.replace(b"CSeq: 1 MESSAGE", "CSeq: ² MESSAGE".encode()), 400),
        (lambda m: m.replace(b"l: 6", "l: ６".encode()), 400),
        (lambda m: m.replace(b"t: <sip:alice@example.com>", b"t: <sip:alice@exa mple.com"), 400),
    ],
)
def test_bad_requests_are_refused_with_a_status(mangle, status):
    with pytest.raises(ParseError) as error:
        parse_datagram(mangle(MESSAGE))
    assert error.value.status == status


def test_oversized_input_is_refused():
    huge = MESSAGE.replace(b"l: 6", b"l: 70000") + b"x" * 70000
    with pytest.raises(ParseError) as error:
        parse_datagram(huge)
    assert error.value.status in (413, 513)
    parser = StreamParser(max_body=1000)
    with pytest.raises(ParseError) as error:
        parser.feed(MESSAGE.replace(b"l: 6", b"l: 5000"))
    assert error.value.status == 413


def test_folded_headers_and_lists():
    message = parse_datagram(
        MESSAGE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nSupported: a,\r\n  b\r\nSupported: c\r\n")
    )
    assert message.headers.get_list("Supported") == ["a", "b", "c"]


def test_stream_framing_keepalives_and_bad_messages():
    """
    A stream needs Content-Length; CRLFCRLF between messages is a ping;
    a framed message with a bad field is reported and the stream goes on.
    """
    parser = StreamParser()
    results = parser.feed(b"\r\n\r\n" + MESSAGE + MESSAGE.replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INFO") + MESSAGE[:30])
    assert parser.pings == 1
    assert isinstance(results[0], Request) and isinstance(results[1], ParseError)
    assert parser.feed(MESSAGE[30:])[0].body == "hé ho".encode("utf-8")
    with pytest.raises(ParseError):
        StreamParser().feed(MESSAGE.replace(b"l: 6\r\n", b"") + b"hello")


def test_responses():
    response = parse_datagram(
        b"SIP/2.0 481 Call/Transaction Does Not Exist\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response) and response.status == 481 and response.cseq == CSeq(2, "NOTIFY")
    assert response.reason == "Call/Transaction Does Not Exist"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sip:alice@example.com", ("sip", "alice", "example.com", None)),
        ("sips:bob@x.example:5061;transport=tls", ("sips", "bob", "x.example", 5061)),
        ("sip:[2001:db8::1]:5070;lr", ("sip", None, "[2001:db8::1]", 5070)),
        ("sip:pic1@contoso.com;opaque=user:epid:abc;gruu", ("sip", "pic1", "contoso.com", None)),
        ("tel:+1-201-555-0123", ("tel", "+1-201-555-0123", "", None)),
    ],
)
def test_uris(text, expected):
    uri = URI.parse(text)
    assert (uri.scheme, uri.user, uri.host, uri.port) == expected
    assert URI.parse(str(uri)) == uri


def test_uri_parameters_without_values():
    uri = URI.parse("sip:proxy.example;lr;ms-opaque")
    assert uri.params == {"lr": None, "ms-opaque": None}
    assert str(uri) == "sip:proxy.example;lr;ms-opaque"


@pytest.mark.parametrize("text", ["http://x", "sip:", "sip:a@", "sip:a@b:99999", "sip:a@[::1", "sip:a b@c"])
def test_bad_uris(text):
    with pytest.raises(GrammarError):
        URI.parse(text)


def test_addresses_and_via():
    address = Address.parse('"A \\"Q\\"" <sip:alice@example.com>;tag=9;epid=e1')
    assert address.display == 'A "Q"' and address.tag == "9" and address.params["epid"] == "e1"
    assert Address.parse(str(address)) == address
    bare = Address.parse("sip:kim@partner.example;tag=5")
    assert bare.tag == "5" and bare.uri.params == {}
    via = Via.parse("SIP/2.0/TCP [2001:db8::2]:5061;branch=z9hG4bKq;received=192.0.2.1")
    assert via.host == "[2001:db8::2]" and via.port == 5061 and via.params["received"] == "192.0.2.1"
    assert split_list('"a, b" <sip:x@y>, <sip:z@w;p=1,2>') == ['"a, b" <sip:x@y>', "<sip:z@w;p=1,2>"]


# Properties

tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
# Extra header fields must not be a second copy, in any spelling, of one the
# parser checks (a second From with a stray quote is rightly a 400).
CHECKED_FIELDS = {"content-length", "from", "to", "via", "cseq", "call-id", "max-forwards"}
header_names = tokens.filter(lambda t: COMPACT_FORMS.get(t.lower(), t.lower()) not in CHECKED_FIELDS)
header_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=40
).map(str.strip)
bodies = st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode("utf-8"))


@st.composite
def requests(draw):
    method = draw(st.sampled_from(["MESSAGE", "SUBSCRIBE", "NOTIFY", "INFO", "INVITE", "BYE", "OPTIONS"]))
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{draw(st.integers(1, 65535))};branch=z9hG4bK{draw(tokens)}")
    headers.add("From", f"<sip:{draw(tokens)}@example.com>;tag={draw(tokens)}")
    headers.add("To", f"<sip:{draw(tokens)}@partner.example>")
    headers.add("Call-ID", draw(tokens))
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=6)):
        headers.add(name, value)
    return Request(method, f"sip:{draw(tokens)}@example.com", headers, draw(bodies))


def _same(a, b):
    assert a.start_line() == b.start_line()
    assert list(a.headers) == list(b.headers)
    assert a.body == b.body


@given(requests())
def test_round_trip(request):
    """
    Any request we write reads back the same, over UDP and over a stream.
    """
    wire = request.to_bytes()
    _same(parse_datagram(wire), parse_datagram(parse_datagram(wire).to_bytes()))
    parsed = parse_datagram(wire)
    assert parsed.body == request.body
    [streamed] = StreamParser().feed(wire)
    _same(streamed, parsed)


@given(st.lists(requests(), min_size=1, max_size=4), st.data())
@settings(max_examples=60)
def test_stream_chunking(messages, data):
    """
    A stream split anywhere gives the same messages as one whole.
    """
    wire = b"".join(m.to_bytes() for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    parser = StreamParser()
    received = []
    previous = 0
    for cut in cuts + [len(wire)]:
        received.extend(parser.feed(wire[previous:cut]))
        previous = cut
    assert len(received) == len(messages)
    for got, sent in zip(received, messages):
        assert got.body == sent.body and got.start_line() == sent.start_line()


@given(st.binary(max_size=600))
def test_arbitrary_datagrams_only_raise_parse_errors(data):
    try:
        parse_datagram(data)
    except ParseError:
        pass


@given(requests(), st.integers(0, 400), st.binary(min_size=1, max_size=4))
def test_mangled_requests_only_raise_parse_errors(request, position, junk):
    wire = request.to_bytes()
    position = min(position, len(wire))
    mangled = wire[:position] + junk + wire[position:]
    try:
        parse_datagram(mangled)
    except ParseError:
        pass
    try:
        StreamParser().feed(mangled)
    except ParseError:
        pass


@given(st.text(max_size=80))
def test_grammar_only_raises_grammar_errors(text):
    for parse in (URI.parse, Address.parse, Via.parse, CSeq.parse):
        try:
            parse(text)
        except GrammarError:
            pass


@given(st.text(max_size=60))
def test_any_display_name_is_written_so_that_it_reads_back(name):
    """
    A friendly name of any characters (quotes, backslashes, angle
    brackets, commas, control characters) as a From display name reads
    back as itself, control characters as spaces and runs of white space
    as one.
    """
    written = display_name_part(name) + "<sip:alice@example.com>;tag=t1"
    address = Address.parse(written)
    expected = " ".join("".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in name).split())
    assert address.display == (expected or None)
    assert str(address.uri) == "sip:alice@example.com" and address.tag == "t1"
    assert split_list(written + ", <sip:bob@example.com>")[0] == written
