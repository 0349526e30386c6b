"""``POST /admin/reload`` through the real app (lifespan included) over config files pointing at the simulated
fleet (issue 15): validated with start-up's validator, swapped between requests, long-lived state kept."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bkvy.api.app import create_app
from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitKey, CircuitState
from bkvy.core.config.gateway import ConfigError, load_config
from bkvy.core.config.settings import load_settings
from bkvy.core.upstream.transport import AiohttpTransport, StreamHead
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest
from bkvy.sim import SimFleet
from bkvy.utils.records import COLUMNS

ADMIN = {"X-Admin-API-Key": "admin-secret"}
MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_KEY = "sk-CANARY-reload-api-0001"


class GatedTransport:
    """The real transport, each call held at a gate: a test decides when the requests in flight may go on."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.gate = asyncio.Event()
        self.waiting = 0
        self._changed = asyncio.Event()

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        self.waiting += 1
        self._changed.set()
        await self.gate.wait()
        return await self.inner.send(request)

    def stream(self, request: UpstreamRequest) -> AbstractAsyncContextManager[StreamHead]:
        return self.inner.stream(request)

    async def until_waiting(self, count: int) -> None:
        while self.waiting < count:
            self._changed.clear()
            await self._changed.wait()


def _write_config(config_dir: Path, fleet: SimFleet, *, key: str = OPENAI_KEY, rpm: int = 50, extra: bool = False):
    models = {"llama3.2": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0}}
    if extra:
        models["qwen3"] = {"intelligence_tier": "medium", "cost_per_1k_tokens": 0.0}
    providers = {
        "openai": {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {"main": {"api_key": key, "rate_limits": {"*": {"rpm": rpm}}}},
            "models": {"gpt-4o-mini": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001}},
        },
        "ollama": {"type": "ollama", "base_url": fleet.base_url("ollama"), "models": models},
    }
    config_dir.mkdir(exist_ok=True)
    (config_dir / "providers.json").write_text(json.dumps(providers), encoding="utf-8")
    (config_dir / "routing.json").write_text("{}", encoding="utf-8")


@asynccontextmanager
async def _gateway(
    tmp_path: Path, *, transport: GatedTransport | None = None, admin: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        {},
        config_dir=tmp_path / "config",
        log_dir=tmp_path / "logs",
        transaction_logging=True,
        health_probe_enabled=False,
        admin_api_key="admin-secret" if admin else None,
    )
    app = create_app(settings, load_config(tmp_path / "config"), clock=FakeClock(), transport=transport)
    if transport is not None:
        await transport.inner.start()
    try:
        async with app.router.lifespan_context(app):
            asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=asgi, base_url="http://bkvy.test") as client:
                client.app = app  # type: ignore[attr-defined]
                yield client
    finally:
        if transport is not None:
            await transport.inner.close()


def _direct(provider: str, model: str) -> dict:
    return {"client_id": "c", "provider": provider, "model": model, "messages": MESSAGES}


def _logged_ids(log_dir: Path) -> list[str]:
    with open(log_dir / "transactions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert all(len(row) == len(COLUMNS) for row in rows[1:]), "a torn row"
    return [row[COLUMNS.index("request_id")] for row in rows[1:]]


async def test_reload_needs_the_admin_key(fleet: SimFleet, tmp_path: Path) -> None:
    _write_config(tmp_path / "config", fleet)
    async with _gateway(tmp_path) as client:
        assert (await client.post("/admin/reload")).status_code == 401
        assert (await client.post("/admin/reload", headers={"X-Admin-API-Key": "wrong"})).status_code == 401
    async with _gateway(tmp_path, admin=False) as client:
        response = await client.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    "broken",
    ["{", '{"openai": {"type": "openai", "keys": {}, "models": {}}}', '{"x": {"type": "nope", "models": {"m": {}}}}'],
    ids=["bad_json", "no_models", "bad_type"],
)
async def test_an_invalid_config_is_refused_with_the_start_up_message_and_the_running_one_stays(
    fleet: SimFleet, tmp_path: Path, broken: str
) -> None:
    _write_config(tmp_path / "config", fleet)
    async with _gateway(tmp_path) as client:
        before = (await client.get("/health")).json()
        (tmp_path / "config" / "providers.json").write_text(broken, encoding="utf-8")
        with pytest.raises(ConfigError) as at_start_up:  # what `main.py` and `--check-config` would print
            load_config(tmp_path / "config")
        response = await client.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 400
        assert response.json()["error"] == {"code": "invalid_config", "message": str(at_start_up.value)}
        assert (await client.get("/health")).json() == before
        assert (await client.post("/llm/direct", json=_direct("ollama", "llama3.2"))).status_code == 200


async def test_health_shows_the_configs_load_time_and_a_hash_that_follows_the_key_but_never_shows_it(
    fleet: SimFleet, tmp_path: Path
) -> None:
    _write_config(tmp_path / "config", fleet)
    async with _gateway(tmp_path) as client:
        health = (await client.get("/health")).json()
        assert health["config_hash"].startswith("sha256:") and health["config_loaded_at"].endswith("Z")
        same = await client.post("/admin/reload", headers=ADMIN)
        assert same.json()["config_hash"] == health["config_hash"] and same.json()["keys_changed"] == []
        _write_config(tmp_path / "config", fleet, key=OPENAI_KEY + "-new")
        changed = await client.post("/admin/reload", headers=ADMIN)
        assert changed.status_code == 200 and changed.json()["keys_changed"] == ["openai/main"]
        after = await client.get("/health")
        assert after.json()["config_hash"] == changed.json()["config_hash"] != health["config_hash"]
        assert OPENAI_KEY not in after.text + changed.text


async def test_200_requests_around_a_reload_all_finish_on_the_config_they_started_with_and_each_has_its_row(
    fleet: SimFleet, tmp_path: Path
) -> None:
    _write_config(tmp_path / "config", fleet, extra=True)
    transport = GatedTransport()
    async with _gateway(tmp_path, transport=transport) as client:
        bodies = [_direct("ollama", "qwen3" if i % 2 else "llama3.2") for i in range(200)]
        in_flight = asyncio.gather(*(client.post("/llm/direct", json=body) for body in bodies))
        await transport.until_waiting(200)
        _write_config(tmp_path / "config", fleet)  # qwen3 is gone from the new config
        reload = await client.post("/admin/reload", headers=ADMIN)
        assert reload.status_code == 200
        transport.gate.set()
        responses = await in_flight
        assert [r.status_code for r in responses] == [200] * 200  # qwen3's 100 too: they began before
        assert {r.json()["model_used"] for r in responses} == {"qwen3", "llama3.2"}
        gone = await client.post("/llm/direct", json=_direct("ollama", "qwen3"))
        assert gone.status_code == 404  # a request that starts after the swap sees the new config
        request_ids = [r.json()["request_id"] for r in [*responses, gone]]
    assert sorted(_logged_ids(tmp_path / "logs")) == sorted(request_ids)


async def test_lanes_circuits_and_latency_survive_a_reload_and_a_changed_key_gets_fresh_circuits(
    fleet: SimFleet, tmp_path: Path
) -> None:
    _write_config(tmp_path / "config", fleet)
    async with _gateway(tmp_path) as client:
        for _ in range(3):
            assert (await client.post("/llm/direct", json=_direct("openai", "gpt-4o-mini"))).status_code == 200
        services = client.app.state.services  # type: ignore[attr-defined]
        learned = services.latency.to_dict()
        circuit = CircuitKey("openai", "gpt-4o-mini", "main")
        for _ in range(5):
            services.circuits.record_failure(circuit, ErrorClass.SERVER)
        assert services.circuits.snapshot(circuit).state is CircuitState.OPEN

        assert (await client.post("/admin/reload", headers=ADMIN)).status_code == 200
        assert _used(await client.get("/rates/status")) == 3
        assert services.latency.to_dict() == learned
        assert services.circuits.snapshot(circuit).state is CircuitState.OPEN  # same key: same circuit

        _write_config(tmp_path / "config", fleet, key=OPENAI_KEY + "-new")
        assert (await client.post("/admin/reload", headers=ADMIN)).status_code == 200
        assert services.circuits.snapshot(circuit).state is CircuitState.CLOSED  # a new key: fresh circuits
        assert _used(await client.get("/rates/status")) == 3  # the lane's limits did not change

        _write_config(tmp_path / "config", fleet, key=OPENAI_KEY + "-new", rpm=60)
        assert (await client.post("/admin/reload", headers=ADMIN)).status_code == 200
        assert _used(await client.get("/rates/status")) == 0  # new limits: a fresh lane


def _used(response: httpx.Response) -> int:
    (lane,) = [lane for lane in response.json()["lanes"] if lane["provider"] == "openai"]
    return lane["used"]["rpm"]


async def test_a_reload_applies_the_new_cache_bounds(fleet: SimFleet, tmp_path: Path) -> None:
    """routing.json's "cache" changed by a reload takes effect: ttl for new entries, max_entries at once."""
    _write_config(tmp_path / "config", fleet)
    on = {"x-bkvy-cache": "on"}

    def ask(client: httpx.AsyncClient, text: str):
        body = {
            "client_id": "c",
            "provider": "ollama",
            "model": "llama3.2",
            "messages": [{"role": "user", "content": text}],
        }
        return client.post("/llm/direct", json=body, headers=on)

    async with _gateway(tmp_path) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        for text in ("one", "two"):
            assert (await ask(client, text)).headers["x-bkvy-cache"] == "miss"
        assert len(services.cache.store) == 2
        cache = {"ttl_seconds": 10, "max_entries": 1}
        (tmp_path / "config" / "routing.json").write_text(json.dumps({"cache": cache}), encoding="utf-8")
        assert (await client.post("/admin/reload", headers=ADMIN)).status_code == 200
        assert len(services.cache.store) == 1  # the least recently used went at once
        assert (await ask(client, "two")).headers["x-bkvy-cache"] == "hit"
        assert (await ask(client, "three")).headers["x-bkvy-cache"] == "miss"  # stored with the new 10 s ttl
        services.clock.advance(11.0)
        assert (await ask(client, "three")).headers["x-bkvy-cache"] == "miss"
