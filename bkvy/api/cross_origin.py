"""Browsers on other sites (issue 16): which web origins may call the gateway, and the CORS headers they get.

A browser names the page's origin in ``Origin`` on every cross-origin request (and on same-origin ones except
GET and HEAD); other clients (SDKs, curl) do not send it. One rule for every route, applied by
``GatewayApp.__call__`` ahead of the hot paths and FastAPI alike (``CrossOrigin.serve``):

- no ``Origin``: served as before (the check is one scan of the header list);
- ``Origin`` is the gateway's own (its host and port are the ``Host`` header, as for the dashboard): served;
- ``Origin`` is listed in CORS_ALLOWED_ORIGINS (or the list is ``*``): served with CORS headers, and a
  preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 here;
- any other origin: 403 ``origin_not_allowed`` before anything is read or billed.

Together with ``api.body.require_json`` (a JSON body needs a preflight), no web page can spend through the
gateway unless its origin is listed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from bkvy.api.errors import failure_body, failure_of, new_request_id
from bkvy.api.http_metrics import observe_http
from bkvy.api.services import Services
from bkvy.core.config.gateway import ConfigError
from bkvy.models.errors import OriginNotAllowed

ANY_ORIGIN = "*"
_ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
_ALLOWED_HEADERS = ("authorization", "content-type", "x-api-key", "anthropic-version", "anthropic-beta")
# What the browser builds of the openai and anthropic SDKs add (x-stainless-*, openai-organization,
# anthropic-dangerous-direct-browser-access), and bkvy's own headers.
_ALLOWED_HEADER_PREFIXES = ("x-bkvy-", "x-stainless-", "openai-", "anthropic-")
_EXPOSED_HEADERS = (
    "x-bkvy-request-id, x-request-id, request-id, retry-after, x-bkvy-hedged, x-bkvy-cache, x-bkvy-cache-age"
)
_PREFLIGHT_MAX_AGE_SECONDS = "600"

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The ``Origin`` header, or None (every request pays this scan: ~0.1 µs for 8 headers)."""
    for name, value in headers:
        if name == b"origin":
            return value
    return None


@dataclass(frozen=True, slots=True)
class CrossOrigin:
    """The origins CORS_ALLOWED_ORIGINS lists (``scheme://host[:port]``, lower case), or ``*`` among them."""

    allowed_origins: frozenset[str] = frozenset()

    def is_listed(self, origin: str) -> bool:
        """Listed, or any origin with ``*`` (``null``, from sandboxed pages and files, only so)."""
        return origin in self.allowed_origins or ANY_ORIGIN in self.allowed_origins

    async def serve(
        self,
        origin_raw: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        app: App,
        route: str,
        services: Services | None,
    ) -> None:
        """Serve a request that carries ``Origin``: pass it to ``app`` (with CORS headers for a listed origin),
        answer its preflight, or refuse it. ``route`` names it in the metrics when it is refused or preflighted."""
        started = time.perf_counter()
        origin = origin_raw.decode("latin-1").strip().lower()
        headers = scope["headers"]
        if _is_same_origin(origin, _header(headers, b"host")):
            await app(scope, receive, send)
            return
        if not self.is_listed(origin):
            response = _refusal(scope["path"], scope["method"], route)
        elif scope["method"] == "OPTIONS" and _header(headers, b"access-control-request-method") is not None:
            response = _preflight(origin, _header(headers, b"access-control-request-headers"))
        else:
            await app(scope, receive, _with_cors_headers(send, origin))
            return
        await response(scope, receive, send)
        observe_http(services, route, scope["method"], response.status_code, time.perf_counter() - started)


def parse_origins(entries: Iterable[str]) -> frozenset[str]:
    """CORS_ALLOWED_ORIGINS' entries, lower case. Raises ConfigError for one that is not ``*`` or an origin."""
    origins = set()
    for entry in entries:
        origin = entry.strip().lower()
        scheme, separator, authority = origin.partition("://")
        is_origin = scheme in ("http", "https") and separator and authority and not set("/?#@ ") & set(authority)
        if origin != ANY_ORIGIN and not is_origin:
            raise ConfigError(
                f"environment: CORS_ALLOWED_ORIGINS: {entry!r} is not an origin. Fix: use scheme://host[:port] "
                "with no path, e.g. https://app.example.com,http://localhost:3000 (or * for every origin)"
            )
        origins.add(origin)
    return frozenset(origins)


def _is_same_origin(origin: str, host: str | None) -> bool:
    """The page is the gateway's own (the dashboard): the origin's host and port are the Host header. The scheme
    is not compared: TLS may end at a proxy in front of the gateway."""
    return host is not None and origin.partition("://")[2] == host.strip().lower()


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _refusal(path: str, method: str, route: str) -> Response:
    """403 ``origin_not_allowed`` in the path's error envelope (OpenAI's on /v1/*, Anthropic's on /v1/messages)."""
    request_id = new_request_id()
    error = OriginNotAllowed("this web page's origin may not call the gateway; see CORS_ALLOWED_ORIGINS")
    failure = failure_of(error, method=method, route=route, request_id=request_id)
    body, headers = failure_body(path, request_id, failure)
    return JSONResponse(body, status_code=failure.status, headers={**(headers or {}), "vary": "Origin"})


def _preflight(origin: str, requested_headers: str | None) -> Response:
    """204 with what an allowed origin may send; a requested header outside the list is left out, so the browser
    refuses the request itself."""
    requested = [name.strip().lower() for name in (requested_headers or "").split(",") if name.strip()]
    extra = [name for name in requested if name not in _ALLOWED_HEADERS and name.startswith(_ALLOWED_HEADER_PREFIXES)]
    headers = {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": _ALLOWED_METHODS,
        "access-control-allow-headers": ", ".join((*_ALLOWED_HEADERS, *extra)),
        "access-control-max-age": _PREFLIGHT_MAX_AGE_SECONDS,
        "vary": "Origin",
    }
    return Response(status_code=204, headers=headers)


def _with_cors_headers(send: Send, origin: str) -> Send:
    cors_headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", _EXPOSED_HEADERS.encode("latin-1")),
        (b"vary", b"Origin"),
    ]

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *cors_headers]}
        await send(message)

    return send_with_cors
