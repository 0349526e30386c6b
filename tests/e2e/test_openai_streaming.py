"""Streaming through bkvy: invisible failover before the first byte, an error event (never ``stop``) after it,
and a client that hangs up cancels the upstream call."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile

import httpx
import openai
import pytest
import uvicorn

from bkvy.api.app import create_app
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_config
from bkvy.sim import SimFleet

MESSAGES = [{"role": "user", "content": "hi"}]


def _events(text: str) -> list[object]:
    events: list[object] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _observed(client: httpx.AsyncClient) -> list[RequestOutcome]:
    outcomes: list[RequestOutcome] = []
    client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
    return outcomes


async def _stream(client: httpx.AsyncClient, model: str) -> tuple[httpx.Response, list[object]]:
    body = {"model": model, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join([part async for part in response.aiter_text()])
    return response, _events(text)


async def test_failure_before_first_byte_fails_over_invisibly(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["anthropic"].knobs("claude-3-5-haiku-latest").stream_fail_before_first_byte = True
    outcomes = _observed(demo_gateway)
    response, events = await _stream(demo_gateway, "scenario:customer_support")
    assert response.status_code == 200
    assert response.headers["x-bkvy-provider"] == "openai"
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.endswith(".") and len(text.split()) == 16
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 16
    assert fleet.servers["anthropic"].stats.failures_by_kind["stream_failed"] == 1
    [outcome] = outcomes
    assert outcome.error is None and [a.outcome for a in outcome.attempts] == ["server", "success"]


@pytest.mark.parametrize(
    "wire_format,model",
    [
        ("openai", "openai/gpt-4o-mini"),
        ("anthropic", "anthropic/claude-3-5-haiku-latest"),
        ("gemini", "gemini/gemini-2.5-flash"),
        ("ollama", "ollama/llama3.2"),
    ],
)
async def test_cut_after_content_ends_with_an_error_event_not_stop(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet, wire_format: str, model: str
) -> None:
    knobs = fleet.servers[wire_format].knobs(model.split("/")[1])
    knobs.stream_cut_after_chunks = 2
    knobs.chunk_delay_ms = 5  # the first content arrives on its own, so it reaches the client before the cut
    outcomes = _observed(demo_gateway)
    response, events = await _stream(demo_gateway, model)
    assert response.status_code == 200
    assert "[DONE]" not in events
    assert events[-1] == {
        "error": {
            "message": events[-1]["error"]["message"],
            "type": "server_error",
            "code": "stream_interrupted",
            "param": None,
        }
    }
    chunks = events[:-1]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)  # content did arrive
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    [outcome] = outcomes
    assert outcome.result is None and outcome.error is not None
    assert outcome.error.code == "stream_interrupted" and outcome.error.status == 502
    assert outcome.attempts[-1].outcome in ("server", "connection")


async def test_sdk_raises_on_a_stream_cut_after_content(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").stream_cut_after_chunks = 3
    sdk = openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=demo_gateway, max_retries=0)
    stream = await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
            assert chunk.choices[0].finish_reason is None
    assert raised.value.body["code"] == "stream_interrupted"
    assert "".join(received)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_client_disconnect_closes_the_upstream_within_a_second(fleet: SimFleet) -> None:
    # Every chunk waits 1.5 s: the client hangs up after the first, long before the second is due.
    fleet.servers["openai"].knobs("gpt-4o-mini").chunk_delay_ms = 1500
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"))
    app = create_app(settings, demo_config(fleet))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        outcomes: list[RequestOutcome] = []
        app.state.services.executor.add_observer(outcomes.append)
        body = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "stream": True}
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            first = await anext(response.aiter_raw())
            assert first.startswith(b"data: ")
        stats = fleet.servers["openai"].stats
        for _ in range(100):
            if stats.client_disconnects:
                break
            await asyncio.sleep(0.01)
        assert stats.client_disconnects == 1
        assert [o.error.code for o in outcomes if o.error is not None] == ["client_disconnected"]
    finally:
        server.should_exit = True
        await serving
