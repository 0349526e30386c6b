"""Who may open the operator's views (SPEC §7–8): an IP allowlist per view, and for monitoring an optional key.

Two rules, built in ``api.app._middleware``:
- the dashboard (``/dashboard*``): addresses in DASHBOARD_ALLOWED_IPS;
- the monitoring endpoints (the rows of ``api.endpoints.ENDPOINTS`` marked ``is_monitoring``): addresses in
  MONITOR_ALLOWED_IPS (DASHBOARD_ALLOWED_IPS when unset) and, with BKVY_MONITOR_API_KEY set, that key as
  ``Authorization: Bearer <key>`` (what Prometheus's ``bearer_token`` sends).

The client is the socket peer. ``X-Forwarded-For`` counts only when the peer is a trusted proxy, and then
the client is the right-most hop that is not itself a trusted proxy (hops to its left are client-written).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.routing import compile_path
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


def is_trusted_peer(peer: str | None, proxies: Sequence[Network]) -> bool:
    """The socket peer is one of ``proxies`` (TRUSTED_PROXIES): what it forwards may be believed."""
    address = _parse(peer)
    return address is not None and _is_in(address, proxies)


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


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Requests to ``prefixes``, or to one of ``routes`` (method, path in starlette syntax), need an address in
    ``allowed`` (else 403) and, when ``bearer_key`` is set, ``Authorization: Bearer <bearer_key>`` (else 401)."""

    view: str  # named in the 403/401 message, e.g. "the dashboard"
    allowed: tuple[Network, ...]
    allowed_variable: str  # the variable an operator changes, named in the 403 message
    prefixes: tuple[str, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()
    bearer_key: str | None = None
    bearer_variable: str = ""  # the variable holding bearer_key, named in the 401 message

    def compiled(self) -> _CompiledRule:
        patterns = tuple((method, compile_path(path)[0]) for method, path in self.routes)
        key = self.bearer_key.encode("utf-8") if self.bearer_key else None
        return _CompiledRule(self, patterns, key)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: AccessRule
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    bearer_key: bytes | None

    def applies_to(self, method: str, path: str) -> bool:
        if path.startswith(self.rule.prefixes):
            return True
        method = "GET" if method == "HEAD" else method
        return any(method == route_method and pattern.match(path) for route_method, pattern in self.patterns)


def has_bearer_key(authorization: Sequence[str], expected: bytes) -> bool:
    """Whether one ``Authorization`` header is ``Bearer <expected>`` (scheme case-insensitive, constant time)."""
    is_match = False
    for value in authorization:
        scheme, _, token = value.strip().partition(" ")
        # Header values arrive latin-1 decoded; compare bytes so non-ASCII input cannot raise.
        given = token.strip().encode("latin-1", errors="replace")
        is_match |= scheme.lower() == "bearer" and hmac.compare_digest(given, expected)
    return is_match


class IpAllowlistMiddleware:
    """Applies the first ``AccessRule`` a request falls under: 403 ``forbidden`` for an address outside its
    allowlist, 401 ``unauthorized`` (with ``WWW-Authenticate: Bearer``) for a missing or wrong bearer key."""

    def __init__(self, app: ASGIApp, *, rules: Sequence[AccessRule], trusted_proxies: Sequence[Network]) -> None:
        self._app = app
        self._rules = tuple(rule.compiled() for rule in rules)
        self._proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._rule_for(scope)
        if rule is None:
            await self._app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        forwarded = [value.decode("latin-1") for name, value in headers if name.lower() == b"x-forwarded-for"]
        peer = scope.get("client")
        address = client_address(peer[0] if peer else None, forwarded, self._proxies)
        if address is None or not _is_in(address, rule.rule.allowed):
            message = f"this address may not open {rule.rule.view}; see {rule.rule.allowed_variable}"
            await _refusal(403, "forbidden", message, {})(scope, receive, send)
            return
        if rule.bearer_key is not None:
            authorization = [value.decode("latin-1") for name, value in headers if name.lower() == b"authorization"]
            if not has_bearer_key(authorization, rule.bearer_key):
                message = f"{rule.rule.view} need Authorization: Bearer <key>; see {rule.rule.bearer_variable}"
                challenge = {"WWW-Authenticate": 'Bearer realm="bkvy-monitor"'}
                await _refusal(401, "unauthorized", message, challenge)(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _rule_for(self, scope: Scope) -> _CompiledRule | None:
        if scope["type"] not in ("http", "websocket"):
            return None
        method, path = scope.get("method", "GET"), scope["path"]
        return next((rule for rule in self._rules if rule.applies_to(method, path)), None)


def _refusal(status: int, code: str, message: str, headers: dict[str, str]) -> JSONResponse:
    body = {"success": False, "request_id": new_request_id(), "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)
