"""
RVP principals: the node URLs of our own accounts and of federated domains,
and the account handles they stand for.

Our accounts in the RVP domain live at ``http://HOST[:PORT]/instmsg/aliases/
<alias>`` (case-insensitive).  A node is also reached through its physical
form ``/instmsg/local/<logical host>/instmsg/aliases/<alias>`` (what a
router's 302 points to).  A URL names one of ours when its host and port
are ours; a URL on a peer's host and port names ``alias@peer-domain``.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import quote, unquote

import attrs

from msnp.rvp.httpwire import split_target

ALIASES = "/instmsg/aliases/"
_LOCAL = re.compile(r"^/instmsg/local/[^/]+(/instmsg/aliases/.*)$", re.IGNORECASE)
_ALIAS = re.compile(r"^[A-Za-z0-9._%+\-=~!#$&'*^`{|}]{1,64}$")


def alias_of_path(path: str) -> Optional[str]:
    """
    The alias a node path names, lower-cased and percent-decoded; None
    when the path is not a principal's node.
    """
    local = _LOCAL.match(path)
    if local:
        path = local.group(1)
    if not path.lower().startswith(ALIASES):
        return None
    alias = unquote(path[len(ALIASES) :].rstrip("/")).lower()
    if not _ALIAS.match(alias):
        return None
    return alias


@attrs.frozen
class Site:
    """
    Where an RVP domain is served: a host and port (80 unless given).
    """

    host: str
    port: int = 80

    @property
    def base(self) -> str:
        return f"http://{self.host}" + ("" if self.port == 80 else f":{self.port}")

    @classmethod
    def from_url(cls, url: str) -> Optional["Site"]:
        target = split_target(url)
        if target is None or target.host is None:
            return None
        return cls(target.host, target.port or 80)


class Principals:
    """
    Maps handles to principal URLs and back, for our domain and for the
    federated ones C{peers} names (C{domain: base URL}).
    """

    def __init__(self, domain: str, site: Site, peers: Optional[dict[str, str]] = None):
        self.domain = domain.lower()
        self.site = site
        self.peers: dict[str, Site] = {}
        for peer_domain, url in (peers or {}).items():
            self.add_peer(peer_domain, url)

    def add_peer(self, domain: str, url: str) -> None:
        site = Site.from_url(url)
        if site is None:
            raise ValueError(f"not an http URL: {url}")
        self.peers[domain.lower()] = site

    @property
    def server_name(self) -> str:
        """
        How this server names itself in RVP-From-Principal.
        """
        return self.site.host

    def is_local_handle(self, handle: str) -> bool:
        return handle.lower().partition("@")[2] == self.domain

    def url_of(self, handle: str) -> str:
        alias, _, domain = handle.lower().partition("@")
        site = self.site if domain == self.domain else self.peers.get(domain, Site("im." + domain))
        return site.base + ALIASES + quote(alias, safe="@!$&'*+=~-._")

    def domain_of_site(self, site: Site) -> Optional[str]:
        if site == self.site:
            return self.domain
        for domain, peer in self.peers.items():
            if peer == site:
                return domain
        return None

    def handle_of_url(self, url: str) -> Optional[str]:
        """
        The handle a principal URL names (ours or a peer's); None if it is
        not a principal URL of a domain we know.
        """
        target = split_target(url.strip())
        if target is None or target.host is None:
            return None
        domain = self.domain_of_site(Site(target.host, target.port or 80))
        alias = alias_of_path(target.path)
        if domain is None or alias is None:
            return None
        return f"{alias}@{domain}"

    def local_handle_of_target(self, target_text: str) -> tuple[str, Optional[str]]:
        """
        For a request target: C{("ok", handle)} for one of our nodes,
        C{("not-here", None)} for another host's URL, C{("no-node", None)}
        for a path that is not a principal's node.
        """
        target = split_target(target_text)
        if target is None:
            return "no-node", None
        if target.host is not None and Site(target.host, target.port or 80) != self.site:
            if target.host not in (self.site.host, self.domain) or (target.port or 80) != self.site.port:
                return "not-here", None
        alias = alias_of_path(target.path)
        if alias is None:
            return "no-node", None
        return "ok", f"{alias}@{self.domain}"

    def is_local_url(self, url: str) -> bool:
        handle = self.handle_of_url(url)
        return handle is not None and self.is_local_handle(handle)
