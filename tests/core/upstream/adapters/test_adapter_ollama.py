"""Ollama native adapter on recorded replies (no SDK installed: fixtures follow Ollama's API docs)."""

from __future__ import annotations

import json

import pytest

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting
from bkvy.models.types import ChatMessage, ErrorClass, FinishReason, GenerationOptions, ProviderType, Usage

OLLAMA = adapter_for(ProviderType.OLLAMA)

RECORDED_CHAT = {
    "model": "llama3.2",
    "created_at": "2025-10-17T23:14:07.414671Z",
    "message": {"role": "assistant", "content": "Hello! How are you?"},
    "done": True,
    "done_reason": "stop",
    "total_duration": 5191566416,
    "load_duration": 2154458,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 383809000,
    "eval_count": 298,
    "eval_duration": 4799921000,
}
RECORDED_LINES = [
    {
        "model": "llama3.2",
        "created_at": "2025-10-17T23:14:07Z",
        "message": {"role": "assistant", "content": "Ça"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2025-10-17T23:14:07Z",
        "message": {"role": "assistant", "content": " va"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2025-10-17T23:14:08Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 11,
        "eval_count": 2,
    },
]


def _ndjson(*lines: dict) -> bytes:
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


def test_request_url_headers_and_body(make_call, secret_key) -> None:
    call = make_call(
        base_url="http://127.0.0.1:11434",
        model="qwen3",
        options=GenerationOptions(max_tokens=99, temperature=0.7, top_p=0.9, stop=("</s>",), json_mode=True),
    )
    request = OLLAMA.build_request(call)
    assert (request.method, request.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert secret_key not in json.dumps(request.headers) and "authorization" not in request.headers
    assert request.json_body == {
        "model": "qwen3",
        "stream": False,
        "format": "json",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        "options": {"num_predict": 99, "temperature": 0.7, "top_p": 0.9, "stop": ["</s>"]},
    }


def test_streaming_request_sets_stream_true(make_call) -> None:
    assert OLLAMA.build_request(make_call(stream=True)).json_body["stream"] is True


@pytest.mark.parametrize(
    ("setting", "think"),
    [
        (ThinkingSetting(ThinkingMode.OFF, ThinkingParam.THINK, False), False),
        (ThinkingSetting(ThinkingMode.ON, ThinkingParam.THINK, True), True),
        (ThinkingSetting(ThinkingMode.OFF, ThinkingParam.THINK, "low"), "low"),  # gpt-oss: a level, never off
    ],
)
def test_thinking_setting_becomes_think(make_call, setting, think) -> None:
    request = OLLAMA.build_request(make_call(thinking=setting))
    assert request.json_body["think"] == think and type(request.json_body["think"]) is type(think)
    shown = str(think).lower() if isinstance(think, bool) else think
    assert request.thinking == f"{setting.mode.value}: think={shown}"


def test_no_think_without_a_thinking_ask(make_call) -> None:
    request = OLLAMA.build_request(make_call())
    assert "think" not in request.json_body and request.thinking is None


def test_data_url_image_goes_into_images(make_call) -> None:
    parts = (
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
    )
    message = OLLAMA.build_request(make_call(messages=(ChatMessage("user", parts),))).json_body["messages"][0]
    assert message == {"role": "user", "content": "what", "images": ["QUJD"]}


def test_probe_gets_the_version(make_call) -> None:
    request = OLLAMA.build_probe(make_call(base_url="http://127.0.0.1:11434/"))
    assert (request.method, request.url, request.json_body) == ("GET", "http://127.0.0.1:11434/api/version", None)


def test_reply_maps_content_usage_and_finish(make_reply) -> None:
    completion = OLLAMA.parse_reply(make_reply(200, RECORDED_CHAT))
    assert completion.content == "Hello! How are you?"
    assert completion.usage == Usage(26, 298) and completion.finish_reason is FinishReason.STOP
    assert completion.model_reported == "llama3.2"


def test_length_done_reason_maps_to_length(make_reply) -> None:
    completion = OLLAMA.parse_reply(make_reply(200, {**RECORDED_CHAT, "done_reason": "length"}))
    assert completion.finish_reason is FinishReason.LENGTH


def test_stream_decoder_yields_text_then_finish_with_usage_for_any_split(feed_split) -> None:
    deltas = feed_split(OLLAMA.stream_decoder, _ndjson(*RECORDED_LINES))
    assert "".join(d.content for d in deltas) == "Ça va"
    assert deltas[-1].finish_reason is FinishReason.LENGTH and deltas[-1].usage == Usage(11, 2)


def test_stream_error_line_raises() -> None:
    with pytest.raises(UpstreamError) as raised:
        OLLAMA.stream_decoder().feed(_ndjson(RECORDED_LINES[0], {"error": "model runner has unexpectedly stopped"}))
    assert raised.value.error_class is ErrorClass.SERVER
