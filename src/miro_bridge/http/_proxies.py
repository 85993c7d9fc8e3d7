"""Which peers' `X-Forwarded-*` headers are believed (`MIRO_TRUSTED_PROXIES`).

As uvicorn's `forwarded_allow_ips`: from a trusted peer, `scope["scheme"]` comes from
`X-Forwarded-Proto` (`http` or `https`) and `scope["client"]` from `X-Forwarded-For`: the
right-most address that is not itself a trusted proxy (each proxy appends the peer it saw, so
whatever stands left of the first untrusted address may be forged), or the left-most one when
all are trusted. From any other peer, `X-Forwarded-Proto`, `-For` and `-Host` are removed from
the scope's headers, so that nothing downstream (the HTTPS redirect, the logs, the legacy
proxy) sees them: an outsider can neither dodge the redirect nor forge its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from miro_bridge.config import Network
from miro_bridge.http.typing import PEER_KEY, Scope

#: How many peers' answers `trusts` remembers (then it starts again).
_REMEMBERED = 4096
_FORWARDED = frozenset({b"x-forwarded-proto", b"x-forwarded-for", b"x-forwarded-host"})
_SCHEMES = frozenset({"http", "https"})


class TrustedProxies:
    """Applies the forwarded headers of a request according to who sent them."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        self._known: dict[str, bool] = {}  # parsing an address costs more than the request

    def trusts(self, host: str) -> bool:
        """Whether `host` is an address in one of the trusted networks."""
        known = self._known.get(host)
        if known is None:
            if len(self._known) >= _REMEMBERED:
                self._known.clear()
            known = self._known[host] = self._trusts(host)
        return known

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
        return any(address in network for network in self._networks)

    def apply(self, scope: Scope) -> None:
        """Set the scheme and client of `scope` from a trusted peer's headers, or drop them.

        The peer's own address stays in the scope under `PEER_KEY`.
        """
        peer = scope.get("client")
        scope[PEER_KEY] = peer
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if not any(name in _FORWARDED for name, _ in headers):
            return  # nothing forwarded: nothing to believe or to drop
        if peer is None or not self.trusts(peer[0]):
            scope["headers"] = [(n, v) for n, v in headers if n not in _FORWARDED]
            return
        protos = [v for n, v in headers if n == b"x-forwarded-proto"]
        if protos and (proto := protos[-1].decode("latin-1").strip().lower()) in _SCHEMES:
            scope["scheme"] = proto
        chain = [
            host.strip()
            for n, v in headers
            if n == b"x-forwarded-for"
            for host in v.decode("latin-1").split(",")
            if host.strip()
        ]
        if chain:
            client = next((host for host in reversed(chain) if not self.trusts(host)), chain[0])
            scope["client"] = (client, 0)
