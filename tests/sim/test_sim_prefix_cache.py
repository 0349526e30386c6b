"""The sim's prefix cache (a warm prefix answers sooner) and its vLLM /metrics gauges."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.execution.replica_metrics import ReplicaGauges, parse_gauges
from bkvy.sim.prefix_cache import PrefixCache, SimGauges, prefix_chain, warm_delay_seconds

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 20}


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def test_the_cached_part_is_the_longest_remembered_leading_run() -> None:
    cache = PrefixCache(capacity=100)
    first = prefix_chain([("system", "s" * 60), ("user", "u" * 40)])
    assert cache.serve(first) == 0
    assert cache.serve(first) == 100
    later = prefix_chain([("system", "s" * 60), ("user", "u" * 40), ("assistant", "a" * 10), ("user", "v" * 90)])
    assert cache.serve(later) == 100
    other = prefix_chain([("system", "s" * 60), ("user", "x" * 40)])
    assert cache.serve(other) == 60  # the shared system prompt only


def test_the_cache_forgets_the_least_recently_used() -> None:
    cache = PrefixCache(capacity=2)
    a, b, c = (prefix_chain([("user", text)]) for text in "abc")
    cache.serve(a), cache.serve(b), cache.serve(a), cache.serve(c)
    assert cache.serve(a) == 1 and cache.serve(b) == 0
    assert cache.usage == 1.0


def test_a_warm_prompt_is_delayed_in_proportion_to_its_uncached_part() -> None:
    assert warm_delay_seconds(0.4, 40.0, 0.0) == 0.4
    assert warm_delay_seconds(0.4, 40.0, 1.0) == pytest.approx(0.04)
    assert warm_delay_seconds(0.4, 40.0, 0.5) == pytest.approx(0.22)
    assert warm_delay_seconds(0.4, None, 1.0) == 0.4  # no warm latency: no cache


def test_the_gauges_read_back_through_the_gateways_parser() -> None:
    gauges = SimGauges(running=70, max_running=64)
    assert parse_gauges(gauges.render()) == ReplicaGauges(6.0, 0.0)
    gauges.forced_waiting, gauges.forced_cache_usage = 0.0, 0.99
    assert parse_gauges(gauges.render()) == ReplicaGauges(0.0, 0.99)


def _body(*messages: dict) -> dict:
    return {"model": "m1", "messages": [SYSTEM, *messages]}


@pytest.mark.asyncio
async def test_a_warm_prefix_answers_its_first_token_sooner(start_sim) -> None:
    clock = FakeClock()
    server = await start_sim("openai_compatible", clock=clock, latency_ms=400, warm_latency_ms=40)
    headers = {"Authorization": f"Bearer {VALID_KEY}"}
    first_turn = _body({"role": "user", "content": "Plan a trip to Lisbon."})
    second_turn = _body(
        {"role": "user", "content": "Plan a trip to Lisbon."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "Three days."},
    )
    delays = []
    async with httpx.AsyncClient() as http:
        for body in (first_turn, second_turn):
            call = asyncio.create_task(http.post(server.base_url + "/v1/chat/completions", headers=headers, json=body))
            await _until(lambda: clock.sleeper_count == 1)
            delays.append(server.stats.last_latency_ms["m1"])
            clock.advance(1.0)
            assert (await asyncio.wait_for(call, 5)).status_code == 200
        prefix = (await http.get(server.base_url + "/_sim/prefix")).json()
    assert delays[0] == 400.0
    assert delays[1] < 200.0  # most of its prompt was cached by the first turn
    assert 0 < prefix["cached_chars"]["m1"] < prefix["prompt_chars"]["m1"]


@pytest.mark.asyncio
async def test_metrics_are_served_by_a_self_hosted_server_only(start_sim) -> None:
    compatible, hosted = await start_sim("openai_compatible"), await start_sim("openai")
    async with httpx.AsyncClient() as http:
        served = await http.get(compatible.base_url + "/metrics")
        assert served.status_code == 200
        assert parse_gauges(served.text) == ReplicaGauges(0.0, 0.0)
        forced = await http.post(compatible.base_url + "/_sim/gauges", json={"waiting": 12})
        assert forced.status_code == 200
        assert parse_gauges((await http.get(compatible.base_url + "/metrics")).text).waiting == 12.0
        assert (await http.get(hosted.base_url + "/metrics")).status_code == 404
