"""
Dialogs (RFC 3261 §12): the peer-to-peer relationship a 2xx to INVITE or
SUBSCRIBE (or a NOTIFY) sets up, identified by Call-ID and the two tags,
with each side's CSeq, the remote target and the route set that every
in-dialog request follows.
"""

from __future__ import annotations

import os
from typing import Optional

from msnp.sip.grammar import Address, GrammarError, URI
from msnp.sip.message import Headers, Request, Response
from msnp.sip.transaction import Hop


def new_call_id(host: str) -> str:
    return f"{os.urandom(12).hex()}@{host}"


class Dialog:
    """
    One dialog, from our side: C{local}/C{remote} are the From/To
    addresses with their tags, C{remote_target} the peer's Contact URI.
    """

    def __init__(
        self,
        call_id: str,
        local: Address,
        remote: Address,
        remote_target: URI,
        route_set: list[Address],
        local_cseq: int,
        remote_cseq: Optional[int],
        hop: Optional[Hop] = None,
    ):
        self.call_id = call_id
        self.local = local
        self.remote = remote
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        # Where in-dialog requests go when no route or target says better:
        # the peer the dialog was made with.
        self.hop = hop

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local.tag or "", self.remote.tag or "")

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, hop: Optional[Hop] = None) -> "Dialog":
        """
        The dialog a 2xx to C{request} creates on the answering side
        (§12.1.1): route set = Record-Route in order.
        """
        contacts = request.headers.get_list("Contact")
        if not contacts:
            raise GrammarError("no Contact")
        target = Address.parse(contacts[0]).uri
        routes = [Address.parse(value) for value in request.headers.get_list("Record-Route")]
        return cls(
            request.call_id,
            request.to.with_tag(local_tag),
            request.from_,
            target,
            routes,
            0,
            request.cseq.number,
            hop,
        )

    @classmethod
    def as_uac(cls, request: Request, response, hop: Optional[Hop] = None) -> "Dialog":
        """
        The dialog a 2xx response (or a NOTIFY, for SUBSCRIBE: §4.1.2.4 of
        RFC 6665) to our C{request} creates (§12.1.2): route set =
        Record-Route reversed, remote tag from the response's To (or the
        NOTIFY's From).
        """
        if isinstance(response, Response):
            remote = response.to
        else:
            remote = response.from_
        contacts = response.headers.get_list("Contact")
        if not contacts:
            raise GrammarError("no Contact")
        target = Address.parse(contacts[0]).uri
        routes = [Address.parse(value) for value in response.headers.get_list("Record-Route")]
        if isinstance(response, Response):
            routes.reverse()
        return cls(request.call_id, request.from_, remote, target, routes, request.cseq.number, None, hop)

    def check_remote_cseq(self, request: Request) -> bool:
        """
        False for a request older than the last one (§12.2.2: answer 500);
        otherwise remember its CSeq.
        """
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        if request.method != "ACK":
            self.remote_cseq = number
        return True

    def update_target(self, message) -> None:
        """
        A target refresh request or its 2xx (re-INVITE, SUBSCRIBE, NOTIFY)
        may carry a new Contact (§12.2).
        """
        contacts = message.headers.get_list("Contact")
        if contacts:
            try:
                self.remote_target = Address.parse(contacts[0]).uri
            except GrammarError:
                pass

    def request(self, method: str, cseq: Optional[int] = None) -> Request:
        """
        A new in-dialog request (§12.2.1.1): Request-URI and Route from the
        remote target and route set (loose or strict routing), the tags,
        and the next local CSeq (or C{cseq}, for ACK).
        """
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        routes = list(self.route_set)
        uri = self.remote_target
        if routes and "lr" not in routes[0].uri.params:
            # Strict routing: the first route becomes the Request-URI.
            uri = routes.pop(0).uri.with_params(method=False)
            routes.append(Address(self.remote_target))
        headers = Headers()
        for route in routes:
            headers.add("Route", str(route))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        return Request(method, str(uri), headers)

    def next_hop(self, default_transport: str = "udp") -> Optional[Hop]:
        """
        Where an in-dialog request is sent: the first route, else the
        remote target (§8.1.2), resolved as a numeric host; the dialog's
        original peer when the URI's host is a name.
        """
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        return hop_for_uri(uri, default_transport) or self.hop


def hop_for_uri(uri: URI, default_transport: str = "udp") -> Optional[Hop]:
    """
    The hop a URI names directly (numeric host), or None when its host
    needs a DNS lookup.
    """
    import ipaddress

    host = uri.params.get("maddr") or uri.host
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    transport = uri.transport or ("tls" if uri.scheme == "sips" else default_transport)
    if transport not in ("udp", "tcp", "tls"):
        return None
    port = uri.port or (5061 if transport == "tls" else 5060)
    return Hop(transport, host.strip("[]"), port)


class DialogTable:
    """
    The dialogs this side is in, by (Call-ID, local tag, remote tag).
    """

    def __init__(self) -> None:
        self._dialogs: dict[tuple, object] = {}

    def add(self, dialog: Dialog, owner) -> None:
        self._dialogs[dialog.id] = owner

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def find(self, request: Request):
        """
        The owner of the dialog an in-dialog request belongs to (its To tag
        is our tag, its From tag theirs), or None.
        """
        key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        return self._dialogs.get(key)

    def __len__(self) -> int:
        return len(self._dialogs)

    def owners(self) -> list:
        return list(self._dialogs.values())
