from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from bkvy.sim import WIRE_FORMATS, ModelKnobs, SimFleet, SimServer
from bkvy.sim.knobs import RpmWindow, roll_failure

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
OPENAI_BODY = {"model": "m1", "messages": [{"role": "user", "content": "hello there"}]}
AUTH = {"Authorization": f"Bearer {VALID_KEY}"}


async def _contents(server: SimServer, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
        replies = [await http.post("/v1/chat/completions", json=OPENAI_BODY) for _ in range(count)]
    return [reply.json()["choices"][0]["message"]["content"] for reply in replies]


@pytest.mark.asyncio
async def test_same_seed_gives_same_replies_other_seed_differs(start_sim):
    first = await _contents(await start_sim("openai", seed=7), 3)
    second = await _contents(await start_sim("openai", seed=7), 3)
    other = await _contents(await start_sim("openai", seed=8), 3)
    assert first == second
    assert first != other
    assert len(set(first)) == 3  # successive calls differ


@pytest.mark.asyncio
async def test_latency_knob_is_applied(start_sim):
    server = await start_sim("openai", latency_ms=30, latency_jitter_ms=10)
    await _contents(server, 1)
    assert 20 <= server.stats.last_latency_ms["m1"] <= 40


@pytest.mark.asyncio
async def test_control_route_sets_knobs_and_burst(start_sim):
    server = await start_sim("openai")
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
        set_reply = await http.post(
            "/_sim/knobs",
            json={"model": "m1", "tokens_per_reply": 3, "burst_429": {"count": 1, "retry_after_seconds": 4}},
        )
        bad = await http.post("/_sim/knobs", json={"model": "m1", "no_such_knob": 1})
        limited = await http.post("/v1/chat/completions", json=OPENAI_BODY)
        ok = await http.post("/v1/chat/completions", json=OPENAI_BODY)
        stats = (await http.get("/_sim/stats")).json()
    assert set_reply.status_code == 200 and bad.status_code == 400
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    assert ok.json()["usage"]["completion_tokens"] == 3
    assert stats["calls_by_model"] == {"m1": 2}


@pytest.mark.asyncio
async def test_stats_never_hold_key_values(start_sim):
    server = await start_sim("openai")
    await _contents(server, 2)
    assert server.stats.calls_for_key(VALID_KEY) == 2
    assert VALID_KEY not in str(server.stats.as_json())
    server.reset_stats()
    assert server.calls_for("m1") == 0


@pytest.mark.asyncio
async def test_bad_request_knob_and_invalid_json_are_400(start_sim):
    server = await start_sim("openai", error_rates={"bad_request": 1.0})
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
        knobbed = await http.post("/v1/chat/completions", json=OPENAI_BODY)
        not_json = await http.post("/v1/chat/completions", content=b"{nope")
    assert knobbed.status_code == 400 and knobbed.json()["error"]["type"] == "invalid_request_error"
    assert not_json.status_code == 400


@pytest.mark.asyncio
async def test_client_disconnect_mid_stream_is_counted(start_sim):
    server = await start_sim("ollama", chunk_delay_ms=20, tokens_per_reply=50)
    async with (
        httpx.AsyncClient(base_url=server.base_url) as http,
        http.stream("POST", "/api/chat", json={"model": "m1", "messages": []}) as stream,
    ):
        async for _ in stream.aiter_lines():
            break
    for _ in range(50):
        if server.stats.client_disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.stats.client_disconnects == 1


@pytest.mark.asyncio
async def test_fleet_serves_every_wire_format():
    fleet = SimFleet(seed=1, with_default_latency=False)
    await fleet.start()
    try:
        assert set(fleet.servers) == set(WIRE_FORMATS)
        async with httpx.AsyncClient() as http:
            tags = await http.get(fleet.base_url("ollama") + "/api/tags")
            models = await http.get(fleet.base_url("openai") + "/v1/models", headers=AUTH)
        assert tags.status_code == 200 and models.status_code == 200
        assert len({fleet.base_url(name) for name in WIRE_FORMATS}) == len(WIRE_FORMATS)
    finally:
        await fleet.stop()


def test_unknown_wire_format_is_rejected():
    with pytest.raises(ValueError):
        SimServer("carrier_pigeon")


def test_roll_failure_follows_rates():
    knobs = ModelKnobs(error_rates={"server": 0.5})
    rng = random.Random(3)
    outcomes = [roll_failure(knobs, rng) for _ in range(1000)]
    assert 400 < outcomes.count("server") < 600
    assert set(outcomes) == {"server", None}


def test_rpm_window_counts_down_and_slides():
    window = RpmWindow()
    views = [window.admit(2, now_seconds=t) for t in (0.0, 1.0, 2.0)]
    assert [v.remaining for v in views] == [1, 0, 0]
    assert views[2].is_exceeded and views[2].reset_seconds == pytest.approx(58.0)
    assert not window.admit(2, now_seconds=60.5).is_exceeded
