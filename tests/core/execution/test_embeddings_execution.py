"""An embeddings request through the executor: no sockets, a fake clock. The same failover, records and cost as
chat; a reply with the wrong number of vectors is the upstream's fault and fails over."""

from __future__ import annotations

import json

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.pricing import cost_usd
from bkvy.core.execution.executor import ExecutionRequest, Executor, RequestOutcome
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.embeddings import EmbeddingInput
from bkvy.models.outcomes import AttemptOutcome
from bkvy.models.types import GenerationOptions, RoutingMethod, UpstreamReply, UpstreamRequest

PRICE_PER_1K = 0.5
TWO_TEXTS = EmbeddingInput(texts=("alpha", "beta"))


def _reply_body(vector_count: int, *, with_usage: bool = True) -> bytes:
    payload: dict[str, object] = {"data": [{"index": i, "embedding": [0.25, 0.75]} for i in range(vector_count)]}
    if with_usage:
        payload["usage"] = {"prompt_tokens": 12, "total_tokens": 12}
    return json.dumps(payload).encode()


class ScriptedTransport:
    def __init__(self, bodies: list[tuple[int, bytes]]) -> None:
        self._bodies = list(bodies)
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        self.requests.append(request)
        status, body = self._bodies.pop(0)
        return UpstreamReply(status, {}, body)


def _executor(transport: ScriptedTransport, clock: FakeClock) -> Executor:
    model = {"capabilities": ["embeddings"], "input_cost_per_1k": PRICE_PER_1K}
    providers = {
        "first": {"type": "openai_compatible", "base_url": "http://first.test", "models": {"e": model}},
        "second": {"type": "openai_compatible", "base_url": "http://second.test", "models": {"e": model}},
    }
    routing = {"scenarios": {"s": [{"provider": "first", "model": "e"}, {"provider": "second", "model": "e"}]}}
    return Executor(
        config=build_config(providers, routing, {}),
        clock=clock,
        transport=transport,  # type: ignore[arg-type]
        limiter=RateLimiter(clock),
        latency=LatencyTracker(),
    )


def _request(embedding: EmbeddingInput = TWO_TEXTS) -> ExecutionRequest:
    route = RouteRequest(RoutingMethod.SCENARIO, scenario="s", wants_embeddings=True)
    return ExecutionRequest("req1", "tester", route, (), GenerationOptions(), embedding=embedding)


async def test_fails_over_and_records_input_tokens_and_cost(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(503, b"{}"), (200, _reply_body(2))])
    executor = _executor(transport, fake_clock)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    reply, report = await executor.embed_then_report(_request())
    report()
    assert [r.url for r in transport.requests] == [
        "http://first.test/v1/embeddings",
        "http://second.test/v1/embeddings",
    ]
    assert transport.requests[1].json_body == {"model": "e", "input": ["alpha", "beta"], "encoding_format": "float"}
    assert reply.embeddings.vectors == ((0.25, 0.75), (0.25, 0.75))
    result = reply.result
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.SERVER, AttemptOutcome.SUCCESS]
    assert (result.completion.usage.input_tokens, result.completion.usage.output_tokens) == (12, 0)
    assert result.cost_usd == pytest.approx(cost_usd(12, 0, PRICE_PER_1K, 0.0))
    [outcome] = outcomes
    assert outcome.result is result and outcome.error is None


async def test_a_wrong_number_of_vectors_fails_over(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, _reply_body(1)), (200, _reply_body(2))])
    reply, _ = await _executor(transport, fake_clock).embed_then_report(_request())
    assert [a.outcome for a in reply.result.attempts] == [AttemptOutcome.SERVER, AttemptOutcome.SUCCESS]


async def test_without_usage_the_input_tokens_are_estimated(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, _reply_body(2, with_usage=False))])
    reply, _ = await _executor(transport, fake_clock).embed_then_report(_request())
    assert reply.result.completion.usage.input_tokens == TWO_TEXTS.estimated_tokens() == 4
