"""The fitted fleet's transport: each wire format's reply with the recorded tokens, after the fitted latency on
the injected clock; an episode's failures as the real adapters classify them."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.upstream.adapters import adapter_for
from bkvy.demo import demo_providers_offline, demo_routing
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, ProviderType, UpstreamReply, UpstreamRequest
from bkvy.replay.fitting import Episode, FleetFit, LatencyFit
from bkvy.replay.transport import CURRENT_DEMAND, Demand, FittedFleetTransport

_WALL = 1_700_000_000.0


def _config() -> GatewayConfig:
    return build_config(demo_providers_offline(), demo_routing(), {})


def _fleet(*episodes: Episode) -> FleetFit:
    grouped: dict[str, tuple[Episode, ...]] = {}
    for episode in episodes:
        grouped[episode.model] = (*grouped.get(episode.model, ()), episode)
    return FleetFit({"openai/gpt-4o": LatencyFit((250.0,))}, LatencyFit((40.0,)), grouped)


async def _send(transport: FittedFleetTransport, clock: FakeClock, request: UpstreamRequest) -> UpstreamReply:
    task = asyncio.create_task(transport.send(request))
    for _ in range(10):
        await asyncio.sleep(0)
        clock.advance(0.05)
    return await asyncio.wait_for(task, timeout=5)


async def test_a_reply_carries_the_recorded_tokens_after_the_fitted_latency() -> None:
    clock = FakeClock(wall_start=_WALL)
    transport = FittedFleetTransport(_config(), _fleet(), clock)
    CURRENT_DEMAND.set(Demand(1234, 56))
    request = UpstreamRequest("POST", "http://127.0.0.1:9/openai/v1/chat/completions", {}, {"model": "gpt-4o"})
    started = clock.now()
    reply = await _send(transport, clock, request)
    assert clock.now() - started >= 0.25
    usage = adapter_for(ProviderType.OPENAI).parse_reply(reply).usage
    assert (usage.input_tokens, usage.output_tokens) == (1234, 56)


async def test_gemini_is_found_by_its_path_and_answers_in_its_format() -> None:
    clock = FakeClock(wall_start=_WALL)
    transport = FittedFleetTransport(_config(), _fleet(), clock)
    CURRENT_DEMAND.set(Demand(10, 20))
    url = "http://127.0.0.1:9/gemini/v1beta/models/gemini-2.5-pro:generateContent"
    reply = await _send(transport, clock, UpstreamRequest("POST", url, {}, {"contents": []}))
    assert adapter_for(ProviderType.GEMINI).parse_reply(reply).usage.output_tokens == 20


@pytest.mark.parametrize(
    ("error_class", "expected"),
    [("rate_limited", ErrorClass.RATE_LIMITED), ("server", ErrorClass.SERVER), ("auth", ErrorClass.AUTH)],
)
async def test_a_call_inside_an_episode_fails_as_the_adapter_classifies_it(
    error_class: str, expected: ErrorClass
) -> None:
    clock = FakeClock(wall_start=_WALL)
    episode = Episode("anthropic/claude-3-5-haiku-latest", error_class, _WALL - 5, _WALL + 5, 3, 1.0)
    transport = FittedFleetTransport(_config(), _fleet(episode), clock)
    body = {"model": "claude-3-5-haiku-latest"}
    reply = await _send(transport, clock, UpstreamRequest("POST", "http://127.0.0.1:9/anthropic/v1/messages", {}, body))
    with pytest.raises(UpstreamError) as failure:
        adapter_for(ProviderType.ANTHROPIC).parse_reply(reply)
    assert failure.value.error_class is expected
    clock.advance(10)  # past the episode: it answers again
    assert (
        await _send(transport, clock, UpstreamRequest("POST", "http://127.0.0.1:9/anthropic/v1/messages", {}, body))
    ).status == 200


async def test_a_connection_episode_raises_and_an_unknown_url_is_a_connection_error() -> None:
    clock = FakeClock(wall_start=_WALL)
    episode = Episode("openai/gpt-4o", "connection", _WALL - 5, _WALL + 5, 1, 1.0)
    transport = FittedFleetTransport(_config(), _fleet(episode), clock)
    with pytest.raises(UpstreamError) as failure:
        await transport.send(
            UpstreamRequest("POST", "http://127.0.0.1:9/openai/v1/chat/completions", {}, {"model": "gpt-4o"})
        )
    assert failure.value.error_class is ErrorClass.CONNECTION
    with pytest.raises(UpstreamError):
        await transport.send(UpstreamRequest("POST", "http://elsewhere/v1/chat/completions", {}, {"model": "gpt-4o"}))
