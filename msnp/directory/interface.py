"""
What every directory provides: which endpoints each signed-in user has,
their published presence, delivery of events to endpoints, and the
switchboard cookies and session ids.

Calls that ask return Deferreds and calls that only announce return
nothing, so that a networked directory (one shared by several processes)
can stand in for the in-process one without changing any caller.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class DirectoryUnavailable(Exception):
    """
    A shared directory cannot take the request now (its server is out of
    reach, or this node was fenced): nothing was recorded; try again, or
    elsewhere.
    """


class IDirectory(Interface):
    node = Attribute("the id of the node this directory object serves")

    def attach(endpoint, record, single=True):
        """
        Make the live C{endpoint} (an L{msnp.core.endpoints.IEndpoint})
        reachable as C{record}.  With C{single}, the user's other endpoints
        of the same protocol are replaced: a Deferred fires with their
        records, and each of them has been sent L{Kicked}C{("replaced")}.
        Points of presence (records with an C{instance}) replace only the
        endpoint of the same instance and those without one; endpoints of
        other instances stay.
        """

    def detach(endpoint_id):
        """
        Forget an endpoint that has ended.
        """

    def endpoints_of(handle):
        """
        A Deferred firing with the L{EndpointRecord}s of C{handle}.
        """

    def all_endpoints():
        """
        A Deferred firing with every L{EndpointRecord}.
        """

    def deliver(handles, event):
        """
        Give C{event} to every endpoint of each of C{handles}; a handle
        with none, of a domain routed with L{route_domain}, to the
        endpoint that route names for it.
        """

    def route_domain(domain, endpoint_for):
        """
        Events for handles of C{domain} that have no endpoint of their own
        go to C{endpoint_for(handle)} (an L{IEndpoint}, or None to drop
        them): how a federation front-end stands for every user of a peer
        domain without signing each one in.
        """

    def unroute_domain(domain):
        """
        Undo L{route_domain}.
        """

    def deliver_to(endpoint_id, event):
        """
        Give C{event} to one endpoint.
        """

    def publish_presence(record):
        """
        Make C{record} (a L{msnp.core.presence.PresenceRecord}) what others
        read of its user.
        """

    def withdraw_presence(handle, endpoint_id):
        """
        C{handle} has no presence any more (signed out), unless what is
        published was published since by another endpoint than
        C{endpoint_id}.
        """

    def presence_of(handles):
        """
        A Deferred firing with a dict of the published presence of those of
        C{handles} that have one.
        """

    def add_cookie(cookie, ticket, now):
        """
        Remember a switchboard C{cookie} admitting C{ticket.handle} until
        C{ticket.expires}; a Deferred that fires once it is stored.
        C{now} lets the directory forget cookies that expired unused.
        """

    def redeem_cookie(cookie, now):
        """
        Take C{cookie} out of the directory: a Deferred firing with its
        ticket, or None when it is unknown, already used or expired at
        C{now}.  A cookie can be redeemed once.
        """

    def claim_session_id(session_id, address):
        """
        Reserve a switchboard session id for the switchboard at
        C{address}: a Deferred firing False when the id is taken.
        """

    def release_session_id(session_id):
        """
        A switchboard session has ended; its id may be reused.
        """
