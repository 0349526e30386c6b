"""Statistics of the fleet and per-process logs (issue 17, test 5): two bkvy apps (two replicas: each its own
services, LOG_DIR and Redis connection) over one real redis-server; upstream calls are real HTTP to the simulated
OpenAI provider. The background publish is driven by calling ``sync``, never by sleeping."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.settings import load_settings
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.replicas import replicas, services_of
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

MODEL = "gpt-4o-mini"
BODY = {"model": f"only/{MODEL}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
_RECORDS_ON = {"SUMMARY_STATS": "true", "DASHBOARD_ENABLED": "true", "TRANSACTION_LOGGING": "true"}


def _config(fleet: SimFleet) -> GatewayConfig:
    providers = {
        "only": {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {"k1": {"api_key": "sk-sim-stats"}},
            "models": {MODEL: {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001, "expected_latency_ms": 50}},
        }
    }
    return build_config(providers, {}, {})


@asynccontextmanager
async def _replicas(
    config: GatewayConfig, clock: FakeClock, redis_url: str, log_dirs: list[str]
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with replicas(config, clock, redis_url, log_dirs=log_dirs, environ=_RECORDS_ON) as clients:
        yield clients


async def _serve(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(count):
        response = await client.post("/v1/chat/completions", json=BODY)
        assert response.status_code == 200, response.text


async def _publish(*clients: httpx.AsyncClient) -> None:
    for client in clients:
        fleet_stats = services_of(client).fleet_stats
        assert fleet_stats is not None
        for _ in range(2):  # the records reach the sinks after the reply: the second publish has them all
            assert await fleet_stats.sync()


def _fresh_dirs(count: int) -> list[str]:
    return [tempfile.mkdtemp(prefix="bkvy-test-") for _ in range(count)]


async def test_either_replica_counts_the_requests_of_both(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url, _fresh_dirs(2)) as (a, b):
        await _serve(a, 3)
        await _serve(b, 2)
        await _publish(a, b)
        for replica in (a, b):
            assert await services_of(replica).fleet_budgets.sync()  # type: ignore[union-attr]  # wired, exchanging
            summary = (await replica.get("/statistics/summary")).json()
            assert summary["today"]["total"] == 5
            assert summary["today"]["by_provider"] == {"only": 5}
            assert (summary["replicas"], summary["partial"]) == (2, False)
            aggregate = (await replica.get("/statistics/aggregate")).json()
            assert aggregate["total"] == 5
            day = summary["today"]["date"]
            assert (await replica.get(f"/statistics/daily/{day}")).json()["total"] == 5
            for range_name in ("1h", "24h", "7d"):  # live buckets (minutes), and daily totals
                dashboard = (await replica.get("/dashboard/data", params={"range": range_name})).json()
                assert dashboard["summary"]["total"] == 5, range_name
                assert sum(point["requests"] for point in dashboard["series"]) == 5
                assert dashboard["providers"] == {"only": 5}
                assert (dashboard["replicas"], dashboard["partial"]) == (2, False)


async def test_a_stopped_replica_still_counts_and_a_restart_counts_once(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    dirs = _fresh_dirs(2)
    async with _replicas(_config(fleet), fake_clock, redis_server.url, dirs) as (a, b):
        await _serve(a, 2)
        await _serve(b, 1)
        await _publish(a, b)
    # both stopped; A starts again over its LOG_DIR: its saved totals are its own, published under the same id
    async with _replicas(_config(fleet), fake_clock, redis_server.url, dirs[:1]) as (a,):
        await _serve(a, 1)
        await _publish(a)
        summary = (await a.get("/statistics/summary")).json()
        assert summary["today"]["total"] == 4
        assert summary["replicas"] == 2


async def test_redis_down_shows_local_figures_marked_partial(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(_config(fleet), fake_clock, redis_server.url, _fresh_dirs(2)) as (a, b):
        await _serve(a, 3)
        await _serve(b, 2)
        await _publish(a, b)
        redis_server.kill()
        await _serve(a, 1)  # served without Redis
        for path in ("/statistics/summary", "/dashboard/data?range=1h", "/dashboard/data?range=7d"):
            response = await a.get(path)
            assert response.status_code == 200, path
            body = response.json()
            total = body["today"]["total"] if "today" in body else body["summary"]["total"]
            assert (total, body["replicas"], body["partial"]) == (4, 1, True), path
        assert not await services_of(a).fleet_stats.sync()  # type: ignore[union-attr]
        redis_server.start()
        for replica in (a, b):  # a connection from before the restart fails once: a few beats, bounded
            assert any([await services_of(replica).shared.beat() for _ in range(3)])  # type: ignore[union-attr]
        await _publish(a, b)  # Redis restarted empty: each republishes its whole day
        summary = (await b.get("/statistics/summary")).json()
        assert (summary["today"]["total"], summary["partial"]) == (6, False)


async def test_each_process_writes_its_own_files_in_a_shared_log_dir(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    shared_dir = _fresh_dirs(1)[0]
    async with _replicas(_config(fleet), fake_clock, redis_server.url, [shared_dir, shared_dir]) as (a, b):
        assert (services_of(a).slot.name, services_of(b).slot.name) == ("w0", "w1")  # type: ignore[union-attr]
        await _serve(a, 3)
        await _serve(b, 2)
    rows = {
        name: list(csv.DictReader((Path(shared_dir) / name).open(encoding="utf-8")))
        for name in ("transactions.w0.csv", "transactions.w1.csv")
    }
    assert {name: len(found) for name, found in rows.items()} == {"transactions.w0.csv": 3, "transactions.w1.csv": 2}
    assert not (Path(shared_dir) / "transactions.csv").exists()
    assert (Path(shared_dir) / "daily_stats.w0.json").exists() and (Path(shared_dir) / "daily_stats.w1.json").exists()


async def test_without_redis_the_files_keep_their_names(fleet: SimFleet, fake_clock: FakeClock) -> None:
    log_dir = _fresh_dirs(1)[0]
    settings = load_settings(dict(_RECORDS_ON), log_dir=log_dir)
    async with gateway(_config(fleet), clock=fake_clock, settings=settings) as client:
        await _serve(client, 1)
        assert services_of(client).fleet_stats is None
        summary = (await client.get("/statistics/summary")).json()
        assert "replicas" not in summary and "partial" not in summary
    assert (Path(log_dir) / "transactions.csv").exists() and (Path(log_dir) / "daily_stats.json").exists()
    assert not (Path(log_dir) / "slots").exists()
