"""
The outgoing side of the RVP home server: the NOTIFYs it sends, and when.

 - presence fan-out: a principal's change of published state (or of
   privacy, or of its presence on the other front-ends) is told to each
   property subscriber whose view of it changed, once per change;
 - delivery: a NOTIFY to a principal's local nodes (its login
   subscriptions) or to another server's Call-Back, over L{OutboundClient};
 - messages from the other front-ends' users to RVP users;
 - the background work all this starts, tracked so failures are logged.

The requests that lead here (SUBSCRIBE, PROPPATCH, NOTIFY, ACL) are
answered in L{msnp.rvp.frontend}; the documents sent are built in
L{msnp.rvp.documents}.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger

from msnp.rvp import documents
from msnp.rvp.home import IRvpHome, Privacy
from msnp.rvp.httpwire import split_target
from msnp.rvp.outbound import OutboundClient
from msnp.rvp.principals import Principals
from msnp.rvp.state import HIDDEN_STATES, LOGIN, PROPCHANGE, PresenceTable, Subscription, SubscriptionTable

log = Logger()

_ASK = object()  # "look it up", for an optional state argument


class Notifier:
    """
    Sends the NOTIFYs of one RVP home server.  C{reactor} runs the
    refreshes put off to its next turn.
    """

    def __init__(
        self,
        principals: Principals,
        presence: PresenceTable,
        subscriptions: SubscriptionTable,
        home: IRvpHome,
        outbound: OutboundClient,
        reactor,
    ):
        self.principals = principals
        self.presence = presence
        self.subscriptions = subscriptions
        self.home = home
        self.outbound = outbound
        self.reactor = reactor
        # What each property subscription was last told, so a change of
        # privacy or presence notifies only those who see a difference.
        self._last_told: dict[str, str] = {}
        # Nodes whose watchers are refreshed on the reactor's next turn.
        self._refreshing: dict[str, object] = {}
        self._background: set[Deferred] = set()
        # The latest state change of each principal on its way to the other
        # front-ends: a PROPPATCH is answered once its change is there.
        self._publishing: dict[str, Deferred] = {}

    def stop(self) -> None:
        for call in self._refreshing.values():
            call.cancel()
        self._refreshing.clear()

    def told(self, sub_id: str, state: str) -> None:
        """
        The subscription C{sub_id} was told C{state} in its SUBSCRIBE answer.
        """
        self._last_told[sub_id] = state

    def forget(self, sub_id: str) -> None:
        """
        The subscription C{sub_id} is gone (removed or expired).
        """
        self._last_told.pop(sub_id, None)

    def publishing(self, node: str) -> Optional[Deferred]:
        """
        What fires once C{node}'s latest state change has reached the other
        front-ends; None when none is on its way.
        """
        return self._publishing.pop(node, None)

    # The state each viewer sees

    @inlineCallbacks
    def state_of(self, node: str, viewer: Optional[str], privacy: Optional[Privacy] = None, other=_ASK):
        """
        The state C{viewer} may see of C{node}: the one the core publishes
        for the user when another front-end's endpoint is the published
        one (C{other}, when known; one presence per user, whatever the
        number of clients), else RVP's published state; offline when
        privacy hides it.
        """
        state = self.presence.published(node)
        if other is _ASK:
            other = yield self.home.other_presence(node)
        if other is not None:
            state = other
        if state in HIDDEN_STATES:
            return "offline"
        if viewer != node:
            if privacy is None:
                privacy = yield self.home.privacy(node)
            if not privacy.allows(viewer):
                return "offline"
        return state

    # Presence fan-out to property subscriptions

    def presence_changed(self, node: str, published: str) -> None:
        applied = self.home.rvp_presence_changed(node, published)
        self._publishing[node] = applied

        def refresh(result):
            # Once the core has it: it decides what the user shows when
            # signed in through another front-end too.
            self.track(self.refresh_watchers(node))
            return result

        applied.addCallback(refresh)

    def track(self, d: Deferred) -> None:
        self._background.add(d)

        def done(result):
            self._background.discard(d)
            if hasattr(result, "getTraceback"):
                log.failure("RVP notification failed", result)

        d.addBoth(done)

    @inlineCallbacks
    def refresh_watchers(self, node: str, other=_ASK):
        """
        Tell every property subscriber of C{node} whose view of its state
        changed (presence or privacy): a propnotification to its Call-Back.
        C{other}: C{node}'s state on the other front-ends, when known.
        """
        subscriptions = self.subscriptions.of_node(node, PROPCHANGE)
        if not subscriptions:
            return
        privacy = yield self.home.privacy(node)
        if other is _ASK:
            other = yield self.home.other_presence(node)
        sends = []
        for subscription in subscriptions:
            state = yield self.state_of(node, self.principals.handle_of_url(subscription.subscriber), privacy, other)
            if self._last_told.get(subscription.sub_id) == state:
                continue
            self._last_told[subscription.sub_id] = state
            sends.append(self._notify_property(subscription, state))
        if sends:
            yield DeferredList(sends, consumeErrors=True)

    def _notify_property(self, subscription: Subscription, state: str) -> Deferred:
        body = documents.propnotification(self.principals.url_of(subscription.node), subscription.subscriber, state)
        headers = {"RVP-From-Principal": self.principals.server_name, "Subscription-Id": subscription.sub_id}
        # Queued behind a slow Call-Back, an older state is replaced by this one.
        key = ("propchange", subscription.sub_id)
        local = self.principals.handle_of_url(subscription.callback)
        if local is not None and self.principals.is_local_handle(local):
            # One of ours watches: straight to its local nodes.
            d = self.to_local_nodes(local, body, headers, hop=3, ack="SingleHop", coalesce_key=key)
            told = lambda statuses: all(status is not None for status in statuses)
        else:
            hop = 2 if _is_principal_url(subscription.callback) else 3
            d = self.send_notify(subscription.callback, body, dict(headers, **{"RVP-Hop-Count": str(hop)}), coalesce_key=key)
            told = lambda reply: reply is not None

        def sent(result):
            if not told(result) and self._last_told.get(subscription.sub_id) == state:
                # Not delivered (logged and counted where it failed): the
                # next change tells this subscriber again.
                del self._last_told[subscription.sub_id]
            return result

        return d.addCallback(sent)

    def send_notify(self, url: str, body: bytes, headers: dict, order_key=None, coalesce_key=None) -> Deferred:
        d = self.outbound.request("NOTIFY", url, headers, body, order_key=order_key, coalesce_key=coalesce_key)

        def failed(failure):
            log.info("NOTIFY to {url} failed: {error}", url=url, error=failure.getErrorMessage())
            return None

        return d.addErrback(failed)

    def to_local_nodes(self, handle: str, body: bytes, headers: dict, hop: int, ack: str, order_key=None, coalesce_key=None) -> Deferred:
        """
        NOTIFY C{body} to every local node (login subscription) of C{handle};
        fires with the list of statuses (None for a failed connection).
        """
        logins = self.subscriptions.of_node(handle, LOGIN)
        sends = []
        for login in logins:
            extra = {"RVP-Hop-Count": str(hop), "RVP-Ack-Type": ack}
            d = self.outbound.request(
                "NOTIFY", login.callback, dict(headers, **extra), body, order_key=order_key, coalesce_key=coalesce_key
            )
            d.addCallbacks(lambda reply: reply.status, self._not_delivered, errbackArgs=(login.callback,))
            sends.append(d)
        if not sends:
            return succeed([])
        return DeferredList(sends).addCallback(lambda results: [value for _, value in results])

    @staticmethod
    def _not_delivered(failure, url: str) -> None:
        log.info("NOTIFY to {url} failed: {error}", url=url, error=failure.getErrorMessage())
        return None

    def contact_changed(self, handle: str, state: Optional[str]) -> None:
        """
        C{handle}'s presence changed elsewhere (an MSN user's CHG, FLN) to
        C{state} (None: offline there, or hidden from the one told).
        """
        if not self.subscriptions.of_node(handle, PROPCHANGE) or handle in self._refreshing:
            return
        # The core tells each of our users watching C{handle} (one event per
        # watcher, and before it withdraws a record that signs out): one
        # refresh on the next turn reads what the core then publishes and
        # covers every subscription.
        self._refreshing[handle] = self.reactor.callLater(0, self._refresh_contact, handle)

    def _refresh_contact(self, handle: str) -> None:
        del self._refreshing[handle]
        self.track(self.refresh_watchers(handle))

    def has_local_node(self, handle: str) -> bool:
        return bool(self.subscriptions.of_node(handle, LOGIN))

    def message_from_core(self, recipient: str, sender: str, sender_name: str, mime: str) -> None:
        """
        A message from another front-end's user: NOTIFYed to C{recipient}'s
        local nodes as a message from C{sender}'s principal.
        """
        body = documents.message_notification(
            self.principals.url_of(sender), sender_name, self.principals.url_of(recipient), mime
        )
        headers = {"RVP-From-Principal": self.principals.url_of(sender)}
        if not self.principals.is_local_handle(recipient):
            # A user of a federated domain: server to server.
            headers.update({"RVP-Hop-Count": "2", "RVP-Ack-Type": "DeepOr"})
            self.track(self.send_notify(self.principals.url_of(recipient), body, headers, order_key=("messages", self.principals.url_of(sender).lower())))
            return
        # A conversation's messages reach each local node in the order sent.
        self.track(self.to_local_nodes(recipient, body, headers, hop=3, ack="DeepOr", order_key=("messages", self.principals.url_of(sender).lower())))


def _is_principal_url(url: str) -> bool:
    target = split_target(url)
    return target is not None and "/instmsg/" in target.path.lower()
