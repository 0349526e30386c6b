"""OpenAI and OpenAI-compatible adapter on recorded replies, checked against the openai SDK types."""

from __future__ import annotations

from typing import get_args

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsBase, CompletionCreateParamsStreaming
from openai.types.shared import ReasoningEffort

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting
from bkvy.models.types import (
    ChatMessage,
    ErrorClass,
    FinishReason,
    GenerationOptions,
    ProviderType,
    RateLimitHint,
    Usage,
)

OPENAI = adapter_for(ProviderType.OPENAI)
COMPATIBLE = adapter_for(ProviderType.OPENAI_COMPATIBLE)
PARAM_NAMES = set(CompletionCreateParamsBase.__annotations__) | set(CompletionCreateParamsStreaming.__annotations__)

RECORDED_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }


RECORDED_CHUNKS = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Hé"}),
    _chunk({"content": "llo ✓"}),
    _chunk({}, finish="length"),
    _chunk({}, usage={"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21}, choices=False),
]


def test_recorded_fixtures_match_the_sdk_types() -> None:
    ChatCompletion.model_validate(RECORDED_COMPLETION)
    for chunk in RECORDED_CHUNKS:
        ChatCompletionChunk.model_validate(chunk)


def test_request_url_headers_and_body(make_call, secret_key) -> None:
    call = make_call(
        base_url="https://api.openai.com",
        model="gpt-4o-mini",
        options=GenerationOptions(max_tokens=50, temperature=0.2, top_p=0.9, stop=("END",)),
    )
    request = OPENAI.build_request(call)
    assert (request.method, request.url) == ("POST", "https://api.openai.com/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {secret_key}"
    assert request.json_body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
    assert set(request.json_body) <= PARAM_NAMES


def test_base_url_ending_in_v1_is_not_doubled(make_call) -> None:
    request = OPENAI.build_request(make_call(base_url="http://localhost:8000/v1/"))
    assert request.url == "http://localhost:8000/v1/chat/completions"


def test_endpoint_override_replaces_the_path(make_call) -> None:
    call = make_call(base_url="https://api.groq.com", endpoint="/openai/v1/chat/completions")
    request = COMPATIBLE.build_request(call)
    assert request.url == "https://api.groq.com/openai/v1/chat/completions"


def test_json_mode_and_stream_params(make_call) -> None:
    body = OPENAI.build_request(make_call(options=GenerationOptions(json_mode=True), stream=True)).json_body
    assert body["response_format"] == {"type": "json_object"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert set(body) <= PARAM_NAMES


def test_content_parts_pass_through_unchanged(make_call) -> None:
    parts = (
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    )
    body = OPENAI.build_request(make_call(messages=(ChatMessage("user", parts),))).json_body
    assert body["messages"] == [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize(
    ("model", "setting", "effort"),
    [
        ("gpt-5.1", ThinkingSetting(ThinkingMode.OFF, ThinkingParam.REASONING_EFFORT, "none"), "none"),
        ("gpt-5-mini", ThinkingSetting(ThinkingMode.OFF, ThinkingParam.REASONING_EFFORT, "minimal"), "minimal"),
        ("o3-mini", ThinkingSetting(ThinkingMode.OFF, ThinkingParam.REASONING_EFFORT, "low"), "low"),
        ("o1", ThinkingSetting(ThinkingMode.ON, ThinkingParam.REASONING_EFFORT, "medium"), "medium"),
    ],
)
def test_reasoning_model_gets_its_configured_effort_and_no_sampling(make_call, model, setting, effort) -> None:
    options = GenerationOptions(max_tokens=64, temperature=0.5, top_p=0.5, stop=("x",))
    request = OPENAI.build_request(make_call(model=model, options=options, thinking=setting))
    body = request.json_body
    assert body["reasoning_effort"] == effort and body["max_completion_tokens"] == 64
    assert effort in get_args(get_args(ReasoningEffort)[0])  # a value the openai SDK types
    assert not {"max_tokens", "temperature", "top_p", "stop"} & set(body)
    assert set(body) <= PARAM_NAMES
    assert request.thinking == f"{setting.mode.value}: reasoning_effort={effort}"


def test_reasoning_model_without_a_thinking_ask_leaves_effort_default(make_call) -> None:
    request = OPENAI.build_request(make_call(model="o3", options=GenerationOptions(max_tokens=8)))
    assert "reasoning_effort" not in request.json_body and request.json_body["max_completion_tokens"] == 8
    assert request.thinking is None


def test_compatible_server_gets_no_reasoning_special_casing(make_call) -> None:
    call = make_call(model="gpt-5-local", options=GenerationOptions(max_tokens=8, temperature=0.1))
    body = COMPATIBLE.build_request(call).json_body
    assert body["max_tokens"] == 8 and body["temperature"] == 0.1 and "reasoning_effort" not in body


@pytest.mark.parametrize(("mode", "switch"), [(ThinkingMode.OFF, False), (ThinkingMode.ON, True)])
def test_compatible_server_gets_chat_template_enable_thinking(make_call, mode, switch) -> None:
    setting = ThinkingSetting(mode, ThinkingParam.ENABLE_THINKING, switch)
    request = COMPATIBLE.build_request(make_call(model="Qwen/Qwen3-8B", thinking=setting))
    assert request.json_body["chat_template_kwargs"] == {"enable_thinking": switch}
    assert "reasoning_effort" not in request.json_body
    assert set(request.json_body) - PARAM_NAMES == {"chat_template_kwargs"}  # vLLM's extra parameter
    assert request.thinking == f"{mode.value}: chat_template_kwargs.enable_thinking={str(switch).lower()}"


def test_compatible_server_configured_for_reasoning_effort_gets_it(make_call) -> None:
    setting = ThinkingSetting(ThinkingMode.OFF, ThinkingParam.REASONING_EFFORT, "low")  # e.g. gpt-oss on Groq
    body = COMPATIBLE.build_request(make_call(model="openai/gpt-oss-20b", thinking=setting)).json_body
    assert body["reasoning_effort"] == "low" and "chat_template_kwargs" not in body


def test_compatible_model_that_cannot_switch_off_gets_nothing(make_call) -> None:
    setting = ThinkingSetting(ThinkingMode.OFF, ThinkingParam.ENABLE_THINKING, None)
    request = COMPATIBLE.build_request(make_call(model="deepseek-r1", thinking=setting))
    assert "chat_template_kwargs" not in request.json_body
    assert request.thinking == "off: nothing sent"


def test_compatible_server_without_key_sends_no_authorization(make_call, secret_key) -> None:
    assert "authorization" not in COMPATIBLE.build_request(make_call(api_key="")).headers
    assert COMPATIBLE.build_request(make_call()).headers["authorization"] == f"Bearer {secret_key}"


def test_probe_is_a_one_token_chat_call(make_call) -> None:
    request = OPENAI.build_probe(make_call(model="gpt-4o-mini", stream=True))
    assert request.method == "POST" and request.url.endswith("/v1/chat/completions")
    assert request.json_body["max_tokens"] == 1 and "stream" not in request.json_body
    assert OPENAI.build_probe(make_call(model="o4-mini")).json_body["max_completion_tokens"] == 1


def test_reply_maps_content_usage_finish_and_hint(make_reply) -> None:
    headers = {"x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"}
    completion = OPENAI.parse_reply(make_reply(200, RECORDED_COMPLETION, headers))
    assert completion.content == "Hello! How can I help?"
    assert completion.usage == Usage(19, 10) and completion.finish_reason is FinishReason.STOP
    assert completion.model_reported == "gpt-4o-mini-2024-07-18"
    assert completion.rate_limit_hint == RateLimitHint(remaining_requests=499, reset_seconds=0.12)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("length", FinishReason.LENGTH),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("tool_calls", FinishReason.TOOL_CALLS),
        ("function_call", FinishReason.TOOL_CALLS),
    ],
)
def test_finish_reasons_are_mapped(make_reply, raw, expected) -> None:
    recorded = {**RECORDED_COMPLETION, "choices": [{**RECORDED_COMPLETION["choices"][0], "finish_reason": raw}]}
    ChatCompletion.model_validate(recorded)
    assert OPENAI.parse_reply(make_reply(200, recorded)).finish_reason is expected


def test_null_content_becomes_empty_string(make_reply) -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    recorded = {**RECORDED_COMPLETION, "choices": [{**RECORDED_COMPLETION["choices"][0], "message": message}]}
    ChatCompletion.model_validate(recorded)
    assert OPENAI.parse_reply(make_reply(200, recorded)).content == ""


def test_stream_decoder_yields_text_finish_and_usage_for_any_split(feed_split, to_sse) -> None:
    deltas = feed_split(OPENAI.stream_decoder, to_sse(*RECORDED_CHUNKS, "[DONE]"))
    assert "".join(d.content for d in deltas) == "Héllo ✓"
    assert [d.finish_reason for d in deltas if d.finish_reason] == [FinishReason.LENGTH]
    assert [d.usage for d in deltas if d.usage] == [Usage(19, 2)]


def test_stream_error_event_raises(to_sse) -> None:
    raw = to_sse(RECORDED_CHUNKS[1], {"error": {"message": "boom", "type": "server_error", "code": None}})
    with pytest.raises(UpstreamError) as raised:
        OPENAI.stream_decoder().feed(raw)
    assert raised.value.error_class is ErrorClass.SERVER


def test_stream_garbled_event_raises_server_error() -> None:
    with pytest.raises(UpstreamError) as raised:
        OPENAI.stream_decoder().feed(b"data: {not json\n\n")
    assert raised.value.error_class is ErrorClass.SERVER
