"""Deadlines that never kill a healthy answer, and hedged requests (SPEC §6), end to end.

The real app over httpx's ASGI transport, real HTTP to the simulated providers on loopback, and one FakeClock
that both the gateway and the simulated providers' latency follow: nothing here waits on the wall clock
(the only real waits are the driver's ≤ 2 ms yields while loopback I/O completes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.settings import Settings, load_settings
from bkvy.core.execution.records import ExecutionRequest
from bkvy.core.limits.rate_limits import LaneKey
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.errors import ClientDisconnected
from bkvy.models.types import ChatMessage, GenerationOptions, RoutingMethod
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.fault_driver import (
    FALLBACK,
    FALLBACK_KEY_ID,
    FALLBACK_MODEL,
    MESSAGES,
    PRIMARY,
    PRIMARY_KEY_ID,
    PRIMARY_MODEL,
    SCENARIO,
    FaultDriver,
    attempts_of,
    scenario_body,
    two_provider_config,
)
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

SOFT, HARD = 1.0, 2.0


@pytest.fixture
async def fleet(fake_clock: FakeClock) -> AsyncIterator[SimFleet]:
    """The simulated providers, their latency on the test's fake clock."""
    sim = SimFleet(seed=1, with_default_latency=False, clock=fake_clock)
    await sim.start("127.0.0.1")
    try:
        yield sim
    finally:
        await sim.stop()


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "request_soft_timeout_seconds": SOFT,
        "request_hard_timeout_seconds": HARD,
        "health_probe_enabled": False,
    }
    values.update(overrides)
    return load_settings({}, log_dir=tmp_path, **values)


def _single_model_config(fleet: SimFleet, **model: object) -> GatewayConfig:
    """Only the primary: the single candidate."""
    providers = {
        PRIMARY: {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {PRIMARY_KEY_ID: {"api_key": "sk-sim-primary"}},
            "models": {
                PRIMARY_MODEL: {
                    "intelligence_tier": "low",
                    "input_cost_per_1k": 0.001,
                    "output_cost_per_1k": 0.002,
                    **model,
                }
            },
        }
    }
    return build_config(providers, {"scenarios": {SCENARIO: [{"provider": PRIMARY, "model": PRIMARY_MODEL}]}}, {})


def _direct(**extra: object) -> dict[str, Any]:
    return {
        "client_id": "deadlines",
        "provider": PRIMARY,
        "model": PRIMARY_MODEL,
        "messages": MESSAGES,
        "debug": True,
        **extra,
    }


def _outcomes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["provider"], a["outcome"]) for a in attempts_of(body)]


async def _pending(drive: FaultDriver, path: str, body: dict[str, Any]) -> asyncio.Future[httpx.Response]:
    pending = asyncio.ensure_future(drive.client.post(path, json=body))
    await drive.settle()
    return pending


async def _until_done(drive: FaultDriver, pending: asyncio.Future[httpx.Response], *, step: float) -> float:
    """Advance fake time in steps until the reply is in; the fake seconds it took."""
    started = drive.clock.now()
    for _ in range(10_000):
        if pending.done():
            return drive.clock.now() - started
        await drive.advance(step)
    raise AssertionError("no reply")


# -- 1. the single candidate: the deadline, and a slow answer that is still an answer -----------------------------


async def test_single_slow_candidate_ends_in_504_at_the_hard_deadline(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    async with gateway(_single_model_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/direct", _direct())
        await drive.advance(SOFT)  # the soft timeout: no other candidate, so the attempt goes on
        await drive.advance(HARD - SOFT - 0.05)
        was_pending = not pending.done()
        fake_clock.advance(0.1)  # just past the deadline
        wall_started = time.perf_counter()
        reply = await asyncio.wait_for(pending, timeout=1.0)
        reply_ms = (time.perf_counter() - wall_started) * 1000.0
        circuit = await drive.primary_circuit()
    body = reply.json()
    assert was_pending, "the soft timeout must not end the only attempt"
    assert (reply.status_code, body["error"]["code"]) == (504, "hard_timeout")
    assert reply_ms < 100.0
    assert _outcomes(body) == [(PRIMARY, "cancelled_hard_timeout")]
    assert circuit["consecutive_failures"] == 1  # the gateway's own deadline is a timeout for the circuit


async def test_single_candidate_slower_than_the_soft_timeout_still_answers(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    async with gateway(_single_model_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/direct", _direct())
        took = await _until_done(drive, pending, step=0.25)
        reply = pending.result()
        circuit = await drive.primary_circuit()
    body = reply.json()
    assert reply.status_code == 200, body
    assert _outcomes(body) == [(PRIMARY, "success")]
    assert "x-bkvy-hedged" not in reply.headers
    assert 1.5 <= took <= 1.75
    assert (circuit["state"], circuit["consecutive_failures"]) == ("closed", 0)


async def test_an_attempt_in_flight_is_seen_by_routing_until_it_ends(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    async with gateway(_single_model_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        latency = drive.services.executor.latency
        started = fake_clock.now()
        pending = await _pending(drive, "/llm/direct", _direct())
        in_flight = latency.oldest_in_flight_started((PRIMARY, PRIMARY_MODEL))
        await _until_done(drive, pending, step=0.25)
        after = latency.oldest_in_flight_started((PRIMARY, PRIMARY_MODEL))
    assert in_flight == pytest.approx(started, abs=0.01)  # the in-flight signal of the hang detector
    assert after is None
    assert latency.observations((PRIMARY, PRIMARY_MODEL)) == 1


async def test_a_model_timeout_longer_than_the_hard_timeout_is_its_deadline(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    config = _single_model_config(fleet, timeout_seconds=5.0)  # a slow reasoning model
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/direct", _direct())
        await _until_done(drive, pending, step=0.25)
    assert pending.result().status_code == 200


async def test_a_client_timeout_above_the_hard_timeout_is_a_400_not_a_clamp(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    async with gateway(_single_model_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        llm = await client.post("/llm/direct", json=_direct(timeout_seconds=HARD + 1))
        v1 = await client.post(
            "/v1/chat/completions",
            json={"model": f"{PRIMARY}/{PRIMARY_MODEL}", "messages": MESSAGES, "bkvy": {"timeout_seconds": 99}},
        )
    assert (llm.status_code, llm.json()["error"]["code"]) == (400, "invalid_timeout")
    assert v1.status_code == 400 and v1.json()["error"]["code"] == "invalid_timeout"


async def test_the_clients_own_shorter_deadline_is_no_circuit_failure(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    async with gateway(_single_model_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/direct", _direct(timeout_seconds=0.5))
        took = await _until_done(drive, pending, step=0.1)
        circuit = await drive.primary_circuit()
    reply = pending.result()
    assert (reply.status_code, reply.json()["error"]["code"]) == (504, "hard_timeout")
    assert 0.5 <= took <= 0.6
    assert _outcomes(reply.json()) == [(PRIMARY, "cancelled_client_timeout")]
    assert circuit["consecutive_failures"] == 0


# -- 2. a slow primary, a healthy fallback: the hedge wins -------------------------------------------------------


async def test_soft_timeout_hedges_to_the_fallback_and_closes_the_slow_primary(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        took = await _until_done(drive, pending, step=0.05)
        circuit = await drive.primary_circuit()
        metrics = (await client.get("/metrics")).text
    reply = pending.result()
    body = reply.json()
    assert reply.status_code == 200, body
    assert body["provider_used"] == FALLBACK and reply.headers["x-bkvy-hedged"] == "true"
    assert sorted(_outcomes(body)) == [(FALLBACK, "success"), (PRIMARY, "hedge_lost")]
    assert [a["hedge"] for a in attempts_of(body) if a["provider"] == FALLBACK] == [True]
    assert SOFT + 0.1 <= took <= SOFT + 0.2  # the hedge started at the soft timeout
    assert fleet.servers["openai"].stats.disconnects_for(PRIMARY_MODEL) == 1  # its connection was closed
    assert (circuit["state"], circuit["consecutive_failures"]) == ("closed", 0)
    assert 'bkvy_hedges_total{outcome="won"} 1.0' in metrics


async def test_with_hedging_off_the_soft_timeout_switches_and_charges_no_failure(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    settings = _settings(tmp_path, hedging=False)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        took = await _until_done(drive, pending, step=0.05)
        circuit = await drive.primary_circuit()
    body = pending.result().json()
    assert _outcomes(body) == [(PRIMARY, "cancelled_soft_timeout"), (FALLBACK, "success")]
    assert SOFT + 0.1 <= took <= SOFT + 0.2  # the fallback got the rest of the deadline, not a sliver
    assert circuit["consecutive_failures"] == 0


async def test_a_request_may_refuse_hedging(fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/scenario", {**scenario_body(), "options": {"hedge": False}})
        await _until_done(drive, pending, step=0.05)
    body = pending.result().json()
    assert "x-bkvy-hedged" not in pending.result().headers
    assert _outcomes(body) == [(PRIMARY, "cancelled_soft_timeout"), (FALLBACK, "success")]


@pytest.mark.parametrize("where", ["model", "scenario entry"])
async def test_config_may_refuse_hedging_for_a_model_or_a_scenario_entry(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path, where: str
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    config = two_provider_config(fleet)
    if where == "model":
        primary = config.providers[PRIMARY]
        model = primary.models[PRIMARY_MODEL].model_copy(update={"hedge": False})
        providers = {**config.providers, PRIMARY: primary.model_copy(update={"models": {PRIMARY_MODEL: model}})}
        config = config.model_copy(update={"providers": providers})
    else:
        entries = [e.model_copy(update={"hedge": False}) for e in config.routing.scenarios[SCENARIO]]
        routing = config.routing.model_copy(update={"scenarios": {SCENARIO: entries}})
        config = config.model_copy(update={"routing": routing})
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        await _until_done(drive, pending, step=0.05)
    assert "x-bkvy-hedged" not in pending.result().headers
    assert _outcomes(pending.result().json()) == [(PRIMARY, "cancelled_soft_timeout"), (FALLBACK, "success")]


async def test_no_hedge_goes_to_an_open_circuit(fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        registry = drive.services.circuits
        from bkvy.core.circuits.types import CircuitKey
        from bkvy.models.types import ErrorClass

        for _ in range(3):
            registry.record_failure(CircuitKey(FALLBACK, FALLBACK_MODEL, FALLBACK_KEY_ID), ErrorClass.SERVER, None)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        await _until_done(drive, pending, step=0.25)
        metrics = (await client.get("/metrics")).text
    body = pending.result().json()
    assert _outcomes(body) == [(PRIMARY, "success")]  # the only closed candidate simply went on
    assert drive.fallback_calls() == 0
    assert 'bkvy_hedges_total{outcome="skipped_no_candidate"} 1.0' in metrics


async def test_the_next_candidate_gets_the_rest_of_the_deadline_not_a_sliver(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 500
    config = two_provider_config(fleet)
    primary = config.providers[PRIMARY]
    slow_primary = primary.models[PRIMARY_MODEL].model_copy(update={"timeout_seconds": 0.99})
    config = config.model_copy(
        update={
            "providers": {
                **config.providers,
                PRIMARY: primary.model_copy(update={"models": {PRIMARY_MODEL: slow_primary}}),
            }
        }
    )  # the primary times out (its own deadline) 10 ms before the soft timeout
    async with gateway(config, clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        took = await _until_done(drive, pending, step=0.01)
    body = pending.result().json()
    assert pending.result().status_code == 200, body
    assert _outcomes(body) == [(PRIMARY, "timeout"), (FALLBACK, "success")]
    assert 1.49 <= took <= 1.52


async def test_no_hedge_goes_past_a_full_rate_limit(fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        drive.services.limiter.block_until(LaneKey(FALLBACK, FALLBACK_KEY_ID, FALLBACK_MODEL), 60.0)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        await _until_done(drive, pending, step=0.25)
        metrics = (await client.get("/metrics")).text
    assert _outcomes(pending.result().json()) == [(PRIMARY, "success")]
    assert drive.fallback_calls() == 0
    assert 'bkvy_hedges_total{outcome="skipped_no_candidate"} 1.0' in metrics


# -- 3. the learned p95 starts the hedge, not the soft timeout ----------------------------------------------------


@pytest.mark.parametrize(("min_delay_ms", "expected_seconds"), [(0, 0.06), (250, 0.25)])
async def test_a_stalled_call_is_hedged_after_its_learned_p95(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path, min_delay_ms: int, expected_seconds: float
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 10_000  # the call that stalls
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 10
    settings = _settings(tmp_path, hedge_min_delay_ms=min_delay_ms)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        latency = drive.services.executor.latency
        for index in range(200):  # 200 answers of ~50 ms learned: p95 ~ 55-60 ms
            latency.observe(PRIMARY, PRIMARY_MODEL, 0.045 + (index % 20) * 0.0006)
        p95 = latency.quantile_seconds((PRIMARY, PRIMARY_MODEL), 0.95)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        hedged_at = None
        for step in range(1, 100):
            await drive.advance(0.01)
            if drive.fallback_calls():
                hedged_at = step * 0.01
                break
        await _until_done(drive, pending, step=0.01)
    assert p95 is not None and 0.05 <= p95 <= 0.06
    assert hedged_at is not None and hedged_at == pytest.approx(max(expected_seconds, p95), abs=0.011)
    assert pending.result().json()["provider_used"] == FALLBACK


# -- 4. the budget ---------------------------------------------------------------------------------------------


async def test_hedges_stay_within_the_budget_when_half_the_calls_stall(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    primary = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    primary.latency_ms, primary.slow_fraction, primary.slow_latency_ms = 50, 0.5, 1500
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 50
    settings = _settings(tmp_path, hedge_min_delay_ms=100, request_soft_timeout_seconds=HARD)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        latency = drive.services.executor.latency
        for _ in range(50):
            latency.observe(PRIMARY, PRIMARY_MODEL, 0.05)
        replies = await drive.run_autojump([scenario_body()] * 40, jump_seconds=0.05, batch=4, pace_seconds=0.2)
        metrics = (await client.get("/metrics")).text
    hedged = sum(1 for reply in replies if reply.headers.get("x-bkvy-hedged") == "true")
    stalled = sum(1 for reply in replies if reply.json()["metadata"]["total_completion_time_ms"] > 1000)
    assert all(reply.status_code == 200 for reply in replies)
    assert stalled >= 5  # the budget, not a lack of slow calls, kept the hedges down
    # 40 requests over ~2 s of fake time, one 10 s window: at most max(1, 5 % of 40) = 2 hedges.
    assert 1 <= hedged <= 2
    assert 'bkvy_hedges_total{outcome="skipped_budget"}' in metrics


# -- 5. streams ----------------------------------------------------------------------------------------------------


def _stream_body() -> dict[str, Any]:
    return {"model": f"scenario:{SCENARIO}", "messages": MESSAGES, "stream": True}


async def _read_stream(drive: FaultDriver, body: dict[str, Any], *, step: float) -> tuple[httpx.Response, str]:
    async def consume() -> tuple[httpx.Response, str]:
        async with drive.client.stream("POST", "/v1/chat/completions", json=body) as response:
            text = "".join([chunk async for chunk in response.aiter_text()])
        return response, text

    pending = asyncio.ensure_future(consume())
    await drive.settle()
    await _until_done(drive, pending, step=step)  # type: ignore[arg-type]
    return pending.result()


async def test_a_stream_is_hedged_before_its_first_byte(fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        response, text = await _read_stream(drive, _stream_body(), step=0.05)
    assert response.status_code == 200
    assert response.headers["x-bkvy-provider"] == FALLBACK and response.headers["x-bkvy-hedged"] == "true"
    assert text.rstrip().endswith("data: [DONE]")
    assert fleet.servers["openai"].stats.disconnects_for(PRIMARY_MODEL) == 1


async def test_a_stream_that_stalls_after_its_first_byte_ends_in_an_error_event(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    primary = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    primary.latency_ms, primary.stream_stall_after_chunks, primary.stream_stall_ms = 10, 1, 60_000  # then silence
    settings = _settings(tmp_path, stream_idle_timeout_seconds=5.0)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        response, text = await _read_stream(drive, _stream_body(), step=0.5)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert response.headers["x-bkvy-provider"] == PRIMARY
    assert events[-1].get("error", {}).get("code") == "stream_interrupted"
    assert all(choice.get("finish_reason") != "stop" for e in events for choice in e.get("choices", []))


# -- 6. the client leaves ----------------------------------------------------------------------------------------


async def test_a_client_that_leaves_cancels_both_attempts_and_charges_no_circuit(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 5000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 5000
    gone = asyncio.Event()
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        executor = drive.services.executor
        request = ExecutionRequest(
            "req-gone",
            "deadlines",
            RouteRequest(RoutingMethod.SCENARIO, scenario=SCENARIO),
            (ChatMessage("user", "hi"),),
            GenerationOptions(),
            client_gone=gone.wait,
        )
        pending = asyncio.ensure_future(executor.execute(request))
        await drive.settle()
        await drive.advance(SOFT + 0.1)  # the hedge is in flight beside the primary
        both_sent = (drive.primary_calls(), drive.fallback_calls()) == (1, 1)
        gone.set()
        await drive.settle()
        with pytest.raises(ClientDisconnected) as raised:
            await pending
        primary = await drive.primary_circuit()
        fallback = await drive.circuit(FALLBACK, FALLBACK_MODEL, FALLBACK_KEY_ID)
    outcomes = sorted((a["provider"], a["outcome"]) for a in raised.value.attempts or [])
    assert both_sent
    assert outcomes == [(FALLBACK, "client_disconnected"), (PRIMARY, "client_disconnected")]
    assert primary["consecutive_failures"] == fallback["consecutive_failures"] == 0
    assert fleet.servers["openai"].stats.disconnects_for(PRIMARY_MODEL) == 1
    assert fleet.servers["anthropic"].stats.disconnects_for(FALLBACK_MODEL) == 1


async def test_a_hedge_goes_to_a_lane_shared_through_redis(
    fleet: SimFleet,
    fake_clock: FakeClock,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """With REDIS_URL a limited lane's slot is taken only by asking Redis (no slot up front): the hedge attempt
    takes it itself. Before, no hedge ever started on a rate-limited lane while Redis was up."""
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    config = two_provider_config(fleet, rpm=1000)
    settings = _settings(tmp_path, redis_url=redis_server.url)
    async with gateway(config, clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        assert drive.services.executor.limiter.is_shared(LaneKey(FALLBACK, FALLBACK_KEY_ID, FALLBACK_MODEL))
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        await _until_done(drive, pending, step=0.05)
        metrics = (await client.get("/metrics")).text
    body = pending.result().json()
    assert body["provider_used"] == FALLBACK and pending.result().headers["x-bkvy-hedged"] == "true"
    assert sorted(_outcomes(body)) == [(FALLBACK, "success"), (PRIMARY, "hedge_lost")]
    assert 'bkvy_hedges_total{outcome="won"} 1.0' in metrics


async def test_a_hedge_to_a_full_shared_lane_ends_and_the_inline_attempt_answers(
    fleet: SimFleet,
    fake_clock: FakeClock,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The hedge finds the shared lane blocked (Redis says wait past the deadline): it ends as a rate-limit skip,
    and the slow inline attempt, the last that can answer, is never cut for it."""
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 1500
    settings = _settings(tmp_path, redis_url=redis_server.url)
    async with gateway(two_provider_config(fleet, rpm=1000), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        drive.services.limiter.block_until(LaneKey(FALLBACK, FALLBACK_KEY_ID, FALLBACK_MODEL), 60.0)
        await drive.settle()  # the block reaches Redis (sent in the background)
        pending = await _pending(drive, "/llm/scenario", scenario_body())
        await _until_done(drive, pending, step=0.05)
    body = pending.result().json()
    assert pending.result().status_code == 200 and body["provider_used"] == PRIMARY
    assert (PRIMARY, "success") in _outcomes(body)
    assert drive.fallback_calls() == 0
