"""
Endpoints: one signed-in connection of a user, in whichever front-end and
process it lives.

The directory keeps an L{EndpointRecord} (plain data, so a networked
directory can hold it) per endpoint and delivers events to the live
L{IEndpoint} in the process that owns it.
"""

from __future__ import annotations

import itertools
import os
import socket

import attrs
from zope.interface import Attribute, Interface


class IEndpoint(Interface):
    """
    The live side of an endpoint, provided by a front-end's session.
    """

    endpoint_id = Attribute("unique among every endpoint of the service")
    handle = Attribute("the account signed in here")

    def receive(event):
        """
        Take one event from L{msnp.core.events}; never raises.
        """


@attrs.frozen
class EndpointRecord:
    """
    What the service knows of an endpoint wherever it is asked: who, on
    which node, through which protocol and client, since when.
    """

    endpoint_id: str
    handle: str
    node: str
    protocol: str  # "msn", "rvp", "sip"
    dialect: str = ""  # e.g. "MSNP12"
    client_version: str = ""
    address: str = ""
    since: float = 0.0
    # For a protocol with several points of presence per account (MSNP16+):
    # the client's machine GUID; "" for a single point of presence.
    instance: str = ""


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EndpointIds:
    """
    Endpoint ids unique to this process's node: the node id and a counter.
    """

    def __init__(self, node: str):
        self.node = node
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.node}/{next(self._counter)}"
