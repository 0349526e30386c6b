from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio

from bkvy.sim import ModelKnobs, SimClock, SimServer

VALID_KEY = "sk-sim-valid"


@pytest_asyncio.fixture
async def start_sim() -> AsyncIterator[Callable[..., Awaitable[SimServer]]]:
    """Factory: start a SimServer for a wire format on an ephemeral port; all are stopped afterwards."""
    started: list[SimServer] = []

    async def _start(wire_format: str, *, seed: int = 0, clock: SimClock | None = None, **knobs: object) -> SimServer:
        server = SimServer(
            wire_format, seed=seed, models={"m1": ModelKnobs(**knobs)}, valid_keys={VALID_KEY}, clock=clock
        )
        await server.start()
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.stop()
