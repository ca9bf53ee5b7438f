"""
Peer routing and admission: static routes, DNS SRV (_sip._tcp) through a
fake resolver, and the address check that answers everything else 403.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.names import dns

from msnp.sip.peers import PeerTable, parse_peer_option
from msnp.sip.transaction import Hop


class FakeResolver:
    def __init__(self, records):
        self.records = records
        self.asked = []

    def lookupService(self, name):
        self.asked.append(name)
        answers = [
            dns.RRHeader(name=name, type=dns.SRV, payload=dns.Record_SRV(priority, weight, port, target))
            for priority, weight, port, target in self.records
        ]
        return defer.succeed((answers, [], []))


def names(host):
    return defer.succeed({"sip1.srv.example": ["192.0.2.21"], "sip2.srv.example": ["192.0.2.22"]}[host])


def test_static_route_and_admission():
    table = PeerTable([parse_peer_option("partner.example=sip:192.0.2.7:5070;transport=tcp")], task.Clock())
    hops = table.route("partner.example").result
    assert hops == [Hop("tcp", "192.0.2.7", 5070)]
    assert table.admits("partner.example", Hop("tcp", "192.0.2.7", 40000)).result is True
    assert table.admits("partner.example", Hop("tcp", "192.0.2.8", 5070)).result is False
    assert table.admits("elsewhere.example", Hop("tcp", "192.0.2.7", 5070)).result is False
    # Over TLS the certificate must name the peer.
    assert table.admits("partner.example", Hop("tls", "192.0.2.7", 1, certificate_names=("evil.example",))).result is False
    assert table.admits("partner.example", Hop("tls", "192.0.2.7", 1, certificate_names=("partner.example",))).result is True


def test_srv_when_no_route_is_given():
    resolver = FakeResolver([(20, 0, 5062, "sip2.srv.example"), (10, 5, 5060, "sip1.srv.example")])
    table = PeerTable([parse_peer_option("srv.example")], task.Clock(), resolver, names)
    hops = table.route("srv.example").result
    assert resolver.asked == ["_sip._tcp.srv.example"]
    assert hops == [Hop("tcp", "192.0.2.21", 5060), Hop("tcp", "192.0.2.22", 5062)]
    assert table.admits("srv.example", Hop("tcp", "192.0.2.22", 1234)).result is True
    # Cached for a while: no second lookup.
    table.route("srv.example")
    assert len(resolver.asked) == 1
