"""Anthropic's Messages shapes: requests into bkvy's types, results and deltas into the SDK's own types."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter, ValidationError

from bkvy.api.anthropic_format import (
    EventWriter,
    anthropic_status,
    error_body,
    estimate_input_tokens,
    message_json,
    to_messages,
    to_options,
)
from bkvy.api.errors import failure_of
from bkvy.core.execution.executor import ExecutionResult
from bkvy.core.upstream.adapters import StreamDelta, ToolCallDelta
from bkvy.models.anthropic_schemas import MessagesCreateIn
from bkvy.models.errors import CircuitsOpen, InvalidRequest, ValidationFailed
from bkvy.models.types import ChatMessage, Completion, FinishReason, ToolCall, ToolChoice, Usage

EVENTS = TypeAdapter(RawMessageStreamEvent)
PNG = "iVBORw0KGgo="


def _body(**fields: Any) -> MessagesCreateIn:
    return MessagesCreateIn.model_validate(
        {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_system_blocks_images_tool_use_and_results_become_bkvys_messages() -> None:
    body = _body(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]},
                    {"type": "text", "text": "And?"},
                ],
            },
        ],
    )
    assert to_messages(body) == (
        ChatMessage("system", "Be brief."),
        ChatMessage(
            "user",
            (
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ),
        ),
        ChatMessage("assistant", "Let me look.", (ToolCall("toolu_1", "lookup", '{"q": "x"}'),)),
        ChatMessage("tool", "42", tool_call_id="toolu_1"),
        ChatMessage("user", ({"type": "text", "text": "And?"},)),
    )


def test_a_failed_tool_result_says_so_in_words() -> None:
    body = _body(
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": True}]}]
    )
    assert to_messages(body) == (ChatMessage("tool", "Error", tool_call_id="t"),)


def test_an_image_inside_a_tool_result_is_refused() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    body = _body(
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]
    )
    with pytest.raises(InvalidRequest, match=r"messages\.0\.content\.0\.content"):
        to_messages(body)


def test_options_carry_every_field() -> None:
    body = _body(
        temperature=0.5,
        top_p=0.9,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        thinking={"type": "disabled"},
        tools=[{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any"},
    )
    options = to_options(body)
    assert (options.max_tokens, options.temperature, options.top_p, options.stop) == (100, 0.5, 0.9, ("END",))
    assert options.user == "u-1" and options.disable_thinking is True
    assert [(t.name, t.description, t.parameters) for t in options.tools] == [("lookup", "d", {"type": "object"})]
    assert options.tool_choice == ToolChoice("required")
    named = to_options(body.model_copy(update={"tool_choice": body.tool_choice.model_copy(update={"type": "tool"})}))
    assert named.tool_choice is not None and named.tool_choice.mode == "function"


@pytest.mark.parametrize(
    "fields",
    [
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        {"thinking": {"type": "adaptive"}},
        {
            "tools": [{"name": "a", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
    ],
)
def test_options_bkvy_cannot_carry_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        to_options(_body(**fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"top_k": 5},
        {"max_tokens": 0},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]},
        {"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
        {"messages": [{"role": "system", "content": "only a system prompt"}]},
        {"tool_choice": {"type": "tool"}},
    ],
)
def test_the_schema_refuses_what_it_does_not_know(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _body(**fields)


def test_estimate_counts_characters_tools_and_images() -> None:
    messages = (ChatMessage("user", ({"type": "text", "text": "a" * 10}, {"type": "image_url", "image_url": {}})),)
    assert estimate_input_tokens(messages, ()) == 3 + 1600
    assert estimate_input_tokens((ChatMessage("user", "abcd"),), ()) == 1


def _result(completion: Completion) -> ExecutionResult:
    # message_json reads the completion and the winner's model only
    return SimpleNamespace(completion=completion, candidate=SimpleNamespace(model="gpt-4o-mini"))  # type: ignore


@pytest.mark.parametrize(
    "finish,stop_reason",
    [
        (FinishReason.STOP, "end_turn"),
        (FinishReason.LENGTH, "max_tokens"),
        (FinishReason.TOOL_CALLS, "tool_use"),
        (FinishReason.CONTENT_FILTER, "refusal"),
    ],
)
def test_message_json_is_an_sdk_message(finish: FinishReason, stop_reason: str) -> None:
    calls = (ToolCall("call_1", "lookup", '{"q": 1}'), ToolCall("call_2", "broken", "not json"))
    completion = Completion("Looking.", Usage(7, 9), finish, tool_calls=calls)
    message = Message.model_validate(message_json("r1", _result(completion)))
    assert message.id == "msg_r1" and message.model == "gpt-4o-mini" and message.stop_reason == stop_reason
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"q": 1}  # type: ignore[union-attr]
    assert message.content[2].input == {"_raw_arguments": "not json"}  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 9)


def _events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            payload = json.loads(data.removeprefix("data: "))
            assert name == f"event: {payload['type']}"
            events.append(payload)
    return events


def test_event_writer_opens_one_block_at_a_time_and_ends_with_usage() -> None:
    writer = EventWriter("r1", "gpt-4o-mini", input_tokens_estimate=3)
    raw = writer.opening_events()
    raw += writer.delta_events(StreamDelta(content="Hel"))
    raw += writer.delta_events(StreamDelta(content="lo"))
    raw += writer.delta_events(StreamDelta(tool_calls=(ToolCallDelta(0, "call_1", "lookup"),)))
    raw += writer.delta_events(StreamDelta(tool_calls=(ToolCallDelta(0, arguments='{"q":'),)))
    raw += writer.delta_events(StreamDelta(tool_calls=(ToolCallDelta(0, arguments="1}"),)))
    raw += writer.delta_events(StreamDelta(finish_reason=FinishReason.TOOL_CALLS))
    raw += writer.delta_events(StreamDelta(usage=Usage(5, 8)))  # OpenAI's usage chunk comes after the finish
    raw += writer.closing_events()
    events = _events(raw)
    for event in events:
        if event["type"] != "ping":
            EVENTS.validate_python(event)
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[0]["message"]["usage"] == {"input_tokens": 3, "output_tokens": 0}
    assert events[6]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {}}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 5, "output_tokens": 8}


@pytest.mark.parametrize(
    "status,wire_status,error_type",
    [
        (400, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (402, 402, "billing_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (413, 413, "invalid_request_error"),
        (422, 400, "invalid_request_error"),
        (429, 429, "rate_limit_error"),
        (500, 500, "api_error"),
        (502, 502, "api_error"),
        (503, 529, "overloaded_error"),
        (504, 504, "timeout_error"),
    ],
)
def test_statuses_and_error_types_follow_anthropic(status: int, wire_status: int, error_type: str) -> None:
    assert anthropic_status(status) == wire_status
    body = error_body(wire_status, "some_code", "what went wrong", "r1")
    assert body == {
        "type": "error",
        "error": {"type": error_type, "message": "what went wrong", "details": {"error_code": "some_code"}},
        "request_id": "r1",
    }


def test_failures_on_the_messages_paths_take_anthropics_statuses() -> None:
    for route in ("/v1/messages", "/v1/messages/count_tokens"):
        assert failure_of(CircuitsOpen("x"), method="POST", route=route, request_id="r").status == 529
        assert failure_of(ValidationFailed("x"), method="POST", route=route, request_id="r").status == 400
    assert failure_of(CircuitsOpen("x"), method="POST", route="/v1/chat/completions", request_id="r").status == 503
