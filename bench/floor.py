"""
The floor: a bare Twisted LineReceiver relay with no protocol logic, carrying
the conversation scenario's traffic so that the ratio server/floor shows
what msnp's own code costs on top of Twisted.

It speaks just enough to carry that traffic: C{USR t pair handle} puts a
connection into pair C{pair} (answered C{USR t OK handle handle});
C{MSG t A n} + n bytes is written to the other connection of the pair as
C{MSG handle handle n} + the bytes, and the sender gets C{ACK t}.

Run C{python -m bench.floor --port PORT}.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver


class RelayProtocol(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        self.peer = None
        self.pair = None
        self.header = b""
        self.trid = b""
        self.needed = 0
        self.chunks: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        parts = line.rstrip(b"\r").split(b" ")
        if parts[0] == b"MSG" and len(parts) == 4:
            self.trid = parts[1]
            self.needed = int(parts[3])
            self.chunks = []
            self.setRawMode()
        elif parts[0] == b"USR" and len(parts) == 4:
            self.header = b"MSG " + parts[3] + b" " + parts[3] + b" "
            self.pair = parts[2]
            self.factory.join(self)
            self.transport.write(b"USR " + parts[1] + b" OK " + parts[3] + b" " + parts[3] + b"\r\n")
        elif parts[0] == b"OUT":
            self.transport.loseConnection()

    def rawDataReceived(self, data: bytes) -> None:
        taken = data[: self.needed]
        self.chunks.append(taken)
        self.needed -= len(taken)
        if self.needed:
            return
        payload = b"".join(self.chunks)
        self.chunks = []
        if self.peer is not None:
            self.peer.transport.write(self.header + b"%d\r\n" % len(payload) + payload)
            self.transport.write(b"ACK " + self.trid + b"\r\n")
        else:
            self.transport.write(b"NAK " + self.trid + b"\r\n")
        self.setLineMode(data[len(taken) :])

    def connectionLost(self, reason=None) -> None:
        self.factory.leave(self)


class RelayFactory(Factory):
    protocol = RelayProtocol

    def __init__(self) -> None:
        self.waiting: dict[bytes, RelayProtocol] = {}

    def join(self, connection: RelayProtocol) -> None:
        other = self.waiting.pop(connection.pair, None)
        if other is None:
            self.waiting[connection.pair] = connection
        else:
            other.peer, connection.peer = connection, other

    def leave(self, connection: RelayProtocol) -> None:
        if self.waiting.get(connection.pair) is connection:
            del self.waiting[connection.pair]
        if connection.peer is not None:
            connection.peer.peer = None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    options = parser.parse_args(argv)
    from twisted.internet import reactor

    reactor.listenTCP(options.port, RelayFactory(), backlog=1024, interface=options.interface)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
