"""Heavy-tailed latency, disconnect counting and the injected clock, for every wire format.

Latency follows a FakeClock here; the only real waits are ≤ 1 ms yields while loopback I/O completes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.sim import WIRE_FORMATS, ModelKnobs, SimServer
from bkvy.sim.knobs import latency_seconds

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
_YIELDS = 2000  # at most ~2 s of 1 ms yields for loopback I/O; far less in practice


def _chat(wire_format: str, *, stream: bool) -> tuple[str, dict[str, str], dict[str, object]]:
    """(path, headers, body) of a chat call to model m1 in this wire format."""
    messages = [{"role": "user", "content": "hi"}]
    if wire_format in ("openai", "openai_compatible"):
        return (
            "/v1/chat/completions",
            {"Authorization": f"Bearer {VALID_KEY}"},
            {"model": "m1", "messages": messages, "stream": stream},
        )
    if wire_format == "anthropic":
        return (
            "/v1/messages",
            {"x-api-key": VALID_KEY, "anthropic-version": "2023-06-01"},
            {"model": "m1", "max_tokens": 50, "messages": messages, "stream": stream},
        )
    if wire_format == "gemini":
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return (
            f"/v1beta/models/m1:{action}",
            {"x-goog-api-key": VALID_KEY},
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
    return "/api/chat", {}, {"model": "m1", "messages": messages, "stream": stream}


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(_YIELDS):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def _post(http: httpx.AsyncClient, server: SimServer, *, stream: bool = False) -> httpx.Response:
    path, headers, body = _chat(server.wire_format, stream=stream)
    return await http.post(server.base_url + path, headers=headers, json=body)


@pytest.mark.parametrize("wire_format", WIRE_FORMATS)
@pytest.mark.asyncio
async def test_latency_follows_the_injected_clock(start_sim, wire_format: str) -> None:
    clock = FakeClock()
    server = await start_sim(wire_format, clock=clock, latency_ms=3000)
    async with httpx.AsyncClient() as http:
        call = asyncio.create_task(_post(http, server))
        await _until(lambda: clock.sleeper_count == 1)
        clock.advance(2.9)
        await asyncio.sleep(0.01)
        assert not call.done()
        clock.advance(0.2)
        reply = await asyncio.wait_for(call, 5)
    assert reply.status_code == 200


@pytest.mark.parametrize("wire_format", WIRE_FORMATS)
@pytest.mark.asyncio
async def test_slow_fraction_set_at_runtime_gives_the_slow_latency(start_sim, wire_format: str) -> None:
    clock = FakeClock()
    server = await start_sim(wire_format, clock=clock, latency_ms=50)
    async with httpx.AsyncClient() as http:
        knobs = await http.post(
            server.base_url + "/_sim/knobs", json={"model": "m1", "slow_fraction": 1.0, "slow_latency_ms": 2000}
        )
        assert knobs.status_code == 200
        call = asyncio.create_task(_post(http, server))
        await _until(lambda: clock.sleeper_count == 1)
        clock.advance(0.1)
        await asyncio.sleep(0.01)
        assert not call.done()
        clock.advance(2.0)
        reply = await asyncio.wait_for(call, 5)
    assert reply.status_code == 200
    assert server.stats.last_latency_ms["m1"] == 2000


def test_slow_fraction_is_the_share_of_slow_calls() -> None:
    knobs = ModelKnobs(latency_ms=50, slow_fraction=0.02, slow_latency_ms=2000)
    rng = random.Random(9)
    delays = [latency_seconds(knobs, rng) for _ in range(20_000)]
    assert set(delays) == {0.05, 2.0}
    assert 0.015 < delays.count(2.0) / len(delays) < 0.025


def test_slow_fraction_off_draws_as_before_so_seeded_replies_do_not_change() -> None:
    knobs = ModelKnobs(latency_ms=30, latency_jitter_ms=10)
    first, second = random.Random(3), random.Random(3)
    assert latency_seconds(knobs, first) == max(0.0, 30 + second.uniform(-10, 10)) / 1000.0
    assert first.random() == second.random()


@pytest.mark.parametrize("wire_format", WIRE_FORMATS)
@pytest.mark.asyncio
async def test_disconnect_before_a_whole_reply_is_counted_per_model(start_sim, wire_format: str) -> None:
    clock = FakeClock()
    server = await start_sim(wire_format, clock=clock, latency_ms=10_000)
    async with httpx.AsyncClient() as http:
        call = asyncio.create_task(_post(http, server))
        await _until(lambda: clock.sleeper_count == 1)
        call.cancel()  # the client gives up: its connection is closed
        await _until(lambda: server.stats.disconnects_for("m1") == 1)
        stats = (await http.get(server.base_url + "/_sim/stats")).json()
    assert stats["disconnects"] == {"m1": 1}


@pytest.mark.parametrize("wire_format", WIRE_FORMATS)
@pytest.mark.asyncio
async def test_disconnect_mid_stream_is_counted_per_model(start_sim, wire_format: str) -> None:
    clock = FakeClock()
    server = await start_sim(wire_format, clock=clock, chunk_delay_ms=1000, tokens_per_reply=5)
    path, headers, body = _chat(wire_format, stream=True)
    async with httpx.AsyncClient() as http:
        async with http.stream("POST", server.base_url + path, headers=headers, json=body) as stream:
            assert stream.status_code == 200
            await _until(lambda: clock.sleeper_count == 1)
            clock.advance(1.0)  # the first content chunk goes out
            async for line in stream.aiter_lines():
                if line.strip():
                    break
        await _until(lambda: server.stats.disconnects_for("m1") == 1)
    assert server.stats.as_json()["disconnects"] == {"m1": 1}


@pytest.mark.parametrize("is_stream", [False, True])
@pytest.mark.asyncio
async def test_a_completed_reply_is_not_a_disconnect(start_sim, is_stream: bool) -> None:
    server = await start_sim("openai")
    async with httpx.AsyncClient() as http:
        reply = await _post(http, server, stream=is_stream)
        assert reply.status_code == 200
        await asyncio.sleep(0.01)
    assert server.stats.disconnects_for("m1") == 0
    assert server.stats.as_json()["disconnects"] == {}
