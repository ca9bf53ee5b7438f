"""
The sans-I/O framer (L{msnp.msn.framing.Framer}) against the framing msnp
had before it: Twisted's LineReceiver with the line parser on each line and
the payload read in raw mode.  Any stream, cut into reads at any points,
must give the same commands, payloads and errors through both, for client
lines, server lines and the switchboard's fast parser; and the framer's
work must stay linear in the bytes fed however they are cut.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.protocols.basic import LineReceiver

from msnp.msn import dialects, wire
from msnp.msn.framing import Framer, LineTooLong

CLIENT_PAYLOAD_COMMANDS = frozenset({"MSG", "QRY", "UUX"})
LETTERS = frozenset({b"U", b"N", b"A", b"D"})


class LineReceiverReading(LineReceiver):
    """
    The reference: how msnp framed commands before L{Framer} (LineReceiver
    with C{delimiter} LF, the parser on each line, the payload read byte-
    exact in raw mode, reading stopped for good at an over-long line),
    recording every frame instead of acting on it.
    """

    delimiter = b"\n"

    def __init__(self, parse_line, max_length: int):
        self.parse_line = parse_line
        self.MAX_LENGTH = max_length
        self.frames: list = []
        self.stopped = False
        self.pending = None
        self.needed = 0
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        if not self.stopped:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.stopped:
            return
        try:
            command, length = self.parse_line(line)
        except wire.WireError as error:
            self.frames.append(error)
            return
        if length:
            self.pending = command
            self.needed = length
            self.chunks = []
            self.setRawMode()
            return
        if length == 0:
            command = wire.Command(command.name, command.trid, command.args, b"")
        self.frames.append(command)

    def rawDataReceived(self, data: bytes) -> None:
        taken = data[: self.needed]
        self.chunks.append(taken)
        self.needed -= len(taken)
        if self.needed:
            return
        pending = self.pending
        self.frames.append(wire.Command(pending.name, pending.trid, pending.args, b"".join(self.chunks)))
        self.setLineMode(data[len(taken) :])

    def lineLengthExceeded(self, line: bytes) -> None:
        self.frames.append(LineTooLong(self.MAX_LENGTH))
        self.stopped = True


def comparable(frame):
    """
    A frame as a value: errors by kind, code, TrID and reason.
    """
    if isinstance(frame, wire.WireError):
        return (type(frame).__name__, frame.code, frame.trid, frame.reason)
    return frame


def through_line_receiver(parse_line, max_length: int, reads: list[bytes]) -> list:
    reference = LineReceiverReading(parse_line, max_length)
    for data in reads:
        reference.dataReceived(data)
    return [comparable(frame) for frame in reference.frames]


def through_framer(framer: Framer, reads: list[bytes], pull_every_read: bool = True) -> list:
    frames = []

    def pull():
        # As the switchboard pulls: while the framer is not drained.
        while not framer.drained:
            frame = framer.next_frame()
            if frame is None:
                break
            if type(frame) is tuple:
                frame = wire.plain_msg_command(frame)
            frames.append(comparable(frame))
        # Drained means nothing more comes out until more is fed.
        assert framer.next_frame() is None

    for data in reads:
        framer.feed(data)
        if pull_every_read:
            pull()
    pull()
    return frames


def cut(stream: bytes, sizes: list[int]) -> list[bytes]:
    """
    C{stream} cut into reads of the given sizes, repeated as needed.
    """
    reads = []
    position = 0
    index = 0
    while position < len(stream):
        size = sizes[index % len(sizes)]
        reads.append(stream[position : position + size])
        position += size
        index += 1
    return reads


names = st.sampled_from(["MSG", "QRY", "UUX", "USR", "VER", "CHG", "PNG", "OUT", "ZZZ", "msg", "200", "ACK", "NLN", "BLP", "LST"])
arguments = st.lists(
    st.one_of(
        st.sampled_from(["A", "U", "D", "N", "Alice", "a@b.c", "0", "007", "-1", "x", "%20", "MSNP8", "\u00e9"]),
        st.text(alphabet="AZaz09%.@-", min_size=1, max_size=6),
    ),
    max_size=4,
)
payloads = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"\r\n", b"MSG 1 A 3\r\nabc", b"\n\n\n", b"x" * 60]))
lengths = st.one_of(
    st.just(None),
    st.sampled_from([b"0", b"1", b"5", b"007", b"-1", b"x", b"64", b"65", b"99999999999", b"4294967296"]),
)


@st.composite
def commands(draw):
    """
    A line as a client or server might send it, with the payload its
    length announces when it has one (sometimes a length that is wrong).
    """
    name = draw(names)
    trid = draw(st.one_of(st.none(), st.integers(0, 2**32 + 5)))
    args = draw(arguments)
    payload = draw(payloads)
    length = draw(lengths)
    parts = [name] + ([] if trid is None else [str(trid)]) + args
    line = " ".join(parts).encode("utf-8")
    if length is None:
        line += b" %d" % len(payload)
        body = payload
    else:
        line += b" " + length
        body = payload
    ending = draw(st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]))
    return line + ending + body


pieces = st.one_of(
    commands(),
    st.builds(lambda trid, letter, payload: b"MSG %d %s %d\r\n" % (trid, letter, len(payload)) + payload,
              st.integers(0, 30), st.sampled_from([b"A", b"N", b"U", b"D", b"X"]), payloads),
    st.sampled_from([b"\r\n", b"\n", b"  \r\n", b"\r", b"\x00\r\n", b"\xff\xfe\r\n", b"PNG\r\n", b"OUT\r\n"]),
    st.builds(lambda n: b"VER 1 " + b"x" * n + b"\r\n", st.integers(20, 80)),
    st.binary(max_size=50),
)
read_sizes = st.lists(st.one_of(st.integers(1, 7), st.integers(8, 300), st.integers(300, 5000)), min_size=1, max_size=10)
max_lengths = st.sampled_from([16, 40, 64, 8192])


@settings(max_examples=600, deadline=None)
@given(st.lists(pieces, max_size=25), read_sizes, max_lengths, st.sampled_from([0, 5, 64, 1664]))
def test_client_lines_frame_as_line_receiver_did(stream_pieces, sizes, max_length, payload_limit):
    """
    Client lines (the server's side): the same commands, payloads and
    errors, in the same order, as LineReceiver with
    L{wire.parse_client_line}, whatever the reads.
    """
    stream = b"".join(stream_pieces)

    def parse(line):
        return wire.parse_client_line(line, CLIENT_PAYLOAD_COMMANDS, payload_limit)

    reads = cut(stream, sizes)
    expected = through_line_receiver(parse, max_length, reads)
    assert through_framer(Framer(parse, max_length), reads) == expected
    # Pulling only once everything has arrived changes nothing.
    assert through_framer(Framer(parse, max_length), reads, pull_every_read=False) == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(pieces, max_size=25), read_sizes, max_lengths, st.sampled_from([0, 5, 1664]))
def test_fast_parser_gives_what_the_general_parser_gives(stream_pieces, sizes, max_length, payload_limit):
    """
    With the switchboard's plain-MSG parser tried first, the frames it
    takes, read as commands, are exactly those the reference makes.
    """
    stream = b"".join(stream_pieces)

    def parse(line):
        return wire.parse_client_line(line, frozenset({"MSG"}), payload_limit)

    reads = cut(stream, sizes)
    framer = Framer(parse, max_length, wire.plain_msg_parser(LETTERS, payload_limit))
    assert through_framer(framer, reads) == through_line_receiver(parse, max_length, reads)


def through_framer_whole_first(framer: Framer, reads: list[bytes]) -> list:
    """
    As the switchboard reads: a read that is one whole fast frame is taken
    by C{whole_fast_frame}, any other is fed and pulled.
    """
    frames = []
    for data in reads:
        frame = framer.whole_fast_frame(data)
        if frame is not None:
            frames.append(comparable(wire.plain_msg_command(frame)))
            continue
        framer.feed(data)
        while not framer.drained:
            frame = framer.next_frame()
            if frame is None:
                break
            frames.append(comparable(wire.plain_msg_command(frame) if type(frame) is tuple else frame))
    return frames


@settings(max_examples=400, deadline=None)
@given(st.lists(pieces, max_size=25), read_sizes, max_lengths, st.sampled_from([0, 5, 1664]), st.booleans())
def test_whole_fast_frames_are_what_feeding_gives(stream_pieces, sizes, max_length, payload_limit, one_per_read):
    """
    Taking a read that is exactly one plain MSG without the framer's
    queue gives the frames feeding every read gives, in the same order,
    whether reads hold one frame each or are cut anywhere.
    """
    stream = b"".join(stream_pieces)

    def parse(line):
        return wire.parse_client_line(line, frozenset({"MSG"}), payload_limit)

    reads = list(stream_pieces) if one_per_read else cut(stream, sizes)
    reads = [r for r in reads if r]
    fast = wire.plain_msg_parser(LETTERS, payload_limit)
    assert through_framer_whole_first(Framer(parse, max_length, fast), reads) == through_framer(
        Framer(parse, max_length, fast), reads
    )


def test_whole_fast_frame_takes_only_a_whole_read_with_nothing_held():
    fast = wire.plain_msg_parser(LETTERS, 1664)
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset({"MSG"}), 1664), 1024, fast)
    assert framer.whole_fast_frame(b"MSG 1 A 2\r\nhi") == (1, b"A", b"hi")
    assert framer.whole_fast_frame(b"MSG 1 A 2\r\nhi!") is None
    assert framer.whole_fast_frame(b"MSG 1 A 3\r\nhi") is None
    framer.feed(b"MSG 2 A")
    assert framer.next_frame() is None
    assert framer.whole_fast_frame(b"MSG 3 A 2\r\nhi") is None


@settings(max_examples=400, deadline=None)
@given(st.lists(pieces, max_size=25), read_sizes, max_lengths, st.sampled_from([7, 8, 12]))
def test_server_lines_frame_as_line_receiver_would(stream_pieces, sizes, max_length, version):
    """
    Server lines (a client's side) through L{wire.parse_server_line} with a
    dialect's rules: the same frames as LineReceiver would give.
    """
    stream = b"".join(stream_pieces)
    rules = dialects.ALL_DIALECTS[version].server_lines

    def parse(line):
        return wire.parse_server_line(line, rules, 64)

    reads = cut(stream, sizes)
    assert through_framer(Framer(parse, max_length), reads) == through_line_receiver(parse, max_length, reads)


def server_parser(version: int = 12, limit: int = 65536):
    rules = dialects.ALL_DIALECTS[version].server_lines
    return lambda line: wire.parse_server_line(line, rules, limit)


def test_server_lines_as_msnp_sends_them():
    """
    Lines the way this server writes them read back with the right TrID,
    arguments and payload, including those without a TrID.
    """
    msnp12 = dialects.ALL_DIALECTS[12]
    msnp7 = dialects.ALL_DIALECTS[7]
    stream = b"".join(
        [
            wire.format_line("VER", 1, "MSNP12"),
            msnp12.nln("NLN", "bob@example.com", "Bob", 0),
            msnp12.fln("bob@example.com"),
            msnp12.joi("bob@example.com", "Bob", 5),
            wire.format_line("RNG", None, "11752013", "127.0.0.1:1864", "CKI", "1.2.3", "bob@example.com", "Bob"),
            wire.format_payload("MSG", None, ("Hotmail", "Hotmail"), b"MIME-Version: 1.0\r\n\r\n"),
            wire.format_payload("NOT", None, (), b"<NOTIFICATION/>"),
            wire.format_payload("IPG", None, (), b"<x/>"),
            msnp12.config_file(9, "Shields.xml", b"<config/>"),
            msnp12.ubx("bob@example.com", b"<Data/>"),
            wire.format_line("LSG", None, "0", "Other", 0),
            wire.format_line("LST", None, "N=bob@example.com", "F=Bob", "C=x", 11),
            wire.format_line("BLP", None, "AL"),
            wire.format_line("BLP", 4, "AL"),
            wire.format_line("CHL", 0, "15570131571988941333"),
            wire.format_error(911, 3),
            wire.format_error(200, None),
            msnp12.qng(50),
            wire.format_line("OUT", None, "OTH"),
        ]
    )
    framer = Framer(server_parser(12), 8192)
    for position in range(0, len(stream), 3):
        framer.feed(stream[position : position + 3])
    frames = []
    while (frame := framer.next_frame()) is not None:
        frames.append((frame.name, frame.trid, frame.args, frame.payload))
    assert frames == [
        ("VER", 1, ("MSNP12",), None),
        ("NLN", None, ("NLN", "bob@example.com", "Bob", "0"), None),
        ("FLN", None, ("bob@example.com",), None),
        ("JOI", None, ("bob@example.com", "Bob", "5"), None),
        ("RNG", None, ("11752013", "127.0.0.1:1864", "CKI", "1.2.3", "bob@example.com", "Bob"), None),
        ("MSG", None, ("Hotmail", "Hotmail"), b"MIME-Version: 1.0\r\n\r\n"),
        ("NOT", None, (), b"<NOTIFICATION/>"),
        ("IPG", None, (), b"<x/>"),
        ("GCF", 9, ("Shields.xml",), b"<config/>"),
        ("UBX", None, ("bob@example.com",), b"<Data/>"),
        ("LSG", None, ("0", "Other", "0"), None),
        ("LST", None, ("N=bob@example.com", "F=Bob", "C=x", "11"), None),
        ("BLP", None, ("AL",), None),
        ("BLP", 4, ("AL",), None),
        ("CHL", 0, ("15570131571988941333",), None),
        ("911", 3, (), None),
        ("200", None, (), None),
        ("QNG", None, ("50",), None),
        ("OUT", None, ("OTH",), None),
    ]
    # Before MSNP8 the list lines of a SYN reply carry its TrID.
    old = Framer(server_parser(7), 8192)
    old.feed(wire.format_line("LSG", 6, 12, 1, 1, 0, "Other", 0) + msnp7.nln("NLN", "bob@example.com", "Bob"))
    assert old.next_frame() == wire.Command("LSG", 6, ("12", "1", "1", "0", "Other", "0"))
    assert old.next_frame() == wire.Command("NLN", None, ("NLN", "bob@example.com", "Bob"))


def test_server_line_errors():
    """
    A server line without the TrID its command needs, or with a bad
    payload length, is a WireError; a length past the limit cannot be
    skipped, so its code is None.
    """
    parse = server_parser(12, limit=100)
    for line, code in [(b"USR OK", 200), (b"NOT", None), (b"NOT x", None), (b"MSG a b 101", None), (b"\xff", 200)]:
        try:
            parse(line)
        except wire.WireError as error:
            assert error.code == code, line
        else:
            raise AssertionError(line)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["MSG", "NOT", "IPG", "UBX", "GCF"]),
    st.lists(st.text(alphabet="abcXYZ019@.%", min_size=1, max_size=8), max_size=3),
    st.binary(max_size=100),
    read_sizes,
)
def test_server_payloads_arrive_byte_exact(name, args, payload, sizes):
    """
    Any server payload, cut anywhere, comes out byte-exact with its line.
    """
    trid = 7 if name == "GCF" else None
    if name == "GCF" and args and args[0].isdigit():
        args = ["f" + args[0]] + args[1:]
    stream = wire.format_payload(name, trid, args, payload) + b"QNG 5\r\n"
    framer = Framer(server_parser(12), 8192)
    frames = []
    for data in cut(stream, sizes):
        framer.feed(data)
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
    assert frames == [wire.Command(name, trid, tuple(args), payload), wire.Command("QNG", None, ("5",))]


def test_frames_are_parsed_when_pulled():
    """
    Nothing is parsed until it is asked for, so a consumer that stops
    pulling (a command waiting on a Deferred) can change the parser for
    the lines that follow.
    """
    seen = []

    def parse(line):
        seen.append(line)
        return wire.parse_client_line(line, frozenset(), 64)

    framer = Framer(parse, 64)
    framer.feed(b"VER 1 MSNP8\r\nMSG 2 A 3\r\nabcCVR 3 x\r\n")
    assert framer.next_frame() == wire.Command("VER", 1, ("MSNP8",))
    assert seen == [b"VER 1 MSNP8\r"]
    framer.parse_line = lambda line: wire.parse_client_line(line, frozenset({"MSG"}), 64)
    assert framer.next_frame() == wire.Command("MSG", 2, ("A",), b"abc")
    assert framer.next_frame() == wire.Command("CVR", 3, ("x",))
    assert framer.next_frame() is None
    assert framer.buffered == 0


def test_buffered_counts_what_is_held():
    """
    C{buffered} is every byte fed and not yet returned: lines, payloads
    in progress and reads not yet reached.
    """
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset({"MSG"}), 1000), 100)
    framer.feed(b"MSG 1 A 10\r\nab")
    framer.feed(b"cd")
    assert framer.buffered == 16
    assert framer.next_frame() is None
    assert framer.buffered == 4
    framer.feed(b"efghijPNG")
    assert framer.next_frame() == wire.Command("MSG", 1, ("A",), b"abcdefghij")
    assert framer.buffered == 3
    assert framer.next_frame() is None
    assert framer.buffered == 3


def test_over_long_line_drops_everything():
    """
    Past the limit without a newline the framer reports L{LineTooLong},
    keeps nothing, and ignores what comes after.
    """
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset(), 64), 64)
    framer.feed(b"PNG\r\n" + b"A" * 60)
    assert framer.next_frame() == wire.Command("PNG", None, ())
    assert framer.next_frame() is None
    framer.feed(b"A" * 5)
    error = framer.next_frame()
    assert isinstance(error, LineTooLong) and error.code is None and error.reason == "line longer than 64 bytes"
    assert framer.buffered == 0
    framer.feed(b"PNG\r\n")
    assert framer.next_frame() is None and framer.buffered == 0


class CountingBytes(bytes):
    """
    Bytes that count how many bytes C{find} looks at: up to the match, or
    to the end when there is none.
    """

    searched = 0

    def find(self, sub, start=0, end=None):
        found = super().find(sub, start, end)
        stop = (len(self) if end is None else end) if found < 0 else found + len(sub)
        CountingBytes.searched += max(0, stop - start)
        return found


def test_many_tiny_lines_are_read_in_linear_work():
    """
    100,000 lines in one read: every byte is searched once, not once per
    line left after it.
    """
    CountingBytes.searched = 0
    stream = CountingBytes(b"PNG\r\n" * 100_000)
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset(), 64), 64)
    framer.feed(stream)
    count = 0
    while framer.next_frame() is not None:
        count += 1
    assert count == 100_000
    assert CountingBytes.searched <= len(stream)


def test_line_fed_byte_by_byte_is_searched_once():
    """
    A line arriving one byte at a time is not searched again from its
    start on every read.
    """
    CountingBytes.searched = 0
    line = b"VER 1 " + b"x" * 5000 + b"\r\n"
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset(), 8192), 8192)
    frames = []
    for index in range(len(line)):
        framer.feed(CountingBytes(line[index : index + 1]))
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
    assert frames == [wire.Command("VER", 1, ("x" * 5000,))]
    assert CountingBytes.searched <= len(line)


def test_line_of_exactly_the_limit_may_wait_for_its_newline():
    """
    A line of exactly the limit (its CR counted) is read even when its LF
    comes in a later read; one byte more without a newline is too long at
    once, as LineReceiver had it.
    """
    for reads in ([b"VER 1 " + b"x" * 57 + b"\r", b"\n"], [b"VER 1 ", b"x" * 57, b"\r", b"\n"]):
        framer = Framer(lambda line: wire.parse_client_line(line, frozenset(), 64), 64)
        frames = []
        for data in reads:
            framer.feed(data)
            while (frame := framer.next_frame()) is not None:
                frames.append(frame)
        assert frames == [wire.Command("VER", 1, ("x" * 57,))]
        assert through_line_receiver(framer.parse_line, 64, reads) == frames
    framer = Framer(lambda line: wire.parse_client_line(line, frozenset(), 64), 64)
    framer.feed(b"VER 1 " + b"x" * 58 + b"\r")
    assert isinstance(framer.next_frame(), LineTooLong)
    assert through_line_receiver(framer.parse_line, 64, [b"VER 1 " + b"x" * 58 + b"\r"]) == [comparable(LineTooLong(64))]
