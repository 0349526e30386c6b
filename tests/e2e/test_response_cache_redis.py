"""The cache in Redis (CACHE_REDIS_URL) with a real redis-server: two replicas share hits; values compressed."""

from __future__ import annotations

import tempfile

from redis.asyncio import Redis

from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.test_response_cache import ON, direct, upstream_calls
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture


def _settings(url: str):
    return load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), cache_redis_url=url, admin_api_key="a")


async def test_two_replicas_share_hits_and_purge(
    fleet: SimFleet,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = demo_config(fleet)
    async with (
        gateway(config, clock=FakeClock(), settings=_settings(redis_server.url)) as one,
        gateway(config, clock=FakeClock(), settings=_settings(redis_server.url)) as two,
    ):
        miss = await one.post("/llm/direct", json=direct(), headers=ON)
        await one.app.state.services.cache.drain()  # type: ignore[attr-defined]  # the SET runs after the reply
        calls = upstream_calls(fleet)
        hit = await two.post("/llm/direct", json=direct(), headers=ON)
        assert miss.headers["x-bkvy-cache"] == "miss" and hit.headers["x-bkvy-cache"] == "hit"
        assert hit.json()["content"] == miss.json()["content"] and upstream_calls(fleet) == calls
        client = Redis.from_url(redis_server.url)
        try:
            [name] = [name async for name in client.scan_iter(match="bkvy:cache:*")]
            value = await client.get(name)
            assert value is not None and value[:1] == b"x"  # zlib: never the reply's JSON in clear
            assert 0 < await client.pttl(name) <= 300_000
        finally:
            await client.aclose()
        purged = await two.delete("/admin/cache", params={"scope": "client:e2e"}, headers={"X-Admin-API-Key": "a"})
        assert purged.json()["purged"] == 1
        again = await one.post("/llm/direct", json=direct(), headers=ON)
        assert again.headers["x-bkvy-cache"] == "miss"


async def test_a_redis_that_is_down_is_a_miss_not_an_error(
    fleet: SimFleet,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(redis_server.url)) as client:
        redis_server.kill()
        for _ in range(2):
            response = await client.post("/llm/direct", json=direct(), headers=ON)
            assert response.status_code == 200 and response.headers["x-bkvy-cache"] == "miss"
