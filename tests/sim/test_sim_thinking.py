"""The sim takes or refuses each vendor's thinking parameters as the real API does, driven by the official SDKs:
what every model refuses (an Anthropic budget under 1024), and what one model refuses (gemini-2.5-pro's 0)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
MESSAGES = [{"role": "user", "content": "a secret prompt that must never be echoed"}]
PRO_FLOOR = {"thinks": True, "can_disable_thinking": False, "min_thinking_budget": 128}


def _gemini(base_url: str) -> genai.Client:
    return genai.Client(api_key=VALID_KEY, http_options=types.HttpOptions(base_url=base_url))


def _thinking(**fields: object) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**fields))


def _openai(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=VALID_KEY, max_retries=0, timeout=5)


def _anthropic(base_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=VALID_KEY, max_retries=0, timeout=5)


# -- Gemini ------------------------------------------------------------------------------------------------


async def test_gemini_model_with_a_floor_refuses_budget_zero_and_takes_its_floor(start_sim) -> None:
    server = await start_sim("gemini", **PRO_FLOOR)
    client = _gemini(server.base_url)
    with pytest.raises(errors.ClientError) as refused:
        await client.aio.models.generate_content(model="m1", contents="hi", config=_thinking(thinking_budget=0))
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    with pytest.raises(errors.ClientError):
        await client.aio.models.generate_content(model="m1", contents="hi", config=_thinking(thinking_budget=127))
    for budget in (128, -1):
        await client.aio.models.generate_content(model="m1", contents="hi", config=_thinking(thinking_budget=budget))
    assert server.stats.thinking_asks["m1"] == {
        "thinkingBudget=0": 1,
        "thinkingBudget=127": 1,
        "thinkingBudget=128": 1,
        "thinkingBudget=-1": 1,
    }


async def test_gemini_model_that_can_switch_off_takes_budget_zero(start_sim) -> None:
    server = await start_sim("gemini", thinks=True)
    await _gemini(server.base_url).aio.models.generate_content(
        model="m1", contents="hi", config=_thinking(thinking_budget=0)
    )
    assert server.stats.thinking_off_calls["m1"] == 1


async def test_gemini_thinking_level_as_the_sdk_sends_it(start_sim) -> None:
    server = await start_sim("gemini", thinks=True, can_disable_thinking=False, thinking_levels=("low", "high"))
    client = _gemini(server.base_url)
    await client.aio.models.generate_content(
        model="m1", contents="hi", config=_thinking(thinking_level=types.ThinkingLevel.LOW)
    )
    with pytest.raises(errors.ClientError) as refused:
        await client.aio.models.generate_content(
            model="m1", contents="hi", config=_thinking(thinking_level=types.ThinkingLevel.MINIMAL)
        )
    assert refused.value.code == 400
    assert sum(server.stats.thinking_asks["m1"].values()) == 2


async def test_gemini_refuses_level_and_budget_together(start_sim) -> None:
    server = await start_sim("gemini", thinks=True)
    config = {"thinkingConfig": {"thinkingBudget": 1024, "thinkingLevel": "LOW"}}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": config}
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"{server.base_url}/v1beta/models/m1:generateContent", json=body, headers={"x-goog-api-key": VALID_KEY}
        )
    assert reply.status_code == 400 and "thinking_level" in reply.text


# -- OpenAI and compatible servers ---------------------------------------------------------------------------


async def test_openai_reasoning_model_refuses_an_effort_it_lacks(start_sim) -> None:
    server = await start_sim(
        "openai", thinks=True, can_disable_thinking=False, thinking_levels=("low", "medium", "high")
    )
    client = _openai(server.base_url)
    await client.chat.completions.create(model="m1", messages=MESSAGES, reasoning_effort="low")
    for effort in ("minimal", "none"):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="m1", messages=MESSAGES, reasoning_effort=effort)
    assert server.stats.thinking_asks["m1"]["reasoning_effort=low"] == 1


async def test_openai_model_that_does_not_reason_refuses_reasoning_effort(start_sim) -> None:
    server = await start_sim("openai")
    with pytest.raises(openai.BadRequestError):
        await _openai(server.base_url).chat.completions.create(model="m1", messages=MESSAGES, reasoning_effort="low")


async def test_chat_template_kwargs_reach_a_compatible_server_and_not_openai(start_sim) -> None:
    compatible = await start_sim("openai_compatible", thinks=True)
    native = await start_sim("openai", thinks=True)
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    await _openai(compatible.base_url).chat.completions.create(model="m1", messages=MESSAGES, extra_body=off)
    assert compatible.stats.thinking_off_calls["m1"] == 1
    assert compatible.stats.thinking_asks["m1"] == {"chat_template_kwargs.enable_thinking=false": 1}
    with pytest.raises(openai.BadRequestError):
        await _openai(native.base_url).chat.completions.create(model="m1", messages=MESSAGES, extra_body=off)


async def test_a_chat_template_that_does_not_think_ignores_enable_thinking(start_sim) -> None:
    server = await start_sim("openai_compatible")
    on = {"chat_template_kwargs": {"enable_thinking": True}}
    completion = await _openai(server.base_url).chat.completions.create(model="m1", messages=MESSAGES, extra_body=on)
    assert completion.choices[0].message.content


# -- Anthropic -----------------------------------------------------------------------------------------------


async def test_anthropic_budget_must_be_at_least_1024_and_under_max_tokens(start_sim) -> None:
    server = await start_sim("anthropic", thinks=True)
    client = _anthropic(server.base_url)
    message = await client.messages.create(
        model="m1", max_tokens=2048, messages=MESSAGES, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert message.usage.output_tokens > 16  # the thinking, billed as output
    for max_tokens, budget in ((4096, 1023), (1024, 1024)):
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(
                model="m1",
                max_tokens=max_tokens,
                messages=MESSAGES,
                thinking={"type": "enabled", "budget_tokens": budget},
            )
    assert server.stats.thinking_asks["m1"] == {"thinking.budget_tokens=1024": 1}


async def test_anthropic_thinking_refuses_a_forced_tool(start_sim) -> None:
    server = await start_sim("anthropic", thinks=True)
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    with pytest.raises(anthropic.BadRequestError):
        await _anthropic(server.base_url).messages.create(
            model="m1",
            max_tokens=4096,
            messages=MESSAGES,
            tools=[tool],
            tool_choice={"type": "any"},
            thinking={"type": "enabled", "budget_tokens": 1024},
        )


async def test_anthropic_thinking_refuses_a_tool_turn_without_its_thinking_blocks(start_sim) -> None:
    server = await start_sim("anthropic", thinks=True)
    messages = [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]},
    ]
    client = _anthropic(server.base_url)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model="m1", max_tokens=4096, messages=messages, thinking={"type": "enabled", "budget_tokens": 1024}
        )
    await client.messages.create(model="m1", max_tokens=4096, messages=messages)  # without thinking: fine


async def test_anthropic_model_that_cannot_switch_off_refuses_disabled(start_sim) -> None:
    server = await start_sim("anthropic", thinks=True, can_disable_thinking=False)
    client = _anthropic(server.base_url)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="m1", max_tokens=64, messages=MESSAGES, thinking={"type": "disabled"})
    await client.messages.create(
        model="m1", max_tokens=64, messages=MESSAGES, thinking={"type": "adaptive"}, output_config={"effort": "low"}
    )
    assert server.stats.thinking_asks["m1"]["thinking.type=adaptive output_config.effort=low"] == 1


# -- Ollama --------------------------------------------------------------------------------------------------


async def test_ollama_think_takes_a_bool_or_a_level(start_sim) -> None:
    server = await start_sim("ollama", thinks=True, can_disable_thinking=False)
    body = {"model": "m1", "messages": MESSAGES, "stream": False}
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert (await client.post("/api/chat", json={**body, "think": "low"})).status_code == 200
        assert (await client.post("/api/chat", json={**body, "think": False})).status_code == 400
        assert (await client.post("/api/chat", json={**body, "think": "lowest"})).status_code == 400
    assert server.stats.thinking_asks["m1"] == {"think=low": 1, "think=false": 1}
