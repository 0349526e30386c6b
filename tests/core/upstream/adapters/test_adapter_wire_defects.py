"""Issue 14, defects 1-3, per adapter on recorded replies (pure, no I/O), checked against the vendors' SDK types:
tool-call ids unique across rounds, reasoning tokens counted as billed output, json_schema carried through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message, MessageDeltaUsage
from anthropic.types.json_output_format_param import JSONOutputFormatParam
from anthropic.types.output_config_param import OutputConfigParam
from google.genai.types import GenerateContentConfig, GenerateContentResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared_params.response_format_json_schema import JSONSchema, ResponseFormatJSONSchema

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.types import (
    ChatMessage,
    GenerationOptions,
    JsonSchemaFormat,
    ProviderType,
    ToolCall,
    UpstreamCall,
    UpstreamReply,
    Usage,
)

GEMINI = adapter_for(ProviderType.GEMINI)
ANTHROPIC = adapter_for(ProviderType.ANTHROPIC)
OPENAI = adapter_for(ProviderType.OPENAI)
COMPATIBLE = adapter_for(ProviderType.OPENAI_COMPATIBLE)
OLLAMA = adapter_for(ProviderType.OLLAMA)

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "when": {"$ref": "#/$defs/Slot"}},
    "required": ["title", "when"],
    "additionalProperties": False,
    "$defs": {"Slot": {"type": "object", "properties": {"hour": {"type": "integer"}}, "required": ["hour"]}},
}
STRUCTURED = GenerationOptions(json_mode=True, json_schema=JsonSchemaFormat("Meeting", SCHEMA, "A meeting", True))


def _call(messages: tuple[ChatMessage, ...], options: GenerationOptions | None = None) -> UpstreamCall:
    return UpstreamCall("http://x.test", "m", "k", messages, options or GenerationOptions())


def _reply(body: dict[str, Any]) -> UpstreamReply:
    return UpstreamReply(200, {}, json.dumps(body).encode())


def _sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


# -- 1. tool-call ids -----------------------------------------------------------------------------------------

GEMINI_TWO_CALLS = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "get_time", "args": {}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10, "totalTokenCount": 30},
}


def test_gemini_calls_without_ids_get_ids_unique_within_and_across_replies() -> None:
    GenerateContentResponse.model_validate(GEMINI_TWO_CALLS)
    first = GEMINI.parse_reply(_reply(GEMINI_TWO_CALLS)).tool_calls
    second = GEMINI.parse_reply(_reply(GEMINI_TWO_CALLS)).tool_calls
    ids = [call.call_id for call in first + second]
    assert len(set(ids)) == 4 and all(i.startswith("call_") for i in ids)
    assert [call.name for call in first] == ["get_time", "get_weather"]


def test_gemini_keeps_an_id_it_sent() -> None:
    recorded = json.loads(json.dumps(GEMINI_TWO_CALLS))
    recorded["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] = "fc-7"
    GenerateContentResponse.model_validate(recorded)
    assert GEMINI.parse_reply(_reply(recorded)).tool_calls[0].call_id == "fc-7"


def test_gemini_stream_gives_each_call_its_own_id_across_streams() -> None:
    chunk = {**GEMINI_TWO_CALLS, "candidates": [{**GEMINI_TWO_CALLS["candidates"][0], "finishReason": None}]}
    ids = []
    for _ in range(2):
        deltas = GEMINI.stream_decoder().feed(_sse(chunk))
        ids += [call.call_id for delta in deltas for call in delta.tool_calls]
    assert len(ids) == 4 and len(set(ids)) == 4


TWO_ROUNDS = (
    ChatMessage("user", "time?"),
    ChatMessage("assistant", "", (ToolCall("call_0", "get_time", "{}"),)),
    ChatMessage("tool", "12:00", tool_call_id="call_0"),
    ChatMessage("user", "weather?"),
    ChatMessage("assistant", "", (ToolCall("call_0", "get_weather", "{}"),)),  # a history from before the fix
    ChatMessage("tool", "sunny", tool_call_id="call_0"),
)


def test_gemini_names_each_result_after_its_own_call_even_when_ids_repeat() -> None:
    contents = GEMINI.build_request(_call(TWO_ROUNDS)).json_body["contents"]
    responses = [p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p]
    assert [(r["name"], r["response"]["content"]) for r in responses] == [
        ("get_time", "12:00"),
        ("get_weather", "sunny"),
    ]


def test_gemini_sends_no_ids_and_answers_parallel_calls_in_one_turn() -> None:
    messages = (
        ChatMessage("user", "both?"),
        ChatMessage("assistant", "", (ToolCall("a", "get_time", "{}"), ToolCall("b", "get_weather", "{}"))),
        ChatMessage("tool", "12:00", tool_call_id="a"),
        ChatMessage("tool", "sunny", tool_call_id="b"),
    )
    contents = GEMINI.build_request(_call(messages)).json_body["contents"]
    assert len(contents) == 3  # user, model (2 calls), user (2 results): the API wants the counts equal
    assert [list(p) for p in contents[2]["parts"]] == [["functionResponse"], ["functionResponse"]]
    # the Gemini API's request side rejects `id` on function parts ("Unknown name \"id\"")
    assert all("id" not in part[kind] for c in contents for part in c["parts"] for kind in part if kind != "text")


def test_anthropic_gets_unique_tool_use_ids_with_results_pointing_at_them() -> None:
    messages = ANTHROPIC.build_request(_call(TWO_ROUNDS)).json_body["messages"]
    uses = [b["id"] for m in messages for b in m["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for m in messages for b in m["content"] if b["type"] == "tool_result"]
    assert uses == ["call_0", "call_0_1"] and results == uses


def test_anthropic_cleans_ids_it_would_reject() -> None:
    messages = (
        ChatMessage("user", "time?"),
        ChatMessage("assistant", "", (ToolCall("functions.get_time:0", "get_time", "{}"),)),
        ChatMessage("tool", "12:00", tool_call_id="functions.get_time:0"),
    )
    body = ANTHROPIC.build_request(_call(messages)).json_body["messages"]
    assert body[1]["content"][0]["id"] == "functions_get_time_0" == body[2]["content"][0]["tool_use_id"]


def test_unique_clean_ids_travel_unchanged() -> None:
    messages = TWO_ROUNDS[:3]
    body = OPENAI.build_request(_call(messages)).json_body["messages"]
    assert body[1]["tool_calls"][0]["id"] == "call_0" and body[2]["tool_call_id"] == "call_0"


def test_compatible_server_reply_without_call_ids_gets_them() -> None:
    call = {"type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    reply = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "tool_calls": [call, call]}, "finish_reason": "tool_calls"}
        ],
    }
    calls = COMPATIBLE.parse_reply(_reply(reply)).tool_calls
    assert len({c.call_id for c in calls}) == 2 and all(c.call_id for c in calls)
    chunk = {
        **reply,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}],
    }
    more = {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}
    deltas = COMPATIBLE.stream_decoder().feed(_sse(chunk, more))
    assert [d.tool_calls[0].call_id is not None for d in deltas] == [True, False]  # only the first fragment


# -- 2. reasoning tokens ----------------------------------------------------------------------------------------

OPENAI_REASONING = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "o3-mini-2025-01-31",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 13,
        "completion_tokens": 210,
        "total_tokens": 223,
        "completion_tokens_details": {"reasoning_tokens": 192, "accepted_prediction_tokens": 0},
    },
}


def test_openai_reasoning_tokens_are_kept_inside_completion_tokens() -> None:
    ChatCompletion.model_validate(OPENAI_REASONING)
    assert OPENAI.parse_reply(_reply(OPENAI_REASONING)).usage == Usage(13, 210, 192)
    last = {**OPENAI_REASONING, "object": "chat.completion.chunk", "choices": []}
    ChatCompletionChunk.model_validate(last)
    deltas = OPENAI.stream_decoder().feed(_sse(last))
    assert [d.usage for d in deltas] == [Usage(13, 210, 192)]


def test_gemini_thoughts_and_tool_prompt_tokens_are_billed() -> None:
    usage = {
        "promptTokenCount": 3,
        "candidatesTokenCount": 16,
        "thoughtsTokenCount": 32,
        "toolUsePromptTokenCount": 5,
        "totalTokenCount": 56,
    }
    recorded = {**GEMINI_TWO_CALLS, "usageMetadata": usage}
    GenerateContentResponse.model_validate(recorded)
    completion = GEMINI.parse_reply(_reply(recorded))
    assert completion.usage == Usage(8, 48, 32) and completion.usage.total_tokens == 56
    last = {"candidates": [{"content": {"role": "model", "parts": [{"text": "."}]}, "finishReason": "STOP"}]}
    deltas = GEMINI.stream_decoder().feed(_sse({**last, "usageMetadata": usage}))
    assert deltas[-1].usage == Usage(8, 48, 32)


def test_anthropic_thinking_tokens_are_part_of_output_tokens() -> None:
    recorded = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "thinking", "thinking": "Hm.", "signature": "Eq"}, {"type": "text", "text": "4"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 90, "output_tokens_details": {"thinking_tokens": 80}},
    }
    Message.model_validate(recorded)
    assert ANTHROPIC.parse_reply(_reply(recorded)).usage == Usage(12, 90, 80)
    delta_usage = {"output_tokens": 90, "output_tokens_details": {"thinking_tokens": 80}}
    MessageDeltaUsage.model_validate(delta_usage)
    events = (
        {
            "type": "message_start",
            "message": {**recorded, "content": [], "usage": {"input_tokens": 12, "output_tokens": 1}},
        },
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": delta_usage},
    )
    deltas = ANTHROPIC.stream_decoder().feed(_sse(*events))
    assert deltas[-1].usage == Usage(12, 90, 80)


# -- 3. json_schema ---------------------------------------------------------------------------------------------

ASK = (ChatMessage("user", "Plan a meeting."),)


@pytest.mark.parametrize("adapter", [OPENAI, COMPATIBLE])
def test_openai_format_gets_json_schema_as_sent(adapter: Any) -> None:
    response_format = adapter.build_request(_call(ASK, STRUCTURED)).json_body["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "Meeting", "schema": SCHEMA, "description": "A meeting", "strict": True},
    }
    assert set(response_format) <= set(ResponseFormatJSONSchema.__annotations__)
    assert set(response_format["json_schema"]) <= set(JSONSchema.__annotations__)


def test_json_object_stays_json_object() -> None:
    body = OPENAI.build_request(_call(ASK, GenerationOptions(json_mode=True))).json_body
    assert body["response_format"] == {"type": "json_object"}


def test_gemini_gets_mime_type_and_response_json_schema() -> None:
    config = GEMINI.build_request(_call(ASK, STRUCTURED)).json_body["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    aliases = {field.alias for field in GenerateContentConfig.model_fields.values()}
    assert set(config) <= aliases


def test_anthropic_gets_structured_output_config() -> None:
    body = ANTHROPIC.build_request(_call(ASK, STRUCTURED)).json_body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert set(body["output_config"]) <= set(OutputConfigParam.__annotations__)
    assert set(body["output_config"]["format"]) <= set(JSONOutputFormatParam.__annotations__)


def test_ollama_gets_the_schema_as_format() -> None:
    assert OLLAMA.build_request(_call(ASK, STRUCTURED)).json_body["format"] == SCHEMA
    assert OLLAMA.build_request(_call(ASK, GenerationOptions(json_mode=True))).json_body["format"] == "json"
