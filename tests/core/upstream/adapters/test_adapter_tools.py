"""Tool calls translated from OpenAI's shape into Anthropic's and Gemini's, and back (pure, no I/O)."""

from __future__ import annotations

import json

import pytest

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.types import (
    ChatMessage,
    GenerationOptions,
    ProviderType,
    ToolCall,
    ToolChoice,
    ToolSpec,
    UpstreamCall,
    UpstreamReply,
)

TOOLS = (ToolSpec("get_time", "The time.", {"type": "object", "properties": {"tz": {"type": "string"}}}),)
CONVERSATION = (
    ChatMessage("user", "time?"),
    ChatMessage("assistant", "", (ToolCall("call_1", "get_time", '{"tz": "UTC"}'),)),
    ChatMessage("tool", "12:00", tool_call_id="call_1"),
)


def _call(choice: ToolChoice | None = None) -> UpstreamCall:
    return UpstreamCall(
        base_url="http://x.test",
        model="m",
        api_key="k",
        messages=CONVERSATION,
        options=GenerationOptions(tools=TOOLS, tool_choice=choice),
    )


def test_openai_passes_tools_and_tool_messages_through() -> None:
    body = adapter_for(ProviderType.OPENAI).build_request(_call(ToolChoice("function", "get_time"))).json_body
    assert body["tools"][0]["function"]["name"] == "get_time"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"tz": "UTC"}'
    assert body["messages"][2] == {"role": "tool", "content": "12:00", "tool_call_id": "call_1"}


def test_anthropic_gets_tool_use_and_tool_result_blocks() -> None:
    body = adapter_for(ProviderType.ANTHROPIC).build_request(_call(ToolChoice("required"))).json_body
    assert body["tools"] == [{"name": "get_time", "description": "The time.", "input_schema": TOOLS[0].parameters}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "get_time", "input": {"tz": "UTC"}}],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "12:00"}],
    }


def test_gemini_gets_function_call_and_a_named_function_response() -> None:
    body = adapter_for(ProviderType.GEMINI).build_request(_call(ToolChoice("none"))).json_body
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_time"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}],
    }
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_time"


def test_replies_with_tool_calls_parse_to_openai_style_calls() -> None:
    anthropic = UpstreamReply(
        200,
        {},
        json.dumps(
            {
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 1, "output_tokens": 2},
            }
        ).encode(),
    )
    completion = adapter_for(ProviderType.ANTHROPIC).parse_reply(anthropic)
    assert completion.tool_calls == (ToolCall("toolu_1", "f", '{"a": 1}'),)
    assert completion.finish_reason.value == "tool_calls"
    gemini = UpstreamReply(
        200,
        {},
        json.dumps(
            {
                "candidates": [
                    {"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "STOP"}
                ]
            }
        ).encode(),
    )
    completion = adapter_for(ProviderType.GEMINI).parse_reply(gemini)
    (call,) = completion.tool_calls
    assert (call.name, call.arguments) == ("f", "{}") and call.call_id.startswith("call_")
    assert completion.finish_reason.value == "tool_calls"


def test_anthropic_stream_maps_tool_blocks_to_indexed_deltas() -> None:
    decoder = adapter_for(ProviderType.ANTHROPIC).stream_decoder()
    events = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
    ]
    deltas = decoder.feed(b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events))
    calls = [call for delta in deltas for call in delta.tool_calls]
    assert [(c.index, c.call_id, c.name, c.arguments) for c in calls] == [
        (0, "t1", "f", ""),
        (0, None, None, '{"a"'),
        (0, None, None, ": 1}"),
    ]


def test_ollama_refuses_tools_so_failover_skips_it() -> None:
    with pytest.raises(UpstreamError):
        adapter_for(ProviderType.OLLAMA).build_request(_call())
