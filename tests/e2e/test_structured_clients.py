"""Structured output through the clients people use, as ``benchmarks/clients_check.py`` found them failing.

1. ``/v1/messages`` refused ``output_config`` (Anthropic's structured outputs), so the anthropic SDK's
   ``messages.parse(output_format=...)``, langchain-anthropic's ``with_structured_output(method="json_schema")`` and
   pydantic-ai's ``NativeOutput`` on its Anthropic model got 400: it is now carried like OpenAI's ``json_schema``.
2. The demo's simulated providers called every tool with ``{}``, so structured output by a forced tool (the default
   of langchain-anthropic's ``with_structured_output``, litellm's anthropic route) failed validation: a called
   tool's arguments now fill its schema, as a model's would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from pydantic import BaseModel

from bkvy.clock import FakeClock
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.live_demo import start_demo, stop_demo
from tests.e2e.test_wire_defects import _config_with_json_only_on

JSON_MODELS = ["auto", "anthropic/claude-3-5-haiku-latest", "openai/gpt-4o-mini", "gemini/gemini-2.5-flash"]
TOOL_MODELS = ["anthropic/claude-3-5-haiku-latest", "openai/gpt-4o-mini", "gemini/gemini-2.5-flash"]
ASK: list[Any] = [{"role": "user", "content": "Plan a meeting."}]


class Meeting(BaseModel):
    title: str
    attendees: list[str]
    minutes: int


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, port = start_demo({}, tmp_path_factory.mktemp("bkvy-structured-clients"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_demo(process)


@pytest.mark.parametrize("model", JSON_MODELS)
def test_anthropic_sdk_parse_gets_an_instance_of_the_schema(base_url: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    parsed = client.messages.parse(model=model, max_tokens=200, messages=ASK, output_format=Meeting)
    assert parsed.stop_reason == "end_turn" and [block.type for block in parsed.content] == ["text"]
    assert parsed.parsed_output == Meeting(title="lorem", attendees=["lorem"], minutes=1)


def test_anthropic_sdk_streams_structured_output(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    with client.messages.stream(
        model="gemini/gemini-2.5-flash", max_tokens=200, messages=ASK, output_format=Meeting
    ) as s:
        final = s.get_final_message()
    assert final.parsed_output == Meeting(title="lorem", attendees=["lorem"], minutes=1)


def test_count_tokens_accepts_output_config(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    output_config: Any = {"format": {"type": "json_schema", "schema": Meeting.model_json_schema()}}
    assert client.messages.count_tokens(model="auto", messages=ASK, output_config=output_config).input_tokens > 0


def test_effort_is_refused_like_thinking(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model="auto", max_tokens=50, messages=ASK, output_config={"effort": "high"})
    assert "output_config.effort" in str(raised.value.api_message)


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_langchain_anthropic_structured_output_by_forced_tool(base_url: str, model: str) -> None:
    from langchain_anthropic import ChatAnthropic

    chat = ChatAnthropic(model=model, base_url=base_url, api_key="unused", max_tokens=200, max_retries=0)
    meeting = chat.with_structured_output(Meeting).invoke("Plan a meeting.")  # method="function_calling"
    assert meeting == Meeting(title="lorem", attendees=["lorem"], minutes=1)


def test_langchain_anthropic_structured_output_by_json_schema(base_url: str) -> None:
    from langchain_anthropic import ChatAnthropic

    chat = ChatAnthropic(model="auto", base_url=base_url, api_key="unused", max_tokens=200, max_retries=0)
    meeting = chat.with_structured_output(Meeting, method="json_schema").invoke("Plan a meeting.")
    assert meeting == Meeting(title="lorem", attendees=["lorem"], minutes=1)


def test_langchain_openai_structured_output_by_function_calling(base_url: str) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="openai/gpt-4o-mini", base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    meeting = chat.with_structured_output(Meeting, method="function_calling").invoke("Plan a meeting.")
    assert meeting == Meeting(title="lorem", attendees=["lorem"], minutes=1)


def test_a_tool_without_parameters_is_still_called_with_an_empty_object(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
    tools: Any = [{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
    message = client.messages.create(model="openai/gpt-4o-mini", max_tokens=50, tools=tools, messages=ASK)
    [call] = message.content
    assert call.type == "tool_use" and call.input == {}


async def test_output_config_routes_only_to_json_models_and_else_answers_400(fleet: SimFleet) -> None:
    config = _config_with_json_only_on(fleet, {"gemini/gemini-2.5-flash"})
    output_config = {"format": {"type": "json_schema", "schema": Meeting.model_json_schema()}}
    async with gateway(config, clock=FakeClock()) as client:
        routed = await _messages(client, "low", output_config)
        assert routed.status_code == 200, routed.text
        assert routed.headers["x-bkvy-model"] == "gemini-2.5-flash"  # low's own models lack "json": a higher tier
        Meeting.model_validate_json(routed.json()["content"][0]["text"])
        refused = await _messages(client, "openai/gpt-4o-mini", output_config)
        assert refused.status_code == 400
        assert refused.json()["error"]["details"]["error_code"] == "unsupported_response_format"
        assert (await _messages(client, "openai/gpt-4o-mini", None)).status_code == 200


async def _messages(client: httpx.AsyncClient, model: str, output_config: dict[str, Any] | None) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "max_tokens": 200, "messages": ASK}
    if output_config is not None:
        body["output_config"] = output_config
    return await client.post("/v1/messages", json=body)
