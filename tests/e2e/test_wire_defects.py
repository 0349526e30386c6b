"""Issue 14, defects 1-3, through the official openai SDK against the app and the simulated providers:
tool-call ids unique across rounds and failover, reasoning tokens billed and shown, json_schema carried through.

The simulators check what the real services check: Gemini rejects ``id`` on a request's function parts and a
results turn that does not answer the calls before it; Anthropic rejects repeated ``tool_use`` ids.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.pricing import cost_usd
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_providers, demo_routing
from bkvy.sim import SimFleet
from tests.conftest import gateway

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("get_time", "get_weather")
]


class Meeting(BaseModel):
    title: str
    attendees: list[str]
    minutes: int
    is_online: bool


@pytest.fixture
async def sdk(demo_gateway: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    yield openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=demo_gateway, max_retries=0)


def _observed(client: httpx.AsyncClient) -> list[RequestOutcome]:
    outcomes: list[RequestOutcome] = []
    client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
    return outcomes


# -- 1. tool-call ids ---------------------------------------------------------------------------------------


async def _tool_round(sdk: openai.AsyncOpenAI, messages: list[Any], question: str, answer: str) -> str:
    """Ask on Gemini, expect one tool call, append it and its result; returns the call's id."""
    messages.append({"role": "user", "content": question})
    reply = await sdk.chat.completions.create(model="gemini/gemini-2.5-flash", messages=messages, tools=TOOLS)
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls" and message.tool_calls
    (call,) = message.tool_calls
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})
    return call.id


async def test_two_gemini_tool_rounds_keep_ids_unique_and_fail_over_to_anthropic(
    sdk: openai.AsyncOpenAI, fleet: SimFleet
) -> None:
    messages: list[Any] = []
    time_id = await _tool_round(sdk, messages, "What time is it? Use get_time.", "12:00")
    weather_id = await _tool_round(sdk, messages, "And the weather? Use get_weather.", "sunny")
    assert time_id != weather_id  # both were `call_0`
    assert [m["tool_calls"][0]["function"]["name"] for m in messages if m.get("tool_calls")] == [
        "get_time",
        "get_weather",
    ]
    # Gemini gets each result under its own call's name (the sim rejects a result naming no call of its turn).
    final = await sdk.chat.completions.create(model="gemini/gemini-2.5-flash", messages=messages, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content
    # The same history on Anthropic: two distinct tool_use ids (the sim, like Anthropic, rejects repeats).
    moved = await sdk.chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=messages, tools=TOOLS)
    assert moved.choices[0].finish_reason == "stop" and moved.choices[0].message.content
    assert fleet.servers["gemini"].stats.failures_by_kind["bad_request"] == 0
    assert fleet.servers["anthropic"].stats.failures_by_kind["bad_request"] == 0


async def test_streamed_gemini_tool_calls_get_distinct_ids(sdk: openai.AsyncOpenAI) -> None:
    ids = []
    for question in ("Use get_time.", "Use get_weather."):
        stream = await sdk.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[{"role": "user", "content": question}],
            tools=TOOLS,
            stream=True,
        )
        ids += [call.id async for chunk in stream if chunk.choices for call in chunk.choices[0].delta.tool_calls or ()]
    assert len(ids) == 2 and ids[0] != ids[1] and all(i and i.startswith("call_") for i in ids)


# -- 2. reasoning tokens --------------------------------------------------------------------------------------


async def test_gemini_thoughts_are_billed_output_and_shown_as_reasoning_tokens(
    sdk: openai.AsyncOpenAI, demo_gateway: httpx.AsyncClient
) -> None:
    outcomes = _observed(demo_gateway)
    reply = await sdk.chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
    )
    usage = reply.usage
    assert usage is not None and usage.completion_tokens_details is not None
    # the sim: 16 answer tokens and 32 thought tokens, as in the issue (total 51 = 3 + 16 + 32)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 48, 51)
    assert usage.completion_tokens_details.reasoning_tokens == 32
    [outcome] = outcomes
    assert outcome.result is not None
    assert outcome.result.cost_usd == pytest.approx(cost_usd(3, 48, 0.0003, 0.0025))


@pytest.mark.parametrize(
    ("model", "prices"), [("gemini/gemini-2.5-flash", (0.0003, 0.0025)), ("openai/o3-mini", (0.0011, 0.0044))]
)
async def test_streamed_usage_counts_reasoning_tokens(
    sdk: openai.AsyncOpenAI, demo_gateway: httpx.AsyncClient, model: str, prices: tuple[float, float]
) -> None:
    outcomes = _observed(demo_gateway)
    stream = await sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage async for chunk in stream if chunk.usage][-1]
    assert usage.completion_tokens == 48 and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 32
    [outcome] = outcomes
    assert outcome.result is not None
    assert outcome.result.cost_usd == pytest.approx(cost_usd(usage.prompt_tokens, 48, *prices))


# -- 3. response_format json_schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o-mini",
        "vllm/qwen2.5-7b-instruct",
        "gemini/gemini-2.5-flash",
        "anthropic/claude-3-5-haiku-latest",
        "ollama/llama3.2",
    ],
)
async def test_parse_with_a_pydantic_model_gets_a_parsed_reply(sdk: openai.AsyncOpenAI, model: str) -> None:
    completion = await sdk.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Plan a meeting."}], response_format=Meeting
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Meeting)  # the sim answers with an instance of the schema it was sent


async def test_streamed_parse_through_gemini(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.chat.completions.stream(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "Plan."}], response_format=Meeting
    ) as stream:
        completion = await stream.get_final_completion()
    assert isinstance(completion.choices[0].message.parsed, Meeting)


def _config_with_json_only_on(fleet: SimFleet, json_models: set[str]) -> Any:
    providers = demo_providers(fleet)
    for provider_name, provider in providers.items():
        for model_name, model in provider["models"].items():
            has_json = f"{provider_name}/{model_name}" in json_models
            model["capabilities"] = [c for c in model["capabilities"] if c != "json"] + (["json"] if has_json else [])
    return build_config(providers, demo_routing(), {}, providers_file="<test>", routing_file="<test>")


async def test_schema_routes_only_to_json_models_and_else_answers_400(fleet: SimFleet) -> None:
    config = _config_with_json_only_on(fleet, {"gemini/gemini-2.5-flash"})
    async with gateway(config, clock=FakeClock()) as client:
        sdk = openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=client, max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "Plan."}]
        raw = await sdk.chat.completions.with_raw_response.parse(
            model="low", messages=messages, response_format=Meeting
        )
        assert raw.headers["x-bkvy-model"] == "gemini-2.5-flash"  # low's own models lack "json": a higher tier
        assert isinstance(raw.parse().choices[0].message.parsed, Meeting)
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.chat.completions.parse(model="openai/gpt-4o-mini", messages=messages, response_format=Meeting)
        assert refused.value.code == "unsupported_response_format"
        # never a silent downgrade, and json_object needs no capability
        plain = await client.post(
            "/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": messages, "response_format": {"type": "json_object"}},
        )
        assert plain.status_code == 200, plain.text


async def test_json_schema_without_its_object_is_refused(demo_gateway: httpx.AsyncClient) -> None:
    response = await demo_gateway.post(
        "/v1/chat/completions",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema"},
        },
    )
    assert 400 <= response.status_code < 500
    assert "json_schema" in json.dumps(response.json())
