"""Tenants shared by two replicas over one real redis-server (issue 19 §3): a tenant created on A is known on B
(heard on the bus), its keys work on both, its rpm and budget count across both replicas and all its keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bkvy.clock import FakeClock
from bkvy.sim import SimFleet
from tests.e2e.replicas import replicas, services_of
from tests.e2e.test_client_keys_redis import _config
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ADMIN = {"X-Admin-API-Key": "admin-secret"}
CHAT = {"model": "only/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@asynccontextmanager
async def _two(fleet: SimFleet, clock: FakeClock, redis_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with replicas(
        _config(fleet), clock, redis_url, environ={"SUMMARY_STATS": "false"}, admin_api_key="admin-secret"
    ) as clients:
        for client in clients:
            sharing = services_of(client).sharing
            assert sharing is not None
            async with asyncio.timeout(5.0):  # the bus subscribes in a task of its own after start-up
                while not sharing.bus.is_subscribed:
                    await asyncio.sleep(0.005)
        yield clients


async def _known_on(client: httpx.AsyncClient, tenant_id: str, **expected: object) -> None:
    store = services_of(client).tenants
    assert store is not None
    async with asyncio.timeout(5.0):  # the announcement arrives on the bus
        while (tenant := store.get(tenant_id)) is None or any(
            getattr(tenant.config, k) != v for k, v in expected.items()
        ):
            await asyncio.sleep(0.005)


async def _key(client: httpx.AsyncClient, name: str, tenant: str) -> dict[str, str]:
    response = await client.post("/admin/keys", json={"name": name, "tenant": tenant}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_a_tenant_created_on_a_is_known_on_b_and_its_rpm_spans_both(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _two(fleet, fake_clock, redis_server.url) as (a, b):
        assert (await a.post("/admin/tenants", json={"id": "acme", "rpm": 3}, headers=ADMIN)).status_code == 201
        await _known_on(b, "acme", rpm=3)
        on_a, on_b = await _key(a, "a1", "acme"), await _key(b, "b1", "acme")
        statuses = [(await b.post("/v1/chat/completions", json=CHAT, headers=k)).status_code for k in (on_a, on_b)]
        statuses += [(await a.post("/v1/chat/completions", json=CHAT, headers=k)).status_code for k in (on_b, on_a)]
        assert statuses == [200, 200, 200, 429]
        assert (await b.delete("/admin/tenants/acme", headers=ADMIN)).status_code == 200
        await _known_on(a, "acme", disabled=True)
        refused = await a.post("/v1/chat/completions", json=CHAT, headers=on_a)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_disabled"
        listed = (await b.get("/admin/tenants", headers=ADMIN)).json()["tenants"]
        assert [(t["id"], t["disabled"]) for t in listed] == [("acme", True)]


async def test_a_tenant_budget_spent_on_a_stops_its_keys_on_b(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _two(fleet, fake_clock, redis_server.url) as (a, b):
        body = {"id": "acme", "monthly_budget_usd": 0.0000001}
        assert (await a.post("/admin/tenants", json=body, headers=ADMIN)).status_code == 201
        await _known_on(b, "acme")
        first, second = await _key(a, "a1", "acme"), await _key(a, "a2", "acme")
        assert (await a.post("/v1/chat/completions", json=CHAT, headers=first)).status_code == 200
        await services_of(a).shared_tenants.flush()  # type: ignore[union-attr]
        for replica in (a, b):
            for key in (first, second):
                over = await replica.post("/v1/chat/completions", json=CHAT, headers=key)
                assert over.status_code == 402 and over.json()["error"]["code"] == "budget_exceeded"


async def test_two_creates_of_one_id_one_wins_and_the_other_gets_409(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _two(fleet, fake_clock, redis_server.url) as (a, b):
        body = {"id": "acme", "rpm": 3}
        replies = await asyncio.gather(*(c.post("/admin/tenants", json=body, headers=ADMIN) for c in (a, b)))
        assert sorted(r.status_code for r in replies) == [201, 409]
        loser = next(r for r in replies if r.status_code == 409)
        assert loser.json()["error"]["code"] == "tenant_exists"
        # Stored by another replica, not yet heard of here: Redis still refuses the id.
        shared = services_of(a).shared
        assert shared is not None
        await shared.client.hset(f"{shared.prefix}tn:all", "globex", '{"rpm":1}')
        taken = await a.post("/admin/tenants", json={"id": "globex", "rpm": 5}, headers=ADMIN)
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "tenant_exists"
        assert await shared.client.hget(f"{shared.prefix}tn:all", "globex") in ('{"rpm":1}', b'{"rpm":1}')
