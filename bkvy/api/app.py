"""The FastAPI app: composition only. Routes parse and map; core decides."""

from __future__ import annotations

import gc
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from bkvy.api import routes_admin, routes_circuits, routes_llm, routes_monitor, routes_openai
from bkvy.api.errors import install_error_handlers
from bkvy.api.hot_path import HotPaths
from bkvy.api.routes_records import install_records_routes
from bkvy.clock import Clock, MonotonicClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.api.services import Services
from bkvy.core.config.settings import Settings
from bkvy.core.upstream.transport import Transport


class GatewayApp(FastAPI):
    """FastAPI, with the routing endpoints answered before its middleware stack (see ``api.hot_path``)."""

    hot_paths = HotPaths(routes_llm.hot_paths | routes_openai.hot_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.hot_paths.handler_for(scope)
        services = getattr(self.state, "services", None)
        if handler is not None and services is not None:
            await self.hot_paths.serve(handler, services, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, config: GatewayConfig, *, clock: Clock | None = None,
               transport: Transport | None = None, rng: random.Random | None = None) -> FastAPI:
    """Build the app; its lifespan starts every service and stops them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, config, clock=clock or MonotonicClock(), transport=transport,
                                        rng=rng)
        app.state.services = services
        gc.freeze()   # config, routes and services live as long as the process: keep them out of every GC pass
        try:
            yield
        finally:
            await services.stop()

    app = GatewayApp(title="bkvy", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    install_error_handlers(app)
    app.include_router(routes_monitor.router)
    app.include_router(routes_circuits.router)
    app.include_router(routes_openai.router)
    app.include_router(routes_admin.router)
    install_records_routes(app, settings)     # statistics, dashboard, /metrics; IP allowlist
    return app
