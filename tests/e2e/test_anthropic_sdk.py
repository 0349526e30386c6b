"""The official anthropic SDK, unchanged, against bkvy's ``/v1/messages``.

A live ``python main.py --demo`` process serves sync, async, streamed and tool calls; the error classes are driven
in-process (httpx2's ASGI transport: the SDK's own HTTP client) so the simulated providers can be told to fail.
Every reply is checked through the SDK's own types.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from pydantic import TypeAdapter

from bkvy.api.app import create_app
from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.models.errors import CircuitsOpen
from bkvy.sim import SimFleet
from tests.e2e.live_demo import start_demo, stop_demo
from tests.e2e.test_openai_docs import _run_in_order, _snippets

PROVIDER_MODELS = [
    "anthropic/claude-3-5-haiku-latest",
    "openai/gpt-4o-mini",
    "gemini/gemini-2.5-flash",
    "ollama/llama3.2",
    "vllm/qwen2.5-7b-instruct",
]
TOOL_MODELS = ["anthropic/claude-3-5-haiku-latest", "openai/gpt-4o-mini", "gemini/gemini-2.5-flash"]
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
TOOLS: list[Any] = [
    {"name": "get_time", "description": "The current time.", "input_schema": {"type": "object", "properties": {}}},
    {"name": "get_date", "input_schema": {"type": "object", "properties": {}}},
]
EVENTS = TypeAdapter(RawMessageStreamEvent)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, port = start_demo({}, tmp_path_factory.mktemp("bkvy-anthropic-sdk"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_demo(process)


def _check_message(message: Message, raw: str, *, stop_reason: str = "end_turn") -> None:
    Message.model_validate(json.loads(raw))
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.stop_reason == stop_reason and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_sync_create(base_url: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    raw = client.messages.with_raw_response.create(model=model, max_tokens=50, system="Be brief.", messages=MESSAGES)
    message = raw.parse()
    _check_message(message, raw.http_response.text)
    assert message.content[0].type == "text" and message.content[0].text
    assert message.model == model.split("/")[1]
    assert raw.headers["x-bkvy-provider"] == model.split("/")[0] and raw.headers["x-bkvy-decision-reason"] == "direct"
    assert message._request_id == raw.headers["x-bkvy-request-id"]


@pytest.mark.parametrize("model", PROVIDER_MODELS)
async def test_async_create_and_stream_helper(base_url: str, model: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key="unused", max_retries=0) as client:
        message = await client.messages.create(
            model=model, max_tokens=50, messages=MESSAGES, extra_body={"bkvy": {"client_id": "sdk-test"}}
        )
        _check_message(message, message.model_dump_json())
        async with client.messages.stream(model=model, max_tokens=50, messages=MESSAGES) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    # Billed output: 16 tokens of text, plus the simulated Gemini's 32 thinking tokens (counted since defect 2).
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == message.usage.output_tokens >= 16


def test_sync_stream_true_sends_every_event_in_order(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    events = list(client.messages.create(model="auto", max_tokens=50, messages=MESSAGES, stream=True))
    for event in events:
        EVENTS.validate_python(event.model_dump(mode="json"))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = events[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 16


@pytest.mark.parametrize("level", ["auto", "low", "medium", "high", "scenario:customer_support"])
def test_virtual_models_route(base_url: str, level: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    raw = client.messages.with_raw_response.create(model=level, max_tokens=50, messages=MESSAGES)
    _check_message(raw.parse(), raw.http_response.text)


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_tool_round_trip(base_url: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    question = {"role": "user", "content": "What time is it?"}
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=50, tools=TOOLS, tool_choice={"type": "auto"}, messages=[question]
    )
    first = raw.parse()
    _check_message(first, raw.http_response.text, stop_reason="tool_use")
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_time" and call.input == {} and call.id
    answer = client.messages.create(
        model=model,
        max_tokens=50,
        tools=TOOLS,
        messages=[
            question,
            first.to_param(),
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12:00"}]},
        ],
    )
    assert answer.stop_reason == "end_turn" and [block.type for block in answer.content] == ["text"]


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_streamed_tool_use(base_url: str, model: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="unused", max_retries=0)
    async with client, client.messages.stream(model=model, max_tokens=50, tools=TOOLS, messages=MESSAGES) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use" and call.name == "get_time" and call.input == {}
    assert "content_block_start" in [event.type for event in events]


def test_count_tokens_is_bkvys_estimate(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    counted = client.messages.count_tokens(model="auto", system="Be brief.", messages=MESSAGES)
    assert isinstance(counted, MessageTokensCount) and counted.input_tokens == 5  # 19 characters / 4, rounded up


def test_langchain_chat_anthropic_invokes_streams_and_calls_tools(base_url: str) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.tools import tool

    @tool
    def get_time() -> str:
        """The current time."""
        return "12:00"

    chat = ChatAnthropic(model="auto", base_url=base_url, api_key="unused", max_tokens=50, max_retries=0)
    reply = chat.invoke("Say hello.")
    assert reply.content and reply.response_metadata["stop_reason"] == "end_turn"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 16
    assert "".join(str(chunk.content) for chunk in chat.stream("Say hello."))
    with_tools = ChatAnthropic(model="openai/gpt-4o-mini", base_url=base_url, api_key="unused", max_tokens=50)
    [call] = with_tools.bind_tools([get_time]).invoke("What time is it?").tool_calls
    assert call["name"] == "get_time" and call["args"] == {} and call["id"]


def test_every_python_snippet_in_the_api_docs_section_runs(base_url: str) -> None:
    snippets = _snippets("## Anthropic-compatible API")
    assert len(snippets) == 3
    outputs = _run_in_order(snippets, int(base_url.rsplit(":", 1)[1]))
    assert "tool_use get_time {}" in outputs[1] and "404 not_found_error unknown_model" in outputs[2]


# --- errors, in-process ------------------------------------------------------------------------------------


@pytest.fixture
async def sdk(fleet: SimFleet) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with _sdk(fleet) as client:
        yield client


class _sdk:  # an async context: the app (lifespan included) behind httpx2's ASGI transport
    def __init__(self, fleet: SimFleet, api_key: str = "unused", **settings: Any) -> None:
        settings = {"log_dir": tempfile.mkdtemp(prefix="bkvy-test-"), **settings}
        self._app = create_app(load_settings({}, **settings), demo_config(fleet), clock=FakeClock())
        self._api_key = api_key

    async def __aenter__(self) -> anthropic.AsyncAnthropic:
        self._lifespan = self._app.router.lifespan_context(self._app)
        await self._lifespan.__aenter__()
        transport = httpx2.ASGITransport(app=self._app)
        self._http = httpx2.AsyncClient(transport=transport, base_url="http://bkvy.test")
        return anthropic.AsyncAnthropic(
            base_url="http://bkvy.test", api_key=self._api_key, http_client=self._http, max_retries=0
        )

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()
        await self._lifespan.__aexit__(*exc_info)


def _envelope(error: anthropic.APIStatusError, error_type: str, code: str) -> None:
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.type == error_type and error.error_code == code and error.api_message
    assert error.request_id == error.response.headers["x-bkvy-request-id"]


async def test_unknown_model_raises_not_found(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        await sdk.messages.create(model="nope/nothing", max_tokens=5, messages=MESSAGES)
    _envelope(raised.value, "not_found_error", "unknown_model")


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 0},
        {"extra_body": {"top_k": 5}},
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}]},
    ],
)
async def test_what_bkvy_cannot_carry_raises_bad_request(sdk: anthropic.AsyncAnthropic, extra: dict) -> None:
    request: dict[str, Any] = {"model": "auto", "max_tokens": 5, "messages": MESSAGES, **extra}
    with pytest.raises(anthropic.BadRequestError) as raised:
        await sdk.messages.create(**request)
    assert raised.value.type == "invalid_request_error" and raised.value.status_code == 400


async def test_missing_max_tokens_raises_bad_request_naming_it(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await sdk.messages.create(model="auto", messages=MESSAGES, max_tokens=5, extra_body={"max_tokens": None})
    assert "max_tokens" in str(raised.value.api_message)


async def test_all_rate_limited_raises_rate_limit_with_retry_after(
    sdk: anthropic.AsyncAnthropic, fleet: SimFleet
) -> None:
    fleet.servers["anthropic"].knobs("claude-3-5-haiku-latest").burst_429(1, retry_after_seconds=30)
    with pytest.raises(anthropic.RateLimitError) as raised:
        await sdk.messages.create(model="anthropic/claude-3-5-haiku-latest", max_tokens=5, messages=MESSAGES)
    _envelope(raised.value, "rate_limit_error", "rate_limited")
    assert raised.value.response.headers["retry-after"] == "30"


async def test_all_failed_raises_internal_server_error(sdk: anthropic.AsyncAnthropic, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").error_rates = {"server": 1.0}
    with pytest.raises(anthropic.InternalServerError) as raised:
        await sdk.messages.create(model="openai/gpt-4o-mini", max_tokens=5, messages=MESSAGES, stream=True)
    assert raised.value.status_code == 502
    _envelope(raised.value, "api_error", "all_candidates_failed")


async def test_every_circuit_open_raises_overloaded(fleet: SimFleet) -> None:
    # Routing tries an open circuit rather than none (the panic row), so the executor is made to say it.
    async def circuits_open(request: object) -> None:
        raise CircuitsOpen("every candidate's circuit is open")

    async with _sdk(fleet) as client:
        client_app = client._client._transport.app  # type: ignore[attr-defined]
        client_app.state.services.executor.execute_then_report = circuits_open
        with pytest.raises(anthropic.OverloadedError) as raised:
            await client.messages.create(model="auto", max_tokens=5, messages=MESSAGES)
    assert raised.value.status_code == 529
    _envelope(raised.value, "overloaded_error", "circuits_open")


async def test_stream_cut_after_content_raises_never_ends_the_turn(
    sdk: anthropic.AsyncAnthropic, fleet: SimFleet
) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").stream_cut_after_chunks = 3
    stream = await sdk.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=MESSAGES, stream=True)
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        async for event in stream:
            kinds.append(event.type)
    assert "content_block_delta" in kinds and "message_delta" not in kinds and "message_stop" not in kinds
    assert raised.value.type == "api_error" and raised.value.error_code == "stream_interrupted"


async def test_client_keys_arrive_as_x_api_key_or_bearer(fleet: SimFleet) -> None:
    admin = {"admin_api_key": "admin-secret"}
    async with _sdk(fleet, **admin) as client:
        created = await client._client.post(
            "/admin/keys", json={"name": "team-a"}, headers={"X-Admin-API-Key": "admin-secret"}
        )
        key = created.json()["key"]
        with pytest.raises(anthropic.AuthenticationError) as raised:
            await client.messages.create(model="auto", max_tokens=5, messages=MESSAGES)
        _envelope(raised.value, "authentication_error", "unauthorized")
        assert "x-api-key" in str(raised.value.api_message)
        with_bearer = client.with_options(api_key=key)
        assert (await with_bearer.messages.create(model="auto", max_tokens=5, messages=MESSAGES)).content
        with_x_api_key = client.with_options(default_headers={"x-api-key": key})
        assert (await with_x_api_key.messages.count_tokens(model="auto", messages=MESSAGES)).input_tokens > 0
        with pytest.raises(anthropic.AuthenticationError):
            await client.with_options(default_headers={"x-api-key": "bkvy-sk-wrong"}).messages.count_tokens(
                model="auto", messages=MESSAGES
            )
