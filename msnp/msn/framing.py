"""
MSNP framing without I/O: bytes in, one frame at a time out.

A stream is lines ending in LF (a CR before it stays part of the line for
the line parser to judge), and after some lines a payload of exactly the
byte count the line announced.  L{Framer} cuts a stream into frames however
it arrives: each read is searched for a newline once, lines are sliced out
of it without copying the rest, and a line or payload that spans reads is
collected in pieces and joined once, so the work is linear in the bytes fed
however they are cut.

What a line means is a parameter: a parser that turns the line into a
L{Command} and says whether a payload follows (L{wire.parse_client_line}
at the server, L{wire.parse_server_line} in a client).  An optional fast
parser (L{wire.plain_msg_parser} at the switchboard) is tried first; the
lines it takes come out as C{(trid, letter, payload)} tuples, which the
consumer handles without building a L{Command}.

The consumer pulls: L{Framer.next_frame} returns the next frame or None
when more bytes are needed, so a consumer waiting on an earlier command
simply stops asking.  A frame is a L{Command} (with its payload, if any),
a L{WireError} for a line that cannot be understood, a fast-parser tuple,
or L{LineTooLong}, after which the framer drops what it holds and ignores
everything fed to it.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional, Union

from msnp.msn.wire import Command, WireError

# Turns one line (without its LF) into a command and the length of the
# payload that follows it, or None when none does; raises WireError.
LineParser = Callable[[bytes], "tuple[Command, Optional[int]]"]

# Returns (a, b, payload length) for the lines it takes, None for the rest.
FastParser = Callable[[bytes], Optional[tuple]]


class LineTooLong(WireError):
    """
    A line longer than the limit, or that many bytes without a newline:
    there is no telling where the next command starts.
    """

    def __init__(self, limit: int):
        super().__init__(None, None, f"line longer than {limit} bytes")
        self.limit = limit


Frame = Union[Command, WireError, tuple]


class Framer:
    """
    Frames one direction of one connection.  C{parse_line} reads a line,
    C{max_line_length} bounds a line (its CR included, its LF not), and
    C{parse_fast}, when set, is tried on every line before C{parse_line}.
    Both parsers may be replaced between frames.
    """

    # One per connection: slots and a queue made only when a read has to
    # wait keep an idle connection small.
    __slots__ = (
        "parse_line",
        "max_line_length",
        "parse_fast",
        "_data",
        "_position",
        "_queue",
        "_line",
        "_line_length",
        "_header",
        "_payload",
        "_needed",
        "_closed",
        "drained",
    )

    def __init__(self, parse_line: LineParser, max_line_length: int, parse_fast: Optional[FastParser] = None):
        self.parse_line = parse_line
        self.max_line_length = max_line_length
        self.parse_fast = parse_fast
        # The read being cut and where its unread part starts; later reads
        # wait in _queue until the consumer gets to them.
        self._data = b""
        self._position = 0
        self._queue: Optional[deque[bytes]] = None
        # The start of a line that began in an earlier read (no LF in it).
        self._line: list[bytes] = []
        self._line_length = 0
        # The frame waiting for its payload: a Command or a fast tuple's
        # first two items, the pieces so far and the bytes still missing.
        self._header: Union[Command, tuple, None] = None
        self._payload: list[bytes] = []
        self._needed = 0
        self._closed = False
        # True when next_frame() would return None until more is fed (it
        # may also be False then): lets a busy consumer skip that call.
        self.drained = True

    @property
    def buffered(self) -> int:
        """
        Bytes held: fed but not yet returned in a frame.
        """
        payload = sum(len(piece) for piece in self._payload)
        queued = sum(len(data) for data in self._queue or ())
        return len(self._data) - self._position + queued + self._line_length + payload

    def feed(self, data: bytes) -> None:
        """
        Add the bytes of one read.
        """
        if self._closed or not data:
            return
        self.drained = False
        if self._position >= len(self._data) and not self._queue:
            self._data = data
            self._position = 0
        else:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(data)

    def close(self) -> None:
        """
        Drop everything held and ignore whatever is fed from now on.
        """
        self._closed = True
        self.drained = True
        self._data = b""
        self._position = 0
        self._queue = None
        self._line = []
        self._line_length = 0
        self._header = None
        self._payload = []
        self._needed = 0

    def whole_fast_frame(self, data: bytes) -> Optional[tuple]:
        """
        The fast parser's frame when C{data}, one read, is exactly one such
        frame and nothing is held from earlier reads: what C{feed(data)}
        then C{next_frame()} would give, in one call.  Otherwise None, and
        nothing is taken: feed C{data} as usual.
        """
        parse_fast = self.parse_fast
        if (
            parse_fast is None
            or self._needed
            or self._line
            or self._queue
            or self._position < len(self._data)
            or self._closed
        ):
            return None
        newline = data.find(b"\n")
        if newline < 0 or newline > self.max_line_length:
            return None
        parsed = parse_fast(data[:newline])
        if parsed is None:
            return None
        first, second, length = parsed
        if newline + 1 + length != len(data):
            return None
        return (first, second, data[newline + 1 :])

    def next_frame(self) -> Optional[Frame]:
        """
        The next frame, or None until more bytes are fed.
        """
        while True:
            data = self._data
            position = self._position
            end = len(data)
            if position >= end:
                if not self._queue:
                    self.drained = True
                    return None
                data = self._data = self._queue.popleft()
                position = self._position = 0
                end = len(data)
            if self._needed:
                frame = self._read_payload(data, position, end)
                if frame is None:
                    continue
                return frame
            newline = data.find(b"\n", position)
            if newline < 0:
                # The line goes on in a later read: keep what is here,
                # searched once, until its end arrives.
                piece = data[position:] if position else data
                self._line.append(piece)
                self._line_length += len(piece)
                self._data = b""
                self._position = 0
                if self._line_length > self.max_line_length:
                    return self._too_long()
                continue
            if self._line:
                if self._line_length + newline - position > self.max_line_length:
                    return self._too_long()
                self._line.append(data[position:newline])
                line = b"".join(self._line)
                self._line = []
                self._line_length = 0
            else:
                if newline - position > self.max_line_length:
                    return self._too_long()
                line = data[position:newline]
            start = newline + 1
            parse_fast = self.parse_fast
            if parse_fast is not None:
                parsed = parse_fast(line)
                if parsed is not None:
                    first, second, length = parsed
                    stop = start + length
                    if stop <= end:
                        self._position = stop
                        self.drained = stop == end and not self._queue
                        return (first, second, data[start:stop])
                    self._await_payload((first, second), data, start, length)
                    continue
            self._position = start
            try:
                command, length = self.parse_line(line)
            except WireError as error:
                return error
            if length is None:
                return command
            stop = start + length
            if stop <= end:
                self._position = stop
                return Command(command.name, command.trid, command.args, data[start:stop])
            self._await_payload(command, data, start, length)

    def _await_payload(self, header, data: bytes, start: int, length: int) -> None:
        piece = data[start:]
        self._header = header
        self._payload = [piece]
        self._needed = length - len(piece)
        self._data = b""
        self._position = 0

    def _read_payload(self, data: bytes, position: int, end: int) -> Optional[Frame]:
        needed = self._needed
        stop = position + needed
        if stop >= end:
            piece = data[position:] if position else data
            self._data = b""
            self._position = 0
        else:
            piece = data[position:stop]
            self._position = stop
        self._payload.append(piece)
        self._needed = needed - len(piece)
        if self._needed:
            return None
        payload = b"".join(self._payload)
        header = self._header
        self._header = None
        self._payload = []
        if type(header) is tuple:
            return (header[0], header[1], payload)
        return Command(header.name, header.trid, header.args, payload)

    def _too_long(self) -> LineTooLong:
        self.close()
        return LineTooLong(self.max_line_length)
