"""core.streaming against a scripted transport: no sockets, a fake clock, every outcome observed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.execution.executor import ExecutionRequest, Executor, RequestOutcome
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.upstream.adapters import ToolCallDelta
from bkvy.core.upstream.transport import StreamHead
from bkvy.models.errors import AllCandidatesFailed, StreamInterrupted, UpstreamBadRequest
from bkvy.models.types import (
    ChatMessage,
    FinishReason,
    GenerationOptions,
    RoutingMethod,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)

OK_CHUNKS = [
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]


class ScriptedTransport:
    """Answers each streamed request with the next (status, chunks) script; records what was closed."""

    def __init__(self, scripts: list[tuple[int, list[bytes]]], headers: dict[str, str] | None = None) -> None:
        self._scripts = list(scripts)
        self._headers = headers or {}
        self.urls: list[str] = []
        self.closed = 0

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        raise AssertionError("streaming must not use send()")

    @asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamHead]:
        assert request.json_body is not None and request.json_body["stream"] is True
        self.urls.append(request.url)
        status, chunks = self._scripts.pop(0)

        async def _chunks() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        try:
            yield StreamHead(status, self._headers, _chunks())
        finally:
            self.closed += 1


def _executor(transport: ScriptedTransport, clock: FakeClock) -> Executor:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 1.0}
    providers = {
        "first": {"type": "openai_compatible", "base_url": "http://first.test", "models": {"m": model}},
        "second": {"type": "openai_compatible", "base_url": "http://second.test", "models": {"m": model}},
    }
    routing = {
        "scenarios": {
            "s": [
                {"provider": "first", "model": "m", "priority": 1},
                {"provider": "second", "model": "m", "priority": 2},
            ]
        }
    }
    config = build_config(providers, routing, {})
    return Executor(
        config=config, clock=clock, transport=transport, limiter=RateLimiter(clock), latency=LatencyTracker()
    )


def _request() -> ExecutionRequest:
    return ExecutionRequest(
        "req1",
        "tester",
        RouteRequest(RoutingMethod.SCENARIO, scenario="s"),
        (ChatMessage("user", "hi"),),
        GenerationOptions(),
    )


async def _drain(executor: Executor) -> tuple[list[str], list[RequestOutcome]]:
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    stream = await executor.open_stream(_request())
    texts = [delta.content async for batch in stream.batches() for delta in batch]
    return texts, outcomes


async def test_complete_stream_is_relayed_and_recorded_with_usage_and_cost(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, OK_CHUNKS)])
    texts, [outcome] = await _drain(_executor(transport, fake_clock))
    assert "".join(texts) == "Hello"
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.completion.usage.output_tokens == 2
    assert outcome.result.cost_usd == pytest.approx(5 / 1000.0)
    assert transport.closed == 1


async def test_error_status_before_first_byte_fails_over(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(503, [b'{"error":{"type":"server_error"}}']), (200, OK_CHUNKS)])
    texts, [outcome] = await _drain(_executor(transport, fake_clock))
    assert "".join(texts) == "Hello"
    assert [a.outcome for a in outcome.attempts] == ["server", "success"]
    assert transport.urls == ["http://first.test/v1/chat/completions", "http://second.test/v1/chat/completions"]
    assert transport.closed == 2


async def test_stream_ending_before_any_content_fails_over(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport(
        [(200, [b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n']), (200, OK_CHUNKS)]
    )
    texts, [outcome] = await _drain(_executor(transport, fake_clock))
    assert "".join(texts) == "Hello" and outcome.error is None


async def test_upstream_bad_request_is_not_failed_over(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(400, [b'{"error":{"type":"invalid_request_error"}}']), (200, OK_CHUNKS)])
    with pytest.raises(UpstreamBadRequest):
        await _executor(transport, fake_clock).open_stream(_request())
    assert len(transport.urls) == 1


async def test_every_candidate_failing_before_content_is_all_candidates_failed(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(500, [b"{}"]), (200, [b"data: {not json}\n\n"])])
    outcomes: list[RequestOutcome] = []
    executor = _executor(transport, fake_clock)
    executor.add_observer(outcomes.append)
    with pytest.raises(AllCandidatesFailed):
        await executor.open_stream(_request())
    assert outcomes[0].error is not None and outcomes[0].error.code == "all_candidates_failed"


async def test_stream_ending_without_finish_reason_is_an_interruption(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, OK_CHUNKS[:2]), (200, OK_CHUNKS)])
    executor = _executor(transport, fake_clock)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    stream = await executor.open_stream(_request())
    texts: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for batch in stream.batches():
            texts.extend(delta.content for delta in batch)
    assert texts == ["Hel", "lo"]  # no failover once content was sent
    assert len(transport.urls) == 1 and transport.closed == 1
    [outcome] = outcomes
    assert outcome.result is None and outcome.error is not None and outcome.error.code == "stream_interrupted"
    assert outcome.attempts[-1].outcome == "server"


async def test_consumer_leaving_early_closes_upstream_and_records_a_disconnect(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, OK_CHUNKS)])
    executor = _executor(transport, fake_clock)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    stream = await executor.open_stream(_request())
    batches = stream.batches()
    assert [delta.content for delta in await anext(batches)] == ["Hel"]
    await batches.aclose()
    assert transport.closed == 1
    [outcome] = outcomes
    assert outcome.error is not None and outcome.error.code == "client_disconnected"
    assert outcome.attempts[-1].outcome == "client_disconnected"


JSON_HEADERS = {"content-type": "application/json; charset=utf-8"}
WHOLE_REPLY = json.dumps(
    {
        "choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
).encode()


async def test_a_whole_json_reply_to_a_stream_request_is_relayed_as_one_delta(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, [WHOLE_REPLY[:10], WHOLE_REPLY[10:]])], JSON_HEADERS)
    executor = _executor(transport, fake_clock)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    stream = await executor.open_stream(_request())
    deltas = [delta async for batch in stream.batches() for delta in batch]
    assert [(d.content, d.finish_reason) for d in deltas] == [("Hello", FinishReason.STOP)]
    [outcome] = outcomes
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.completion.usage == Usage(3, 2)
    assert len(transport.urls) == 1 and transport.closed == 1


async def test_a_whole_reply_with_tool_calls_becomes_tool_call_deltas(fake_clock: FakeClock) -> None:
    message = {
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    body = json.dumps({"choices": [{"message": message, "finish_reason": "tool_calls"}]}).encode()
    stream = await _executor(ScriptedTransport([(200, [body])], JSON_HEADERS), fake_clock).open_stream(_request())
    [delta] = [delta async for batch in stream.batches() for delta in batch]
    assert delta.tool_calls == (ToolCallDelta(0, "c1", "f", "{}"),)
    assert delta.finish_reason is FinishReason.TOOL_CALLS


async def test_an_error_in_a_whole_reply_fails_over_and_sse_labelled_json_stays_a_stream(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([(200, [b'{"error":{"type":"server_error"}}']), (200, OK_CHUNKS)], JSON_HEADERS)
    texts, [outcome] = await _drain(_executor(transport, fake_clock))
    assert texts == ["Hel", "lo", "", ""]  # the second's SSE, mislabelled as JSON, is still decoded as a stream
    assert [a.outcome for a in outcome.attempts] == ["server", "success"]
