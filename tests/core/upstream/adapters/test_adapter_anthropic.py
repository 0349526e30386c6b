"""Anthropic Messages adapter on recorded replies, checked against the anthropic SDK types."""

from __future__ import annotations

import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent, ThinkingConfigParam
from anthropic.types.message_create_params import (
    MessageCreateParamsBase,
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import TypeAdapter

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting
from bkvy.models.types import (
    ChatMessage,
    ErrorClass,
    FinishReason,
    GenerationOptions,
    JsonSchemaFormat,
    ProviderType,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

ANTHROPIC = adapter_for(ProviderType.ANTHROPIC)
PARAM_NAMES = set(MessageCreateParamsBase.__annotations__) | set(MessageCreateParamsStreaming.__annotations__)
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
THINKING_CONFIG = TypeAdapter(ThinkingConfigParam)
MESSAGE_PARAMS = TypeAdapter(MessageCreateParamsNonStreaming)

RECORDED_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Short answer.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Hello"},
        {"type": "text", "text": " there!"},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 6,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    },
}
_START_MESSAGE = {
    **RECORDED_MESSAGE,
    "content": [],
    "stop_reason": None,
    "usage": {"input_tokens": 25, "output_tokens": 1},
}
RECORDED_EVENTS = [
    {"type": "message_start", "message": _START_MESSAGE},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Grüß"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " dich 👋"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
]
PING = {"type": "ping"}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_recorded_fixtures_match_the_sdk_types() -> None:
    Message.model_validate(RECORDED_MESSAGE)
    for event in RECORDED_EVENTS:
        STREAM_EVENT.validate_python(event)
    ErrorResponse.model_validate({**OVERLOADED, "request_id": "req_011"})


def test_request_url_headers_and_body(make_call, secret_key) -> None:
    call = make_call(
        base_url="https://api.anthropic.com",
        model="claude-haiku-4-5",
        options=GenerationOptions(max_tokens=300, temperature=0.3, top_p=0.8, stop=("\n\n",)),
    )
    request = ANTHROPIC.build_request(call)
    assert (request.method, request.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert request.headers == {
        "x-api-key": secret_key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    assert request.json_body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
        "stop_sequences": ["\n\n"],
    }
    assert set(request.json_body) <= PARAM_NAMES


def test_sampling_params_absent_from_sdk_params_are_not_sent(make_call) -> None:
    body = ANTHROPIC.build_request(make_call(options=GenerationOptions(temperature=0.3, top_p=0.8))).json_body
    assert "temperature" not in body and "top_p" not in body


def test_max_tokens_defaults_to_4096(make_call) -> None:
    assert ANTHROPIC.build_request(make_call()).json_body["max_tokens"] == 4096


def test_system_messages_are_joined_and_same_role_runs_merged(make_call) -> None:
    messages = (
        ChatMessage("system", "Rule one."),
        ChatMessage("user", "a"),
        ChatMessage("system", "Rule two."),
        ChatMessage("user", "b"),
        ChatMessage("assistant", "c"),
        ChatMessage("assistant", "d"),
    )
    body = ANTHROPIC.build_request(make_call(messages=messages)).json_body
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
    ]


def test_no_system_message_means_no_system_field(make_call) -> None:
    body = ANTHROPIC.build_request(make_call(messages=(ChatMessage("user", "hi"),))).json_body
    assert "system" not in body


def test_data_url_image_becomes_base64_image_block(make_call) -> None:
    parts = (
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
    )
    body = ANTHROPIC.build_request(make_call(messages=(ChatMessage("user", parts),))).json_body
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "describe"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
    ]


def test_unknown_content_part_is_a_bad_request(make_call) -> None:
    call = make_call(messages=(ChatMessage("user", ({"type": "input_audio", "input_audio": {}},)),))
    with pytest.raises(UpstreamError) as raised:
        ANTHROPIC.build_request(call)
    assert raised.value.error_class is ErrorClass.BAD_REQUEST


def test_sends_no_thinking_block_unless_asked(make_call) -> None:
    request = ANTHROPIC.build_request(make_call(model="claude-sonnet-4-5"))
    assert "thinking" not in request.json_body and request.thinking is None


def test_thinking_off_is_no_thinking_block(make_call) -> None:
    setting = ThinkingSetting(ThinkingMode.OFF, ThinkingParam.BUDGET_TOKENS, None)
    request = ANTHROPIC.build_request(make_call(model="claude-sonnet-4-5", thinking=setting))
    assert "thinking" not in request.json_body and request.thinking == "off: nothing sent"


@pytest.mark.parametrize(("mode", "budget"), [(ThinkingMode.ON, 4096), (ThinkingMode.OFF, 1024)])  # ON, a floor
def test_budget_comes_on_top_of_the_answers_max_tokens(make_call, mode, budget) -> None:
    setting = ThinkingSetting(mode, ThinkingParam.BUDGET_TOKENS, budget)
    call = make_call(model="claude-sonnet-4-5", thinking=setting, options=GenerationOptions(max_tokens=300))
    request = ANTHROPIC.build_request(call)
    body = request.json_body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 300 + budget > body["thinking"]["budget_tokens"] >= 1024
    THINKING_CONFIG.validate_python(body["thinking"])
    MESSAGE_PARAMS.validate_python(body)
    assert request.thinking == (
        f"{mode.value}: thinking.type=enabled thinking.budget_tokens={budget} max_tokens={300 + budget}"
    )


def test_adaptive_thinking_with_an_effort_joins_the_output_config(make_call) -> None:
    setting = ThinkingSetting(ThinkingMode.OFF, ThinkingParam.ADAPTIVE, "low")  # a model that cannot switch off
    options = GenerationOptions(json_schema=JsonSchemaFormat(name="answer", schema={"type": "object"}))
    request = ANTHROPIC.build_request(make_call(model="claude-opus-4-7", thinking=setting, options=options))
    body = request.json_body
    assert body["thinking"] == {"type": "adaptive"} and body["max_tokens"] == 4096
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}, "effort": "low"}
    MESSAGE_PARAMS.validate_python(body)
    assert request.thinking == "off: thinking.type=adaptive output_config.effort=low"


def test_adaptive_thinking_on_without_an_effort(make_call) -> None:
    setting = ThinkingSetting(ThinkingMode.ON, ThinkingParam.ADAPTIVE, None)
    body = ANTHROPIC.build_request(make_call(thinking=setting)).json_body
    assert body["thinking"] == {"type": "adaptive"} and "output_config" not in body


FORCED = GenerationOptions(tools=(ToolSpec("lookup"),), tool_choice=ToolChoice("required"))
TOOL_TURN = (
    ChatMessage("user", "look it up"),
    ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "lookup", "{}"),)),
    ChatMessage("tool", "42", tool_call_id="call_1"),
)


@pytest.mark.parametrize(
    ("overrides", "why"),
    [({"options": FORCED}, "a forced tool choice"), ({"messages": TOOL_TURN}, "a tool-use turn")],
)
def test_thinking_is_held_back_where_the_api_refuses_it(make_call, overrides, why) -> None:
    setting = ThinkingSetting(ThinkingMode.ON, ThinkingParam.BUDGET_TOKENS, 4096)
    request = ANTHROPIC.build_request(make_call(thinking=setting, **overrides))
    assert "thinking" not in request.json_body and request.json_body["max_tokens"] == 4096
    assert request.thinking is not None and request.thinking.startswith("on: nothing sent (held back: " + why)


def test_stream_flag_is_sent_when_streaming(make_call) -> None:
    body = ANTHROPIC.build_request(make_call(stream=True)).json_body
    assert body["stream"] is True and set(body) <= PARAM_NAMES


def test_probe_is_a_one_token_messages_call(make_call) -> None:
    request = ANTHROPIC.build_probe(make_call())
    assert request.url.endswith("/v1/messages") and request.json_body["max_tokens"] == 1


def test_reply_joins_text_blocks_and_skips_thinking(make_reply) -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z",
        "date": "Thu, 01 Jan 2026 00:00:04 GMT",
    }
    completion = ANTHROPIC.parse_reply(make_reply(200, RECORDED_MESSAGE, headers))
    assert completion.content == "Hello there!"
    assert completion.usage == Usage(12, 6) and completion.finish_reason is FinishReason.STOP
    assert completion.model_reported == "claude-sonnet-4-5-20250929"
    assert completion.rate_limit_hint is not None and completion.rate_limit_hint.reset_seconds == 6.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("refusal", FinishReason.CONTENT_FILTER),
    ],
)
def test_stop_reasons_are_mapped(make_reply, raw, expected) -> None:
    recorded = {**RECORDED_MESSAGE, "stop_reason": raw}
    Message.model_validate(recorded)
    assert ANTHROPIC.parse_reply(make_reply(200, recorded)).finish_reason is expected


def test_stream_decoder_yields_text_then_finish_with_usage_for_any_split(feed_split, to_sse) -> None:
    events = [RECORDED_EVENTS[0], PING, *RECORDED_EVENTS[1:]]
    raw = to_sse(*events, events=tuple(e["type"] for e in events))
    deltas = feed_split(ANTHROPIC.stream_decoder, raw)
    assert "".join(d.content for d in deltas) == "Grüß dich 👋"
    assert deltas[-1].finish_reason is FinishReason.LENGTH and deltas[-1].usage == Usage(25, 15)


def test_stream_overloaded_error_event_raises_server(to_sse) -> None:
    raw = to_sse(RECORDED_EVENTS[0], OVERLOADED, events=("message_start", "error"))
    with pytest.raises(UpstreamError) as raised:
        ANTHROPIC.stream_decoder().feed(raw)
    assert raised.value.error_class is ErrorClass.SERVER and "overloaded_error" in raised.value.message


def test_text_in_the_same_read_as_an_error_event_is_delivered_then_the_error_raises(to_sse) -> None:
    text_event = next(e for e in RECORDED_EVENTS if e["type"] == "content_block_delta")
    raw = to_sse(RECORDED_EVENTS[0], text_event, OVERLOADED, events=("message_start", "content_block_delta", "error"))
    decoder = ANTHROPIC.stream_decoder()
    deltas = decoder.feed(raw)
    assert deltas and deltas[0].content
    with pytest.raises(UpstreamError) as raised:
        decoder.feed(b"")
    assert raised.value.error_class is ErrorClass.SERVER
