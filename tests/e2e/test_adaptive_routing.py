"""Adaptive routing end to end on the simulated fleet: the real app, real HTTP to the sim servers on loopback, a
FakeClock, a seeded RNG injected into the services. No test waits on the wall clock beyond loopback I/O."""

from __future__ import annotations

import json
import random
import stat
from pathlib import Path

import httpx

from bkvy.api.adaptive_state import BANDIT_STATE_FILE
from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.adaptive_fleet import FALLBACK_ARM, PRIMARY_ARM, ROUTE, adaptive_config, first_choices
from tests.e2e.fault_driver import FALLBACK, PRIMARY, PRIMARY_MODEL, attempts_of, scenario_body
from tests.e2e.replicas import services_of


def _settings(log_dir: Path):  # type: ignore[no-untyped-def]
    # No circuit breaker: the bandit alone must move the traffic (an open circuit would do it for it).
    return load_settings({}, log_dir=log_dir, circuit_breaker_enabled=False)


async def test_adaptive_routing_moves_traffic_off_a_failing_candidate(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    config = adaptive_config(fleet, discount=0.9)
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path), rng=random.Random(11)) as client:
        healthy = await first_choices(client, 20)
        fleet.servers["openai"].knobs(PRIMARY_MODEL).error_rates = {"server": 1.0}
        failing = await first_choices(client, 40)
        response = await client.post("/llm/scenario", json=scenario_body())
        services = services_of(client)
    print(f"\nprimary first: healthy {healthy.count(PRIMARY)}/20, failing (last 20) {failing[20:].count(PRIMARY)}/20")
    assert healthy.count(PRIMARY) >= 5  # both are tried while both answer
    assert failing[20:].count(PRIMARY) <= 3  # scenario priority would send every one to the primary first
    assert response.json()["decision_reason"] == "adaptive"
    assert services.adaptive is not None
    primary, fallback = services.adaptive.arm_view(ROUTE, PRIMARY_ARM), services.adaptive.arm_view(ROUTE, FALLBACK_ARM)
    assert primary is not None and fallback is not None
    assert primary.mean < 0.5 < 0.9 < fallback.mean  # the primary's failures fade (discount): it is tried again


async def test_the_bandit_survives_a_restart(fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path) -> None:
    config = adaptive_config(fleet)
    fleet.servers["openai"].knobs(PRIMARY_MODEL).error_rates = {"server": 1.0}
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path), rng=random.Random(3)) as client:
        await first_choices(client, 10)
        adaptive = services_of(client).adaptive
        assert adaptive is not None
        learned = dict(adaptive.book.routes[ROUTE])
    path = tmp_path / BANDIT_STATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["routes"][ROUTE]  # flushed at shutdown, like the circuit states
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path), rng=random.Random(3)) as client:
        restored = services_of(client).adaptive
        assert restored is not None and dict(restored.book.routes[ROUTE]) == learned
        response = await client.post("/llm/scenario", json=scenario_body())
    assert attempts_of(response.json())[0]["provider"] == FALLBACK  # it remembers the primary failing


async def test_a_reload_forgets_arms_dropped_from_config(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    config = adaptive_config(fleet)
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path), rng=random.Random(3)) as client:
        await first_choices(client, 4)
        services = services_of(client)
        services.config_source = lambda: config.model_copy(
            update={"routing": config.routing.model_copy(update={"strategies": {}})}
        )
        await services.reload()
        assert services.adaptive is not None and services.adaptive.book.routes == {}
        response = await client.post("/llm/scenario", json=scenario_body())
    assert response.json()["decision_reason"] == "scenario_priority"


async def test_the_demo_adaptive_scenario_answers_as_docs_routing_says(demo_gateway: httpx.AsyncClient) -> None:
    body = {"client_id": "docs", "scenario": "adaptive_support", "messages": [{"role": "user", "content": "Hi"}]}
    response = await demo_gateway.post("/llm/scenario", json={**body, "debug": True})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["decision_reason"] == "adaptive"
    considered = reply["metadata"]["alternatives_considered"]
    assert {c["reason"] for c in considered if "reason" in c} == {"adaptive"}
    assert {c["model"] for c in considered} == {"claude-3-5-haiku-latest", "gpt-4o-mini", "qwen2.5-7b-instruct"}
