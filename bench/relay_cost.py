"""
CPU cost of relaying one switchboard message, without a network: the
conversation scenario's traffic (C{MSG t A n} + n bytes in, the relayed
C{MSG} and the C{ACK} out) fed straight into the switchboard protocol and
into the floor relay (L{bench.floor}), over in-memory transports.

Process CPU time is far steadier than wall-clock throughput on a shared
machine, so this is the figure to compare before and after a change to the
message path; the socket and reactor costs the real scenario adds are the
same for both.

C{python -m bench.relay_cost [--messages N] [--rounds R] [--profile]}
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from bench.conversations import message_payload
from bench.floor import RelayFactory
from msnp.config import ServerConfig
from msnp.core.messenger import Messenger
from msnp.directory.local import LocalDirectory
from msnp.msn.switchboard import SwitchboardServer, SwitchboardTicket, new_cookie


class SinkTransport(StringTransport):
    """
    Keeps nothing that is written, and shows an empty send buffer the way
    a TCP transport does, so the outbound check takes its real path.
    """

    dataBuffer = b""
    offset = 0
    _tempDataLen = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def __init__(self) -> None:
        super().__init__()
        self.written = 0


class FakeClock:
    """
    callLater that never fires, on the process clock: enough for the idle
    timer and the rate limit without a running reactor.
    """

    class Call:
        def __init__(self, clock, when):
            self.clock = clock
            self.time = when
            self.cancelled = False

        def reset(self, delay):
            self.time = self.clock.seconds() + delay

        def cancel(self):
            self.cancelled = True

        def active(self):
            return not self.cancelled

        def getTime(self):
            return self.time

    seconds = staticmethod(time.monotonic)

    def callLater(self, delay, function, *args, **kwargs):
        return self.Call(self, self.seconds() + delay)


def switchboard_pair():
    """
    Two participants in one session at an msnp switchboard with the rate
    limit lifted as the benchmark lifts it.
    """
    config = ServerConfig(command_rate=1e9, command_burst=10**9, max_connections_per_address=0)
    directory = LocalDirectory()
    clock = FakeClock()
    server = SwitchboardServer(config, Messenger(None, directory, clock, config.list_limits, config.max_groups), clock)
    protocols = []
    session_id = None
    for index, handle in enumerate(("alice@example.com", "bob@example.com")):
        protocol = server.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + index))
        transport = SinkTransport()
        protocol.makeConnection(transport)
        cookie = new_cookie()
        ticket = SwitchboardTicket(handle, handle.split("@")[0], 7, 0, clock.seconds() + 60, session_id, handle.split("@")[0])
        directory.add_cookie(cookie, ticket, clock.seconds())
        if session_id is None:
            protocol.dataReceived(f"USR 1 {handle} {cookie}\r\n".encode())
            session_id = protocol.session.conversation.session_id
        else:
            protocol.dataReceived(f"ANS 1 {handle} {cookie} {session_id}\r\n".encode())
        protocols.append(protocol)
    assert len(protocols[0].session.conversation.participants) == 2
    return protocols


def floor_pair():
    factory = RelayFactory()
    protocols = []
    for handle in (b"alice@example.com", b"bob@example.com"):
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(SinkTransport())
        protocol.dataReceived(b"USR 1 0 " + handle + b"\r\n")
        protocols.append(protocol)
    return protocols


def messages(count: int, payload: bytes) -> list[bytes]:
    return [b"MSG %d A %d\r\n" % (trid, len(payload)) + payload for trid in range(1, count + 1)]


def run_once(protocols, reads: list[bytes]) -> float:
    """
    CPU seconds per message, both participants sending in turn.
    """
    sender, other = protocols
    started = time.process_time()
    for index, data in enumerate(reads):
        (sender if index & 1 else other).dataReceived(data)
    return (time.process_time() - started) / len(reads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--payload", type=int, default=160)
    parser.add_argument("--profile", action="store_true", help="print cProfile call counts for one round")
    options = parser.parse_args(argv)
    reads = messages(options.messages, message_payload(options.payload))
    targets = {"switchboard": switchboard_pair(), "floor": floor_pair()}
    if options.profile:
        profile = cProfile.Profile()
        profile.enable()
        run_once(targets["switchboard"], reads)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"calls per message: {stats.total_calls / len(reads):.1f}")
        stats.sort_stats("tottime").print_stats(25)
    figures = {name: [] for name in targets}
    for _ in range(options.rounds):
        for name, protocols in targets.items():
            figures[name].append(run_once(protocols, reads) * 1e6)
    print(f"{options.messages} messages of {options.payload} bytes, {options.rounds} rounds, CPU µs per message")
    for name, values in figures.items():
        print(f"  {name:12s} best {min(values):6.2f}  median {statistics.median(values):6.2f}")
    best = {name: min(values) for name, values in figures.items()}
    print(f"  switchboard/floor CPU (best): {best['switchboard'] / best['floor']:.2f}")
    for protocols in targets.values():
        for protocol in protocols:
            protocol.connectionLost(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
