"""Counts every HTTP request by route template, method and status for ``/metrics``.

``observe_http`` is the one hook: ``HttpMetricsMiddleware`` calls it for the FastAPI routes, ``api.hot_path``
for the hot ones.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from bkvy.api.services import Services

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_http(services: Services | None, route: str, method: str, status: int, seconds: float) -> None:
    """Count one request; ``route`` is the route's template (bounded), never the raw path, which a client writes."""
    records = services.records if services is not None else None
    if records is None:
        return
    records.metrics.observe_http(route, method if method in HTTP_METHODS else "other", status, seconds)


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_recording_status)
        finally:
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observe_http(services, route, scope.get("method", "GET"), status, time.perf_counter() - started)
