"""Gemini adapter on recorded replies, checked against google-genai's types."""

from __future__ import annotations

import pytest
from google.genai.types import GenerateContentConfig, GenerateContentResponse, ThinkingConfig

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting
from bkvy.models.types import ChatMessage, ErrorClass, FinishReason, GenerationOptions, ProviderType, Usage

GEMINI = adapter_for(ProviderType.GEMINI)
CONFIG_ALIASES = {field.alias for field in GenerateContentConfig.model_fields.values()}
THINKING_ALIASES = {field.alias for field in ThinkingConfig.model_fields.values()}

RECORDED_RESPONSE = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Considering a greeting.", "thought": True},
                    {"text": "Hi! "},
                    {"text": "Need anything?"},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 8,
        "candidatesTokenCount": 5,
        "totalTokenCount": 40,
        "thoughtsTokenCount": 27,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mEbJaMiVJ8K9nvgP5sKBqQ4",
}
RECORDED_BLOCKED = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    "modelVersion": "gemini-2.5-flash",
}
RECORDED_CHUNKS = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Ein"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hörn ∞"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    },
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash",
    },
]


def test_recorded_fixtures_match_the_sdk_types() -> None:
    for recorded in (RECORDED_RESPONSE, RECORDED_BLOCKED, *RECORDED_CHUNKS):
        GenerateContentResponse.model_validate(recorded)


def test_request_url_headers_and_body(make_call, secret_key) -> None:
    call = make_call(
        base_url="https://generativelanguage.googleapis.com",
        model="gemini-2.5-flash",
        options=GenerationOptions(max_tokens=200, temperature=0.4, top_p=0.95, stop=("##",), json_mode=True),
    )
    request = GEMINI.build_request(call)
    assert request.method == "POST"
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent")
    assert request.headers["x-goog-api-key"] == secret_key
    assert request.json_body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 200,
            "temperature": 0.4,
            "topP": 0.95,
            "stopSequences": ["##"],
            "responseMimeType": "application/json",
        },
    }
    assert set(request.json_body["generationConfig"]) <= CONFIG_ALIASES


@pytest.mark.parametrize("stream", [False, True])
def test_key_is_never_in_the_url(make_call, secret_key, stream) -> None:
    assert secret_key not in GEMINI.build_request(make_call(stream=stream)).url
    assert secret_key not in GEMINI.build_probe(make_call()).url


def test_stream_url_uses_sse(make_call) -> None:
    url = GEMINI.build_request(make_call(model="models/gemini-2.5-flash", stream=True)).url
    assert url == "https://upstream.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_assistant_role_becomes_model(make_call) -> None:
    messages = (ChatMessage("user", "a"), ChatMessage("assistant", "b"), ChatMessage("user", "c"))
    contents = GEMINI.build_request(make_call(messages=messages)).json_body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]


def test_data_url_image_becomes_inline_data(make_call) -> None:
    parts = ({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},)
    body = GEMINI.build_request(make_call(messages=(ChatMessage("user", parts),))).json_body
    assert body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]


def test_remote_image_url_is_a_bad_request(make_call) -> None:
    parts = ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},)
    with pytest.raises(UpstreamError) as raised:
        GEMINI.build_request(make_call(messages=(ChatMessage("user", parts),)))
    assert raised.value.error_class is ErrorClass.BAD_REQUEST


@pytest.mark.parametrize(
    ("setting", "thinking_config"),
    [
        (ThinkingSetting(ThinkingMode.OFF, ThinkingParam.THINKING_BUDGET, 0), {"thinkingBudget": 0}),
        (ThinkingSetting(ThinkingMode.OFF, ThinkingParam.THINKING_BUDGET, 128), {"thinkingBudget": 128}),
        (ThinkingSetting(ThinkingMode.ON, ThinkingParam.THINKING_BUDGET, -1), {"thinkingBudget": -1}),
        (ThinkingSetting(ThinkingMode.OFF, ThinkingParam.THINKING_LEVEL, "low"), {"thinkingLevel": "LOW"}),
        (ThinkingSetting(ThinkingMode.ON, ThinkingParam.THINKING_LEVEL, "high"), {"thinkingLevel": "HIGH"}),
    ],
)
def test_thinking_setting_becomes_thinking_config(make_call, setting, thinking_config) -> None:
    request = GEMINI.build_request(make_call(thinking=setting, options=GenerationOptions(max_tokens=50)))
    config = request.json_body["generationConfig"]
    assert config == {"maxOutputTokens": 50, "thinkingConfig": thinking_config}
    GenerateContentConfig.model_validate(config)  # google-genai 3.4 takes these names and values
    assert set(thinking_config) <= THINKING_ALIASES and "thinkingConfig" in CONFIG_ALIASES
    ((name, value),) = thinking_config.items()
    assert request.thinking == f"{setting.mode.value}: generationConfig.thinkingConfig.{name}={value}"


def test_thinking_config_is_left_default_without_a_thinking_ask(make_call) -> None:
    request = GEMINI.build_request(make_call())
    assert "thinkingConfig" not in request.json_body.get("generationConfig", {}) and request.thinking is None


def test_probe_gets_model_info(make_call, secret_key) -> None:
    request = GEMINI.build_probe(make_call(model="gemini-2.5-flash"))
    assert (request.method, request.json_body) == ("GET", None)
    assert request.url == "https://upstream.example/v1beta/models/gemini-2.5-flash"
    assert request.headers["x-goog-api-key"] == secret_key


def test_reply_skips_thought_parts_and_maps_usage(make_reply) -> None:
    completion = GEMINI.parse_reply(make_reply(200, RECORDED_RESPONSE))
    assert completion.content == "Hi! Need anything?"
    # thoughts are billed output Gemini leaves out of candidatesTokenCount: 5 + 27, total 40 = 8 + 32
    assert completion.usage == Usage(8, 32, 27) and completion.finish_reason is FinishReason.STOP
    assert completion.model_reported == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
    ],
)
def test_finish_reasons_are_mapped(make_reply, raw, expected) -> None:
    recorded = {**RECORDED_RESPONSE, "candidates": [{**RECORDED_RESPONSE["candidates"][0], "finishReason": raw}]}
    GenerateContentResponse.model_validate(recorded)
    assert GEMINI.parse_reply(make_reply(200, recorded)).finish_reason is expected


def test_blocked_prompt_is_empty_content_filter_completion(make_reply) -> None:
    completion = GEMINI.parse_reply(make_reply(200, RECORDED_BLOCKED))
    assert (completion.content, completion.finish_reason) == ("", FinishReason.CONTENT_FILTER)


def test_200_without_candidates_or_block_reason_is_server_error(make_reply) -> None:
    with pytest.raises(UpstreamError) as raised:
        GEMINI.parse_reply(make_reply(200, {"modelVersion": "gemini-2.5-flash"}))
    assert raised.value.error_class is ErrorClass.SERVER


def test_stream_decoder_yields_text_then_finish_with_usage_for_any_split(feed_split, to_sse) -> None:
    raw = to_sse(*RECORDED_CHUNKS).replace(b"\n", b"\r\n")  # Google frames SSE with CRLF
    deltas = feed_split(GEMINI.stream_decoder, raw)
    assert "".join(d.content for d in deltas) == "Einhörn ∞"
    assert [(d.finish_reason, d.usage) for d in deltas if d.finish_reason] == [(FinishReason.LENGTH, Usage(8, 4))]


def test_stream_error_event_raises(to_sse) -> None:
    raw = to_sse(RECORDED_CHUNKS[0], {"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}})
    with pytest.raises(UpstreamError) as raised:
        GEMINI.stream_decoder().feed(raw)
    assert raised.value.error_class is ErrorClass.RATE_LIMITED
