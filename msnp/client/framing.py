"""
Reading what an MSN server sends, without any I/O.

The one place where the client side buffers bytes: L{ServerLineBuffer}
cuts the stream into lines and, for the commands a server sends with a
payload (C{MSG}, C{NOT}, C{IPG}, C{GCF}, C{UBX}), takes exactly the byte
count their last parameter names.  L{parse_server_line} then reads a line
with the project's own tokeniser (L{msnp.msn.wire.split_line}) into a
L{msnp.msn.wire.Command}.  Which server lines carry a transaction ID is
decided here too, with the dialect's own data where it differs.
"""

from __future__ import annotations

from typing import Optional

from msnp.msn import wire
from msnp.msn.dialects import Dialect

# Server commands whose last parameter is the length of a payload that
# follows the line.
SERVER_PAYLOAD_COMMANDS = frozenset({"MSG", "NOT", "IPG", "GCF", "UBX"})

# Server commands that never carry a transaction ID: the second token is a
# handle, a status, a session id, a list version or a count.
UNTAGGED_SERVER_COMMANDS = frozenset({"NLN", "FLN", "UBX", "MSG", "RNG", "JOI", "BYE", "OUT", "BPR", "NOT", "IPG", "QNG", "UBN"})

# The lines that follow SYN from MSNP8 on carry no transaction ID, whatever
# their first parameter looks like (MSNP8-9 group ids are numbers).
_MERGED_SYNC_COMMANDS = frozenset({"LST", "LSG"})

# A server line longer than this is not MSNP: the connection is given up.
MAX_SERVER_LINE = 65536
MAX_SERVER_PAYLOAD = 1 << 20


class ServerStreamError(Exception):
    """
    The server sent something no MSN server sends (a line or payload over
    the limits, a payload length that is not a number).
    """


class ServerLineBuffer:
    """
    Bytes in, complete C{(line, payload)} pairs out; C{line} is the text
    without its CRLF, C{payload} the bytes after it or None.  Consumed bytes
    are dropped as lines are taken, so a long stream is never rescanned.
    """

    def __init__(self, payload_commands: frozenset = SERVER_PAYLOAD_COMMANDS):
        self._data = bytearray()
        self._payload_commands = payload_commands

    def feed(self, data: bytes) -> list[tuple[bytes, Optional[bytes]]]:
        self._data += data
        out = []
        start = 0
        data = self._data
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if len(data) - start > MAX_SERVER_LINE:
                    raise ServerStreamError("line too long")
                break
            line = bytes(data[start:end])
            if line.endswith(b"\r"):
                line = line[:-1]
            length = self._payload_length(line)
            if length is None:
                out.append((line, None))
                start = end + 1
                continue
            if len(data) - (end + 1) < length:
                break
            out.append((line, bytes(data[end + 1 : end + 1 + length])))
            start = end + 1 + length
        del data[:start]
        return out

    def _payload_length(self, line: bytes) -> Optional[int]:
        name = line[:3].decode("ascii", "replace")
        if name not in self._payload_commands or line[3:4] != b" ":
            return None
        last = line.rsplit(b" ", 1)[-1]
        if not last.isdigit():
            raise ServerStreamError(f"{name} without a payload length")
        length = int(last)
        if length > MAX_SERVER_PAYLOAD:
            raise ServerStreamError("payload too long")
        return length


def parse_server_line(line: bytes, payload: Optional[bytes] = None, dialect: Optional[Dialect] = None) -> wire.Command:
    """
    One server line as a L{wire.Command}: the second token is taken as the
    transaction ID when it is one and the command is one that answers a
    request.  Raises L{wire.WireError} for a line that is not a command.
    """
    name, params = wire.split_line(line)
    trid = None
    untagged = name in UNTAGGED_SERVER_COMMANDS or (
        dialect is not None and dialect.merges_lists and name in _MERGED_SYNC_COMMANDS
    )
    if params and not untagged:
        try:
            trid = wire.parse_trid(params[0])
        except ValueError:
            trid = None
        else:
            params = params[1:]
    if payload is not None and params:
        params = params[:-1]
    return wire.Command(name, trid, tuple(params), payload)


def is_error(command: wire.Command) -> bool:
    return command.name.isdigit()
