"""Several bkvy apps over one real redis-server, as separate processes would run (issue 17's tests): each its own
services, LOG_DIR and Redis connection; one FakeClock drives them all (the Redis scripts take ``now``)."""

from __future__ import annotations

import random
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from bkvy.api.services import Services
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import load_settings
from tests.conftest import gateway

# A Redis call longer than REDIS_TIMEOUT_MS (50 ms by default) of real time marks the shared state down and the
# replica falls back to local state: on a busy test machine that is an outage no test asked for. The tests' outages
# are SIGKILLs (refused at once), so a generous bound waits for nothing; a test may still set its own.
_REDIS_TIMEOUT_MS = "2000"


@asynccontextmanager
async def replicas(
    config: GatewayConfig,
    clock: FakeClock,
    redis_url: str,
    *,
    count: int = 2,
    log_dirs: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
    **overrides: object,
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` apps (or one per ``log_dirs`` entry) with REDIS_URL, ``environ`` and settings ``overrides``
    (REDIS_TIMEOUT_MS: 2 s unless ``environ`` says otherwise)."""
    dirs = log_dirs or [tempfile.mkdtemp(prefix="bkvy-test-") for _ in range(count)]
    async with AsyncExitStack() as stack:
        clients = []
        for log_dir in dirs:
            environ_of_replica = {"REDIS_URL": redis_url, "REDIS_TIMEOUT_MS": _REDIS_TIMEOUT_MS, **(environ or {})}
            settings = load_settings(environ_of_replica, log_dir=log_dir, **overrides)
            clients.append(await stack.enter_async_context(gateway(config, clock=clock, settings=settings, rng=rng)))
        yield clients


def services_of(client: httpx.AsyncClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined, no-any-return]
