"""Shared fixtures: the simulated fleet on loopback and a gateway app bound to it with a fake clock."""

from __future__ import annotations

import random
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from bkvy.api.app import create_app
from bkvy.clock import Clock, FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings, load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    sim = SimFleet(seed=1, with_default_latency=False)
    await sim.start("127.0.0.1")
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def gateway(
    config: GatewayConfig,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (lifespan included) behind httpx's ASGI transport; upstream calls are real HTTP.

    Without explicit settings, LOG_DIR is a fresh temporary folder so no state leaks between tests.
    """
    if settings is None:
        settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"))
    app = create_app(settings, config, clock=clock, rng=rng)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bkvy.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def demo_gateway(fleet: SimFleet, fake_clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(demo_config(fleet), clock=fake_clock) as client:
        yield client
