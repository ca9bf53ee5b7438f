"""
The one place msnp reads Twisted's private state: the send queue of a
transport, to write straight to a TCP socket while nothing is queued for it
and to see how far behind a client that stops reading is.

A Twisted TCP transport (C{abstract.FileDescriptor}) queues every write and
sends it on the reactor's next turn; what is still queued is
C{len(dataBuffer) - offset + _tempDataLen}.  When that is nothing, sending
the bytes at once saves the epoll registration and the extra reactor turn
per reply, and order is kept because nothing is waiting ahead of them.  Those
attributes are not Twisted's public API, so they are read only on Twisted
releases they were checked against (L{CHECKED_TWISTED};
tests/test_write_through.py fails loudly when they change).  On any other
release every write takes C{transport.write}, and how far behind a client is
comes from Twisted's public producer API instead: a transport pauses its
registered producer once more than C{bufferSize} bytes wait, and resumes it
when they are gone.
"""

from __future__ import annotations

from typing import Optional, Union

import twisted
from twisted.internet import tcp

# Oldest and newest Twisted release, as (year, month), whose FileDescriptor
# send queue was checked to mean what this module reads.
CHECKED_TWISTED = ((24, 3), (26, 10))

# A writer: write(data) sends data and returns how many bytes are queued
# for the peer afterwards; queued() reads that again later.  One object per
# connection (not a pair of bound methods), kept small.
Outbound = Union["PlainWriter", "MeasuredWriter", "DirectWriter", "ProducerGauge"]


def internals_known(version: Optional[tuple[int, int]] = None) -> bool:
    """
    Whether the running Twisted (or C{version}) is one whose send queue
    this module was checked against.
    """
    if version is None:
        version = (twisted.version.major, twisted.version.minor)
    oldest, newest = CHECKED_TWISTED
    return oldest <= version <= newest


def send_queue_of(transport):
    """
    The transport under C{transport} (itself, or the TCP transport under a
    TLS one) that holds the send queue; None when there is none.
    """
    while transport is not None:
        if all(hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def queued_bytes(transport) -> int:
    """
    Bytes written to C{transport} that its peer has not taken yet, as far
    as the send queue tells; 0 when it cannot be read.
    """
    queue = send_queue_of(transport) if internals_known() else None
    if queue is None:
        return 0
    return len(queue.dataBuffer) - queue.offset + queue._tempDataLen


def writes_through(transport) -> bool:
    """
    Whether a connection on C{transport} writes straight to its socket
    while nothing is queued: a plain TCP connection on a checked Twisted.
    """
    return (
        internals_known()
        and isinstance(transport, tcp.Connection)
        and not transport.TLS
        and send_queue_of(transport) is transport
    )


def outbound(transport, write_through: bool = True, measure: bool = True) -> Outbound:
    """
    How a connection writes to C{transport}: straight to the socket when
    C{write_through} allows it and the transport is plain TCP, and, when
    C{measure} is set, saying how much is queued after each write.
    """
    if not internals_known():
        if measure and hasattr(transport, "registerProducer"):
            return ProducerGauge(transport)
        return PlainWriter(transport)
    queue = send_queue_of(transport)
    if queue is None or not measure:
        queue = None
    if write_through and writes_through(transport):
        return DirectWriter(transport, queue is not None)
    if queue is None:
        return PlainWriter(transport)
    return MeasuredWriter(transport, queue)


class PlainWriter:
    """
    Writes through C{transport.write} and does not measure.
    """

    __slots__ = ("_write",)

    def __init__(self, transport):
        self._write = transport.write

    def write(self, data: bytes) -> int:
        self._write(data)
        return 0

    def queued(self) -> int:
        return 0


class MeasuredWriter:
    """
    Writes through C{transport.write} and reads how much C{queue} (the TCP
    transport under it) still holds.  A slotted object rather than closures:
    one of these per connection is a third of the size.
    """

    __slots__ = ("_write", "_queue")

    def __init__(self, transport, queue):
        self._write = transport.write
        self._queue = queue

    def write(self, data: bytes) -> int:
        self._write(data)
        queue = self._queue
        return len(queue.dataBuffer) - queue.offset + queue._tempDataLen

    def queued(self) -> int:
        queue = self._queue
        return len(queue.dataBuffer) - queue.offset + queue._tempDataLen


class DirectWriter:
    """
    Hands bytes to a plain TCP transport's socket at once while nothing is
    queued for it, instead of waking the reactor for writability and
    writing them later; otherwise Twisted queues them behind the rest.
    """

    __slots__ = ("_transport", "_socket", "_write", "_measure")

    def __init__(self, transport, measure: bool):
        self._transport = transport
        self._socket = transport.socket
        self._write = transport.write
        self._measure = measure

    def write(self, data: bytes) -> int:
        transport = self._transport
        if not transport._tempDataLen and transport.offset == len(transport.dataBuffer) and not transport.disconnecting:
            try:
                sent = self._socket.send(data)
            except OSError:
                # Full or failing: Twisted queues it and finds the error.
                sent = 0
            if sent == len(data):
                return 0
            data = data[sent:]
        self._write(data)
        if not self._measure:
            return 0
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    def queued(self) -> int:
        if not self._measure:
            return 0
        transport = self._transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class ProducerGauge:
    """
    How far behind a client is, from public API only: registered as the
    transport's streaming producer, it is paused when the transport holds
    more than its C{bufferSize} and resumed when that has drained.  While
    paused the client is taken to be C{bufferSize} plus everything written
    since behind.
    """

    def __init__(self, transport):
        self._write = transport.write
        self._buffer_size = getattr(transport, "bufferSize", 0)
        self._behind: Optional[int] = None
        transport.registerProducer(self, True)

    def write(self, data: bytes) -> int:
        before = self._behind
        self._write(data)
        if self._behind is None:
            return 0
        if before is not None:
            # A write that made the transport pause us is already inside
            # its bufferSize.
            self._behind += len(data)
        return self._behind

    def queued(self) -> int:
        return 0 if self._behind is None else self._behind

    def pauseProducing(self) -> None:
        if self._behind is None:
            self._behind = self._buffer_size

    def resumeProducing(self) -> None:
        self._behind = None

    def stopProducing(self) -> None:
        self._behind = None
