"""IP allowlist for the operator's views (SPEC §7–8): ``/dashboard*`` and ``/statistics*``.

The client is the socket peer. ``X-Forwarded-For`` counts only when the peer is a trusted proxy, and then
the client is the right-most hop that is not itself a trusted proxy (hops to its left are client-written).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bkvy.api.errors import new_request_id
from bkvy.core.config.gateway import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str], variable: str) -> tuple[Network, ...]:
    """``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"``... as networks. Raises ConfigError naming ``variable``."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"environment: {variable}: {entry!r} is not an IP address or CIDR. Fix: use e.g. 127.0.0.1,10.0.0.0/8"
            ) from None
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> Address | None:
    """The client's address, or None when it cannot be told (then nothing is allowed)."""
    address = _parse(peer)
    if address is None or not _is_in(address, proxies):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        hop_address = _parse(hop)
        if hop_address is None:
            return None
        if not _is_in(hop_address, proxies):
            return hop_address
        address = hop_address
    return address


def _parse(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_in(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


class IpAllowlistMiddleware:
    """Refuses requests under ``guarded_prefixes`` from addresses outside ``allowed`` with 403 ``forbidden``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed: Sequence[Network],
        trusted_proxies: Sequence[Network],
        guarded_prefixes: tuple[str, ...],
    ) -> None:
        self._app = app
        self._allowed = tuple(allowed)
        self._proxies = tuple(trusted_proxies)
        self._guarded_prefixes = guarded_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(self._guarded_prefixes):
            await self._app(scope, receive, send)
            return
        peer = scope.get("client")
        forwarded = [
            value.decode("latin-1") for name, value in scope.get("headers", []) if name.lower() == b"x-forwarded-for"
        ]
        address = client_address(peer[0] if peer else None, forwarded, self._proxies)
        if address is not None and _is_in(address, self._allowed):
            await self._app(scope, receive, send)
            return
        body = {
            "success": False,
            "request_id": new_request_id(),
            "error": {
                "code": "forbidden",
                "message": "this address may not open the dashboard or statistics; see DASHBOARD_ALLOWED_IPS",
            },
        }
        await JSONResponse(body, status_code=403)(scope, receive, send)
