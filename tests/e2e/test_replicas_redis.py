"""Two bkvy apps (separate processes' state: each its own services, limiter and Redis connection) over one real
redis-server (issue 17, tests 1 and 4). A FakeClock drives both apps' windows and, through the Lua script's
``now`` argument, the shared ones; upstream calls are real HTTP to the simulated OpenAI provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.settings import load_settings
from bkvy.sim import SimFleet
from tests.e2e.replicas import replicas, services_of
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

KEY = "sk-sim-shared"
MODEL = "gpt-4o-mini"
BODY = {"model": f"only/{MODEL}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _config(fleet: SimFleet, rpm: int) -> GatewayConfig:
    providers = {
        "only": {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {"k1": {"api_key": KEY, "rate_limits": {"*": {"rpm": rpm}}}},
            "models": {MODEL: {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001, "expected_latency_ms": 50}},
        }
    }
    return build_config(providers, {}, {})


@asynccontextmanager
async def _two_replicas(
    config: GatewayConfig, clock: FakeClock, redis_url: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with replicas(config, clock, redis_url, environ={"SUMMARY_STATS": "false"}) as clients:
        for client in clients:  # each has seen the other's heartbeat
            assert await services_of(client).shared.beat()  # type: ignore[union-attr]
        yield clients


def _most_in_any_minute(times: list[float]) -> int:
    return max((sum(1 for other in times if start <= other < start + 60.0) for start in times), default=0)


async def test_two_replicas_send_at_most_rpm_in_any_minute(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    server = fleet.servers["openai"]
    async with _two_replicas(_config(fleet, rpm=60), fake_clock, redis_server.url) as replicas:
        assert services_of(replicas[0]).shared.live_replicas() == 2  # type: ignore[union-attr]
        served: list[float] = []
        for number in range(200):  # 200 requests over both, within a minute and a half of the fake clock
            response = await replicas[number % 2].post("/v1/chat/completions", json=BODY)
            if response.status_code == 200:
                served.append(fake_clock.now())
            else:
                assert response.status_code == 429, response.text
                assert float(response.headers["retry-after"]) > 0
            fake_clock.advance(0.45)
    assert len(served) == server.stats.calls_for_key(KEY)
    assert _most_in_any_minute(served) <= 60
    assert len(served) >= 100  # the second minute's slots were used too


async def test_redis_down_serves_at_the_local_share_then_shares_again(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _two_replicas(_config(fleet, rpm=10), fake_clock, redis_server.url) as replicas:
        client = replicas[0]
        metrics = (await client.get("/metrics")).text
        assert "bkvy_shared_state_up 1.0" in metrics
        assert (await client.get("/health")).json()["status"] == "ok"
        redis_server.kill()
        statuses = [(await client.post("/v1/chat/completions", json=BODY)).status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3  # rpm 10 over the 2 replicas last seen: 5 here
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and "redis" in health["degraded_reason"]
        assert "bkvy_shared_state_up 0.0" in (await client.get("/metrics")).text
        redis_server.start()
        assert await services_of(client).shared.beat()  # type: ignore[union-attr]  # the reconnect task's step
        assert (await client.get("/health")).json()["status"] == "ok"
        assert "bkvy_shared_state_up 1.0" in (await client.get("/metrics")).text
        fake_clock.advance(61.0)
        statuses = [(await client.post("/v1/chat/completions", json=BODY)).status_code for _ in range(12)]
        assert statuses == [200] * 10 + [429] * 2  # the whole limit again, through Redis (emptied by the restart)


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis//x", "localhost:6379"])
def test_a_bad_redis_url_is_a_config_error(url: str) -> None:
    from bkvy.core.config.gateway import ConfigError

    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({"REDIS_URL": url})


async def test_redis_killed_under_load_gives_no_5xx(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Issue 17, test 4: SIGKILL of redis-server while requests are in flight on both replicas (some between
    their shared take and their answer, some about to take): every one is answered 200 or 429, never 5xx."""
    import asyncio

    fleet.servers["openai"].knobs(MODEL).latency_ms = 20.0  # the upstream's own latency keeps requests in flight
    async with _two_replicas(_config(fleet, rpm=1000), fake_clock, redis_server.url) as replicas:
        server = fleet.servers["openai"]
        requests = [
            asyncio.ensure_future(replicas[number % 2].post("/v1/chat/completions", json=BODY)) for number in range(60)
        ]
        async with asyncio.timeout(10.0):
            while server.stats.calls_for_key(KEY) < 10:  # some have taken their slot through Redis already
                await asyncio.sleep(0.005)
        redis_server.kill()
        statuses = [response.status_code for response in await asyncio.gather(*requests)]
        after = [(await replicas[n % 2].post("/v1/chat/completions", json=BODY)).status_code for n in range(10)]
        health = [(await replica.get("/health")).json()["status"] for replica in replicas]
    assert not [status for status in statuses + after if status >= 500]
    assert statuses.count(200) >= 10 and set(statuses + after) <= {200, 429}
    assert health == ["degraded", "degraded"]
