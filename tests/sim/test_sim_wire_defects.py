"""What the simulators learned for issue 14 (defects 1-3), driven by the official SDKs: structured output,
reasoning usage, tool steering, and the tool-history checks the real services make."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from bkvy.sim.structured import pick_tool, schema_reply

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim


class Meeting(BaseModel):
    title: str
    attendees: list[str]
    minutes: int


def test_schema_reply_is_an_instance_of_refs_enums_and_unions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b"]},
            "slot": {"$ref": "#/$defs/Slot"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {"Slot": {"type": "object", "properties": {"hour": {"type": "integer"}}}},
    }
    assert schema_reply(schema) == '{"kind": "a", "slot": {"hour": 1}, "note": "lorem"}'


def test_pick_tool_follows_the_users_words_else_the_first() -> None:
    tools: dict[str, object] = {"get_time": None, "get_weather": {"type": "object", "properties": {}}}
    assert pick_tool(tools, "use get_weather please") == ("get_weather", "{}")
    assert pick_tool(tools, "hello") == ("get_time", "{}")
    assert pick_tool({}, "hello") is None


def test_pick_tool_fills_the_tools_schema() -> None:
    # A forced tool is how langchain-anthropic and litellm ask for structured output: its arguments are the answer.
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "attendees": {"type": "array"}}}
    assert pick_tool({"Meeting": schema}, "Plan a meeting.") == ("Meeting", '{"title": "lorem", "attendees": [null]}')


async def test_openai_json_schema_reply_parses_with_the_sdk(start_sim) -> None:
    server = await start_sim("openai")
    client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=VALID_KEY, max_retries=0)
    completion = await client.chat.completions.parse(
        model="m1", messages=[{"role": "user", "content": "plan"}], response_format=Meeting
    )
    assert isinstance(completion.choices[0].message.parsed, Meeting)


async def test_gemini_response_json_schema_gets_json(start_sim) -> None:
    server = await start_sim("gemini")
    client = genai.Client(api_key=VALID_KEY, http_options=types.HttpOptions(base_url=server.base_url))
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=Meeting.model_json_schema()
    )
    response = await client.aio.models.generate_content(model="m1", contents="plan", config=config)
    assert Meeting.model_validate_json(response.text or "")


async def test_gemini_rejects_ids_and_results_that_do_not_answer_the_calls(start_sim) -> None:
    server = await start_sim("gemini")
    call_turn = {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {}}}]}

    async def send(*contents: dict) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            return await http.post(
                "/v1beta/models/m1:generateContent",
                headers={"x-goog-api-key": VALID_KEY},
                json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}, *contents]},
            )

    def result(name: str, **extra: object) -> dict:
        return {"role": "user", "parts": [{"functionResponse": {"name": name, "response": {}, **extra}}]}

    assert (await send(call_turn, result("get_time"))).status_code == 200
    with_id = await send(call_turn, result("get_time", id="call_0"))
    assert with_id.status_code == 400 and 'Unknown name \\"id\\"' in with_id.text
    assert (await send(call_turn, result("get_weather"))).status_code == 400
    two = {"role": "user", "parts": result("get_time")["parts"] * 2}
    assert "number of function response parts" in (await send(call_turn, two)).text


async def test_anthropic_structured_output_and_thinking_usage(start_sim) -> None:
    server = await start_sim("anthropic", thinks=True)
    client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key=VALID_KEY, max_retries=0)
    message = await client.messages.create(
        model="m1",
        max_tokens=2048,  # more than the budget, as the real API requires
        messages=[{"role": "user", "content": "plan"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config={"format": {"type": "json_schema", "schema": Meeting.model_json_schema()}},
    )
    block = message.content[0]
    assert block.type == "text" and Meeting.model_validate_json(block.text)
    details = message.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < message.usage.output_tokens


async def test_anthropic_rejects_repeated_tool_use_ids(start_sim) -> None:
    server = await start_sim("anthropic")
    client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key=VALID_KEY, max_retries=0)

    def round_(tool_id: str) -> list:
        return [
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}]},
        ]

    messages = [{"role": "user", "content": "go"}, *round_("call_0")]
    assert (await client.messages.create(model="m1", max_tokens=10, messages=messages)).content
    with pytest.raises(anthropic.BadRequestError) as raised:
        await client.messages.create(model="m1", max_tokens=10, messages=messages + round_("call_0"))
    assert "must be unique" in str(raised.value)


async def test_gemini_sdk_error_class_for_a_rejected_history(start_sim) -> None:
    server = await start_sim("gemini")
    client = genai.Client(api_key=VALID_KEY, http_options=types.HttpOptions(base_url=server.base_url))
    contents = [
        types.Content(role="user", parts=[types.Part(text="hi")]),
        types.Content(role="user", parts=[types.Part.from_function_response(name="f", response={})]),
    ]
    with pytest.raises(errors.ClientError) as raised:
        await client.aio.models.generate_content(model="m1", contents=contents)
    assert raised.value.code == 400
