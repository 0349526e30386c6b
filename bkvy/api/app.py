"""The FastAPI app: composition only. Routes parse and map; core decides.

What happens to a request, e.g. ``POST /v1/chat/completions``:
0. ``GatewayApp.__call__``: a browser's request (it carries ``Origin``) from a web origin that is not the
   gateway's own nor listed in CORS_ALLOWED_ORIGINS is refused here, for both paths (``api.cross_origin``).
1. ``GatewayApp._dispatch``: a hot endpoint of the table (``api.endpoints.ENDPOINTS``, ``is_hot``)? Then
   ``api.hot_path.HotPaths.serve`` calls its handler (``routes_openai.chat_completions``) at once, ahead of
   FastAPI's middleware and routing.
2. Any other request goes through FastAPI: the middleware (``_middleware``, the one place it is built), then
   the route registered from the same table.
Both paths share the body reader (``api.body``), the error mapping (``api.errors``) and the metrics hook
(``api.http_metrics``).
"""

from __future__ import annotations

import gc
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from bkvy.api.allowlist import AccessRule, IpAllowlistMiddleware, parse_networks
from bkvy.api.cross_origin import CrossOrigin, origin_of, parse_origins
from bkvy.api.endpoints import ENDPOINTS, add_request_schemas, register_endpoints
from bkvy.api.errors import install_error_handlers
from bkvy.api.hot_path import HotPaths
from bkvy.api.http_metrics import HttpMetricsMiddleware
from bkvy.api.redirects import install_relative_slash_redirects
from bkvy.api.scrub_send import ScrubbedSend
from bkvy.api.services import Services
from bkvy.clock import Clock, MonotonicClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings
from bkvy.core.upstream.transport import Transport

DASHBOARD_PREFIXES = ("/dashboard",)  # the dashboard page, its data and its static files
STATIC_DIR = Path(__file__).parent / "static"


class GatewayApp(FastAPI):
    """FastAPI, with the table's hot endpoints answered before its middleware stack (see ``api.hot_path``)."""

    hot_paths = HotPaths(ENDPOINTS)
    cross_origin = CrossOrigin()  # create_app sets CORS_ALLOWED_ORIGINS'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A browser's request (it carries Origin) meets one rule ahead of both paths below (api.cross_origin).
        if scope["type"] == "http" and (origin := origin_of(scope["headers"])) is not None:
            route = scope["path"] if self.hot_paths.handlers_at(scope) is not None else "unmatched"
            services = getattr(self.state, "services", None)
            await self.cross_origin.serve(
                origin, scope, receive, send, app=self._dispatch, route=route, services=services
            )
            return
        await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        handlers = self.hot_paths.handlers_at(scope)
        services = getattr(self.state, "services", None)
        if handlers is not None and services is not None:
            await self.hot_paths.serve(handlers, services, scope, receive, send)  # it scrubs what it sends
            return
        if services is not None and scope["type"] == "http" and not services.scrubber.is_empty:
            send = ScrubbedSend(send, services.scrubber)  # no configured secret in any response byte
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = add_request_schemas(super().openapi(), ENDPOINTS)
        return self.openapi_schema


def _middleware(settings: Settings) -> list[Middleware]:
    """FastAPI's middleware, outermost first (the hot endpoints are answered before it)."""
    return [
        Middleware(HttpMetricsMiddleware),
        Middleware(
            IpAllowlistMiddleware,
            rules=_access_rules(settings),
            trusted_proxies=parse_networks(settings.trusted_proxies, "TRUSTED_PROXIES"),
        ),
    ]


def _access_rules(settings: Settings) -> tuple[AccessRule, ...]:
    """The dashboard behind its allowlist; every ``is_monitoring`` row of the table behind the monitoring one."""
    is_own_list = settings.monitor_allowed_ips is not None
    monitor_variable = "MONITOR_ALLOWED_IPS" if is_own_list else "MONITOR_ALLOWED_IPS (unset: DASHBOARD_ALLOWED_IPS)"
    return (
        AccessRule(
            view="the dashboard",
            allowed=parse_networks(settings.dashboard_allowed_ips, "DASHBOARD_ALLOWED_IPS"),
            allowed_variable="DASHBOARD_ALLOWED_IPS",
            prefixes=DASHBOARD_PREFIXES,
        ),
        AccessRule(
            view="the monitoring endpoints",
            allowed=parse_networks(
                settings.monitor_allowlist, "MONITOR_ALLOWED_IPS" if is_own_list else "DASHBOARD_ALLOWED_IPS"
            ),
            allowed_variable=monitor_variable,
            routes=tuple((endpoint.method, endpoint.path) for endpoint in ENDPOINTS if endpoint.is_monitoring),
            bearer_key=settings.monitor_api_key,
            bearer_variable="BKVY_MONITOR_API_KEY",
        ),
    )


def create_app(
    settings: Settings,
    config: GatewayConfig,
    *,
    clock: Clock | None = None,
    transport: Transport | None = None,
    rng: random.Random | None = None,
    config_source: Callable[[], GatewayConfig] | None = None,
    connections_ended: Mapping[str, int] | None = None,
) -> FastAPI:
    """Build the app; its lifespan starts every service and stops them on shutdown. ``config_source`` is what a
    reload reads (default: the files in ``settings.config_dir``); it raises ConfigError."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(
            settings,
            config,
            clock=clock or MonotonicClock(),
            transport=transport,
            rng=rng,
            config_source=config_source,
        )
        if connections_ended is not None:  # the server's own tallies (``api.server.ConnectionCounts``)
            services.connections_ended = connections_ended
        app.state.services = services
        # Config, routes and services live as long as the process: keep them out of every GC pass. With
        # main.py's GC thresholds, measured on /llm/direct at c=64 (benchmarks/run.py --quick, 2026-12-01):
        # 5,218 req/s (80 % of the aiohttp forwarder) without both, 6,591 req/s (93 %) with both.
        gc.freeze()
        try:
            yield
        finally:
            await services.stop()

    app = GatewayApp(
        title="bkvy",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        middleware=_middleware(settings),
    )
    app.cross_origin = CrossOrigin(parse_origins(settings.cors_allowed_origins))
    install_error_handlers(app)
    register_endpoints(app, ENDPOINTS)
    install_relative_slash_redirects(app.router)
    if settings.dashboard_enabled:
        app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard_static")
    return app
