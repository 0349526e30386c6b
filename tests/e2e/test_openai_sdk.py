"""The official openai SDK, unchanged, against a live ``python main.py --demo`` process.

Every reply is parsed by the SDK's own models and re-validated from the raw JSON with ``model_validate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.e2e.live_demo import start_demo, stop_demo

PROVIDER_MODELS = [
    "openai/gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "gemini/gemini-2.5-flash",
    "ollama/llama3.2",
    "vllm/qwen2.5-7b-instruct",
]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, port = start_demo({}, tmp_path_factory.mktemp("bkvy-openai-sdk"))
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_demo(process)


def _check_completion(completion: ChatCompletion, raw: dict) -> None:
    ChatCompletion.model_validate(raw)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def _check_chunks(chunks: list[ChatCompletionChunk]) -> None:
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump(mode="json"))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finishes == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_sync_client_non_streaming(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=50, temperature=0.2
    )
    assert raw.headers["x-bkvy-provider"] == model.split("/")[0]
    assert raw.headers["x-bkvy-model"] == model.split("/")[1]
    assert raw.headers["x-bkvy-decision-reason"] == "direct" and raw.headers["x-bkvy-request-id"]
    _check_completion(raw.parse(), json.loads(raw.text))


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_sync_client_streaming(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    _check_chunks(list(stream))


@pytest.mark.parametrize("model", PROVIDER_MODELS)
async def test_async_client_non_streaming(base_url: str, model: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, extra_body={"bkvy": {"client_id": "sdk-test", "max_wait_seconds": 5}}
        )
        _check_completion(raw.parse(), json.loads(raw.text))


@pytest.mark.parametrize("model", PROVIDER_MODELS)
async def test_async_client_streaming(base_url: str, model: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        _check_chunks([chunk async for chunk in stream])


def test_streaming_without_include_usage_has_no_usage_chunk(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(model="auto", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_virtual_models_route_and_say_why(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    for model, reason in [
        ("auto", "cheapest_within_estimate"),
        ("low", "cheapest_within_estimate"),
        ("scenario:customer_support", "scenario_priority"),
    ]:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        assert raw.headers["x-bkvy-decision-reason"] == reason
        ChatCompletion.model_validate(json.loads(raw.text))


def test_models_list_has_concrete_and_virtual_names(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert set(PROVIDER_MODELS) <= set(ids)
    assert {"auto", "low", "medium", "high", "scenario:research"} <= set(ids)


def test_every_listed_model_is_retrievable(base_url: str) -> None:
    # Over a real server: uvicorn decodes the SDK's %2F before routing, and ``{model_id:path}`` takes the slash.
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    for listed in client.models.list():
        model = client.models.retrieve(listed.id)
        assert model == listed and model._request_id
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("openai/no-such-model")
    assert raised.value.param == "model" and raised.value.request_id


def test_bad_parameter_raises_bad_request_naming_it(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    for fields, param in [({"temperature": 3}, "temperature"), ({"n": 2}, "n")]:
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="auto", messages=MESSAGES, **fields)
        assert raised.value.param == param and raised.value.type == "invalid_request_error"
        assert raised.value.request_id


def test_replies_carry_the_request_id(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    assert raw.parse()._request_id == raw.headers["x-request-id"] == raw.headers["x-bkvy-request-id"]
    stream = client.chat.completions.create(model="auto", messages=MESSAGES, stream=True)
    assert stream.response.headers["x-request-id"] == stream.response.headers["x-bkvy-request-id"]
    chunks = list(stream)
    assert chunks[0].id == f"chatcmpl-{stream.response.headers['x-request-id']}"


def test_unknown_model_raises_not_found(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope/nothing", messages=MESSAGES)
    assert raised.value.code == "unknown_model"


TOOL_MODELS = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.5-flash"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {"type": "function", "function": {"name": "get_date", "parameters": {"type": "object", "properties": {}}}},
]


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_tool_call_round_trip(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    question = {"role": "user", "content": "What time is it?"}
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[question], tools=TOOLS, tool_choice="auto"
    )
    first = raw.parse()
    ChatCompletion.model_validate(json.loads(raw.text))
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_time" and call.id
    assert json.loads(call.function.arguments) == {}
    answer = client.chat.completions.create(
        model=model,
        tools=TOOLS,
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
        ],
    )
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content
    assert not answer.choices[0].message.tool_calls


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_streamed_tool_call(base_url: str, model: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=model, stream=True, tools=TOOLS, messages=[{"role": "user", "content": "Time?"}]
        )
        chunks = [chunk async for chunk in stream]
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump(mode="json"))
        for piece in chunk.choices[0].delta.tool_calls or []:
            if piece.function and piece.function.name:
                names[piece.index] = piece.function.name
            arguments[piece.index] = arguments.get(piece.index, "") + (
                (piece.function and piece.function.arguments) or ""
            )
    assert names == {0: "get_time"} and json.loads(arguments[0]) == {}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
