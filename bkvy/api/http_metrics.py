"""Counts every HTTP request by route template, method and status for ``/metrics``."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
            _observe(scope, status, time.perf_counter() - started)


def _observe(scope: Scope, status: int, seconds: float) -> None:
    services = getattr(scope["app"].state, "services", None) if "app" in scope else None
    records = getattr(services, "records", None)
    if records is None:
        return
    # The route's template (bounded), never the raw path: a path can carry client-chosen text.
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    method = scope.get("method", "GET")
    records.metrics.observe_http(route, method if method in HTTP_METHODS else "other", status, seconds)
