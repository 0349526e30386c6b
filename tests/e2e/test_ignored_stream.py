"""An upstream that ignores ``stream: true`` and answers with one whole JSON reply (LiteLLM's proxy with mock
models does, some self-hosted servers too): bkvy relays it as a well-formed stream, for every upstream format and
on each client-facing stream (OpenAI's, Anthropic's)."""

from __future__ import annotations

import json

import httpx
import pytest

from bkvy.core.execution.executor import RequestOutcome
from bkvy.sim import SimFleet
from tests.e2e.test_anthropic_sdk import _sdk

MESSAGES = [{"role": "user", "content": "hi"}]
UPSTREAMS = [
    ("openai", "openai/gpt-4o-mini"),
    ("anthropic", "anthropic/claude-3-5-haiku-latest"),
    ("gemini", "gemini/gemini-2.5-flash"),
    ("ollama", "ollama/llama3.2"),
]


def _observed(client: httpx.AsyncClient) -> list[RequestOutcome]:
    outcomes: list[RequestOutcome] = []
    client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
    return outcomes


def _sse_data(text: str) -> list[object]:
    events: list[object] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.mark.parametrize("wire_format,model", UPSTREAMS)
async def test_a_whole_reply_to_a_stream_request_is_relayed_as_a_stream(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet, wire_format: str, model: str
) -> None:
    server = fleet.servers[wire_format]
    server.knobs(model.split("/")[1]).ignores_stream = True
    outcomes = _observed(demo_gateway)
    body = {"model": model, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    async with demo_gateway.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join([part async for part in response.aiter_text()])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert server.stats.streams_started == 0  # the upstream really answered whole
    events = _sse_data(text)
    assert events[-1] == "[DONE]"
    chunks = [c for c in events[:-1] if isinstance(c, dict)]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content.endswith(".") and len(content.split()) == 16
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    [outcome] = outcomes
    assert outcome.error is None and [a.outcome for a in outcome.attempts] == ["success"]
    assert outcome.result is not None
    billed = outcome.result.completion.usage  # the whole reply's usage, thinking included (Gemini 2.5)
    assert chunks[-1]["usage"]["completion_tokens"] == billed.output_tokens >= 16
    assert chunks[-1]["usage"]["prompt_tokens"] == billed.input_tokens > 0


async def test_an_anthropic_upstream_that_ignores_stream_streams_to_the_anthropic_sdk(fleet: SimFleet) -> None:
    fleet.servers["anthropic"].knobs("claude-3-5-haiku-latest").ignores_stream = True
    async with (
        _sdk(fleet) as sdk,
        sdk.messages.stream(model="anthropic/claude-3-5-haiku-latest", max_tokens=64, messages=MESSAGES) as stream,
    ):
        deltas = [event.delta.text async for event in stream if event.type == "content_block_delta"]
        final = await stream.get_final_message()
    assert deltas and "".join(deltas) == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 16
    assert fleet.servers["anthropic"].stats.streams_started == 0
