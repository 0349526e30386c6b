"""Client keys shared by two bkvy apps (two replicas: separate LOG_DIRs and services) over one real redis-server
(issue 17, test 3): created on A works on B at once, revoked on B is refused on A (observed on the published
event), a budget spent from both stops both, the rpm is shared, Redis down keeps local keys working and loses no
spend, and the migration copies SQLite keys once."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.settings import load_settings
from bkvy.core.limits.client_keys import month_of
from bkvy.core.shared.key_layout import KeyLayout
from bkvy.core.shared.migrate import migrate_client_keys
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.replicas import replicas, services_of
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ADMIN = {"X-Admin-API-Key": "admin-secret"}
CHAT = {"model": "only/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
PREFIX = "bkvy:"


def _config(fleet: SimFleet) -> GatewayConfig:
    """One lane with no rate limit of its own: what is refused here is the client key's doing."""
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001, "expected_latency_ms": 50}
    keys = {"k1": {"api_key": "sk-sim-keys"}}
    providers = {
        "only": {"type": "openai", "base_url": fleet.base_url("openai"), "keys": keys, "models": {"gpt-4o-mini": model}}
    }
    return build_config(providers, {}, {})


def _settings(log_dir: str, redis_url: str | None):
    environ = {"SUMMARY_STATS": "false"} | ({"REDIS_URL": redis_url} if redis_url else {})
    return load_settings(environ, log_dir=log_dir, admin_api_key="admin-secret")


@asynccontextmanager
async def _replicas(
    config: GatewayConfig, clock: FakeClock, redis_url: str, count: int = 2
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with replicas(
        config, clock, redis_url, count=count, environ={"SUMMARY_STATS": "false"}, admin_api_key="admin-secret"
    ) as clients:
        for client in clients:
            assert await services_of(client).shared.beat()  # type: ignore[union-attr]
            sharing = services_of(client).sharing
            assert sharing is not None
            async with asyncio.timeout(5.0):  # the bus subscribes in a task of its own after start-up
                while not sharing.bus.is_subscribed:
                    await asyncio.sleep(0.005)
        yield clients


async def _create(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/admin/keys", json={"name": "team-a", **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _chat(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


async def test_created_on_a_works_on_b_and_revoked_on_b_is_refused_on_a(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url) as (a, b):
        created = await _create(a)
        assert (await _chat(b, created["key"])).status_code == 200  # B had never seen it: one lookup by hash
        assert (await _chat(a, created["key"])).status_code == 200
        assert (await _chat(b, "bkvy-sk-" + "x" * 43)).status_code == 401
        assert (await b.delete(f"/admin/keys/{created['id']}", headers=ADMIN)).status_code == 200
        await asyncio.wait_for(services_of(a).shared_keys.wait_revoked(created["id"]), 1.0)  # type: ignore[union-attr]
        assert services_of(a).client_keys.authenticate(created["key"]) is None  # type: ignore[union-attr]
        assert (await _chat(a, created["key"])).status_code == 401
        assert (await b.delete(f"/admin/keys/{created['id']}", headers=ADMIN)).status_code == 404
        stored = await Redis.from_url(redis_server.url).execute_command("DUMP", f"{PREFIX}ck:ids")
        assert created["key"].encode() not in stored  # the hash only, never the value


async def test_a_budget_spent_from_both_stops_both_overshoot_at_most_in_flight(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url) as (a, b):
        key = (await _create(a, monthly_budget_usd=0.0000001))["key"]  # less than one request costs
        in_flight = [_chat(replica, key) for replica in (a, b) * 4]
        statuses = [response.status_code for response in await asyncio.gather(*in_flight)]
        # admitted until a spend reached Redis (the flusher sends at once): the overshoot, at most the 8 in flight
        assert 1 <= statuses.count(200) <= len(in_flight)
        assert set(statuses) <= {200, 402}
        for replica in (a, b):  # each request's spend reaches Redis before the next admission
            await services_of(replica).shared_keys.flush()  # type: ignore[union-attr]
        after = [(await _chat(replica, key)).status_code for replica in (a, b, a, b)]
        assert after == [402] * 4
        [listed] = (await b.get("/admin/keys", headers=ADMIN)).json()["keys"]
        assert listed["requests"] == statuses.count(200) and listed["spend_usd_this_month"] > 0  # the admitted only


async def test_sequential_requests_overshoot_by_at_most_the_one_in_flight(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url) as (a, b):
        key = (await _create(a, monthly_budget_usd=0.0000001))["key"]
        statuses = [(await _chat(replica, key)).status_code for replica in (a, b) * 3]
        assert statuses[0] == 200 and statuses.count(200) <= 2 and statuses[-2:] == [402, 402]


async def test_client_key_rpm_is_shared(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url) as (a, b):
        key = (await _create(a, rpm=4))["key"]
        responses = [await _chat(replica, key) for replica in (a, b) * 3]
        assert [r.status_code for r in responses] == [200] * 4 + [429] * 2
        assert responses[-1].json()["error"]["code"] == "client_rate_limited"
        assert float(responses[-1].headers["retry-after"]) > 0
        fake_clock.advance(61.0)
        assert (await _chat(b, key)).status_code == 200


async def test_redis_down_keeps_local_keys_and_loses_no_spend(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url) as (a, b):
        key = (await _create(a, rpm=6))["key"]
        other = (await _create(a, name="never-used-on-b"))["key"]
        assert (await _chat(b, key)).status_code == 200  # B knows it now
        redis_server.kill()
        statuses = [(await _chat(b, key)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # rpm 6 over 2 live replicas: 3 here (1 was taken before)
        assert (await _chat(a, other)).status_code == 200  # created here: known locally
        assert (await b.post("/admin/keys", json={"name": "x"}, headers=ADMIN)).status_code == 503
        pending = services_of(b).shared_keys._spend.total_usd  # type: ignore[union-attr]
        assert pending > 0
        redis_server.start()  # empty (no persistence in tests): what is there after is what was kept
        services = services_of(b)
        assert await services.shared.beat()  # type: ignore[union-attr]
        await services.shared_keys.flush()  # type: ignore[union-attr]
        key_id = services.client_keys.authenticate(key).key_id  # type: ignore[union-attr]
        client = Redis.from_url(redis_server.url)
        month = month_of(fake_clock.wall())
        stored = float(await client.hget(KeyLayout(PREFIX).spend(key_id), month) or 0)
        assert abs(stored - pending) < 1e-12
        await client.aclose()


async def test_migration_copies_sqlite_keys_once(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    log_dir = tempfile.mkdtemp(prefix="bkvy-test-")
    async with gateway(_config(fleet), clock=fake_clock, settings=_settings(log_dir, None)) as embedded:
        kept = await _create(embedded, monthly_budget_usd=5.0)
        gone = await _create(embedded, name="old")
        assert (await _chat(embedded, kept["key"])).status_code == 200
        assert (await embedded.delete(f"/admin/keys/{gone['id']}", headers=ADMIN)).status_code == 200
    client = Redis.from_url(redis_server.url)
    first = await migrate_client_keys(client, prefix=PREFIX, log_dir=Path(log_dir), now_wall=fake_clock.wall())
    assert (first.keys_found, first.keys_copied, first.revoked_copied) == (2, 2, 1) and first.spend_copied_usd > 0
    again = await migrate_client_keys(client, prefix=PREFIX, log_dir=Path(log_dir), now_wall=fake_clock.wall())
    assert (again.keys_copied, again.revoked_copied, again.spend_copied_usd) == (0, 0, 0.0)
    await client.aclose()
    async with _replicas(_config(fleet), fake_clock, redis_server.url, count=1) as (replica,):
        assert (await _chat(replica, kept["key"])).status_code == 200
        assert (await _chat(replica, gone["key"])).status_code == 401
        listed = {k["name"]: k for k in (await replica.get("/admin/keys", headers=ADMIN)).json()["keys"]}
        assert listed["team-a"]["requests"] == 2 and listed["team-a"]["spend_usd_this_month"] > 0
        assert listed["old"]["revoked"]
