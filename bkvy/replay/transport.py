"""The transport seam answered by a fitted fleet: each provider's wire format (``bkvy.sim``'s reply builders),
the recorded token counts, the fitted latency and the fitted error episodes, on the injected clock.

No socket is opened. Which provider a request is for comes from its URL (the config's base URLs and replica
endpoints) and its model from the body (Gemini: the path). The tokens of the request being replayed travel in a
context variable, set by the runner in the request's task and inherited by its hedges' tasks.

The dice (a latency draw, whether an episode fails the call) are seeded by the seed, the request and the model:
the same request on the same model meets the same dice whatever else a config changes, so two configs replayed
with one seed differ by what the configs do, not by luck.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import NamedTuple

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.upstream.transport import StreamHead
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest
from bkvy.replay.fitting import FleetFit
from bkvy.sim.replies import ChatCall, SimReply
from bkvy.sim.wire import NOT_FOUND, Failure, WireFormat
from bkvy.sim.wire_anthropic import AnthropicWire
from bkvy.sim.wire_gemini import GeminiWire
from bkvy.sim.wire_ollama import OllamaWire
from bkvy.sim.wire_openai import OpenAIWire

_TIMEOUT_SLEEP_SECONDS = 24 * 3600.0  # a timeout episode: the call never answers; the executor's deadline cuts it
_RETRY_AFTER_SECONDS = 1
# AttemptOutcome value of an episode -> the sim's failure kind, as the wire formats answer it.
_FAILURE_KINDS = {"rate_limited": "rate_limited", "server": "server", "auth": "auth", "not_found": NOT_FOUND}


class Demand(NamedTuple):
    """What the replayed request used, as recorded: its tokens and how it finished, and its id (its dice)."""

    input_tokens: int
    output_tokens: int
    is_truncated: bool = False
    request_id: str = ""


CURRENT_DEMAND: ContextVar[Demand | None] = ContextVar("replay_demand", default=None)
_NO_DEMAND = Demand(100, 100)  # a call outside a replayed request's task (none is made)


class _Target(NamedTuple):
    provider: str
    model: str
    wire: WireFormat


class FittedFleetTransport:
    """``Transport`` for replay: answers from the fit, never from the network."""

    def __init__(self, config: GatewayConfig, fit: FleetFit, clock: FakeClock, *, seed: int = 0) -> None:
        self._fit = fit
        self._clock = clock
        self._seed = seed
        self._bases = sorted(_provider_bases(config), key=lambda pair: -len(pair[0]))
        self._models = {name: set(provider.models) for name, provider in config.providers.items()}
        self._wires = {name: _wire_for(provider.type.value) for name, provider in config.providers.items()}
        self.calls = 0

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        target = self._target(request)
        self.calls += 1
        name, demand, dice = self._dice(target)
        episode = self._fit.episode_at(name, self._clock.wall())
        if episode is not None and dice.random() < episode.failure_rate:
            return await self._fail(target, episode.error_class)
        await self._clock.sleep(self._fit.latency_for(name).sample_seconds(dice))
        body = json.dumps(target.wire.reply_body(_sim_reply(target.model, demand)))
        return UpstreamReply(200, {"content-type": "application/json"}, body.encode())

    @asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamHead]:
        """A whole reply's frames in one piece (replay issues whole requests; this keeps the seam complete)."""
        target = self._target(request)
        name, demand, dice = self._dice(target)
        reply = _sim_reply(target.model, demand)
        await self._clock.sleep(self._fit.latency_for(name).sample_seconds(dice))
        call = ChatCall(target.model, None, True, None, 0, False, include_usage=True)
        frames = [*target.wire.stream_head(reply, call), target.wire.stream_chunk(reply, call, reply.text)]
        frames += target.wire.stream_tail(reply, call)

        async def chunks() -> AsyncIterator[bytes]:
            yield b"".join(frames)

        yield StreamHead(200, {"content-type": target.wire.stream_content_type}, chunks())

    def _dice(self, target: _Target) -> tuple[str, Demand, random.Random]:
        """The model's name, the request's demand, and the dice of this request on this model."""
        name = f"{target.provider}/{target.model}"
        demand = CURRENT_DEMAND.get() or _NO_DEMAND
        return name, demand, random.Random(f"{self._seed}/{demand.request_id}/{name}")

    async def _fail(self, target: _Target, error_class: str) -> UpstreamReply:
        if error_class == "timeout":
            await self._clock.sleep(_TIMEOUT_SLEEP_SECONDS)
            raise UpstreamError(ErrorClass.TIMEOUT, "upstream timed out")
        if error_class == "connection":
            raise UpstreamError(ErrorClass.CONNECTION, "connection failed: replayed episode")
        kind = _FAILURE_KINDS.get(error_class, "server")
        retry_after = _RETRY_AFTER_SECONDS if kind == "rate_limited" else None
        status, body = target.wire.error_reply(Failure(kind, f"replayed {error_class} episode", retry_after))
        headers = {"content-type": "application/json"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return UpstreamReply(status, headers, json.dumps(body).encode())

    def _target(self, request: UpstreamRequest) -> _Target:
        model = _model_of(request)
        for base, provider in self._bases:
            if request.url.startswith(base) and model in self._models[provider]:
                return _Target(provider, model, self._wires[provider])
        raise UpstreamError(ErrorClass.CONNECTION, "connection failed: no configured provider at this URL")


def _wire_for(provider_type: str) -> WireFormat:
    if provider_type == "anthropic":
        return AnthropicWire()
    if provider_type == "gemini":
        return GeminiWire()
    if provider_type == "ollama":
        return OllamaWire()
    return OpenAIWire(provider_type)  # openai and openai_compatible


def _provider_bases(config: GatewayConfig) -> list[tuple[str, str]]:
    bases = []
    for name, provider in config.providers.items():
        bases.append((provider.base_url.rstrip("/"), name))
        for model in provider.models.values():
            bases.extend((url.rstrip("/"), name) for url in model.endpoints or ())
    return bases


def _model_of(request: UpstreamRequest) -> str:
    body = request.json_body or {}
    if isinstance(body.get("model"), str):
        return str(body["model"])
    _, _, tail = request.url.partition("/models/")  # Gemini: /v1beta/models/NAME:generateContent
    return tail.partition(":")[0].partition("?")[0]


def _sim_reply(model: str, demand: Demand) -> SimReply:
    return SimReply(
        response_id="replay",
        model=model,
        chunks=("Replayed.",),  # no content was recorded; the tokens below are what is billed
        prompt_tokens=demand.input_tokens,
        completion_tokens=demand.output_tokens,
        thought_tokens=0,
        is_truncated=demand.is_truncated,
        created_seconds=0,
    )
