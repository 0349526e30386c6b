"""The embeddings translators as pure functions: requests built, recorded replies parsed, errors classified."""

from __future__ import annotations

import json

import pytest

from bkvy.core.upstream.embeddings import embedding_adapter_for
from bkvy.core.upstream.embeddings.gemini import GeminiEmbeddings
from bkvy.core.upstream.embeddings.ollama import OllamaEmbeddings
from bkvy.core.upstream.embeddings.openai import OpenAIEmbeddings
from bkvy.models.embeddings import EmbeddingCall, EmbeddingInput
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, ProviderType, UpstreamReply

TEXTS = EmbeddingInput(texts=("a", "b"), dimensions=8, user="u1")
TOKENS = EmbeddingInput(token_arrays=((1, 2), (3,)))


def _call(embedding: EmbeddingInput = TEXTS, *, base_url: str = "https://api.example.com", endpoint: str | None = None):
    return EmbeddingCall(base_url, "emb-model", "sk-secret", embedding, endpoint)


def _reply(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> UpstreamReply:
    return UpstreamReply(status, headers or {}, json.dumps(payload).encode())


def test_openai_request_asks_for_floats_and_passes_dimensions_and_user() -> None:
    request = OpenAIEmbeddings().build_request(_call())
    assert (request.method, request.url) == ("POST", "https://api.example.com/v1/embeddings")
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert request.json_body == {
        "model": "emb-model",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 8,
        "user": "u1",
    }


def test_openai_request_carries_token_arrays_and_keyless_servers_get_no_header() -> None:
    request = OpenAIEmbeddings().build_request(_call(TOKENS)._replace(api_key=""))
    assert request.json_body is not None and request.json_body["input"] == [[1, 2], [3]]
    assert "authorization" not in request.headers


def test_openai_reply_is_put_in_index_order_with_usage_and_hint() -> None:
    reply = _reply(
        {
            "object": "list",
            "data": [{"index": 1, "embedding": [0.5, 0.5]}, {"index": 0, "embedding": [1, 0]}],
            "model": "emb-model-v2",
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        },
        headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
    )
    embeddings = OpenAIEmbeddings().parse_reply(reply)
    assert embeddings.vectors == ((1.0, 0.0), (0.5, 0.5))
    assert (embeddings.input_tokens, embeddings.model_reported) == (7, "emb-model-v2")
    assert embeddings.rate_limit_hint is not None and embeddings.rate_limit_hint.reset_seconds == 2.0


@pytest.mark.parametrize(
    "payload",
    [
        {"data": "x"},
        {"data": [{"index": 0, "embedding": ["x"]}]},
        {"data": [{"index": 0, "embedding": []}]},
        {"data": [{"index": 0}]},
        {"data": [{"index": "zero", "embedding": [1]}]},
        [1, 2],
    ],
)
def test_openai_unreadable_replies_are_server_faults(payload: object) -> None:
    with pytest.raises(UpstreamError) as raised:
        OpenAIEmbeddings().parse_reply(_reply(payload))
    assert raised.value.error_class is ErrorClass.SERVER


def test_nan_or_infinity_is_not_a_vector() -> None:
    body = b'{"data": [{"index": 0, "embedding": [NaN, 1.0]}]}'
    with pytest.raises(UpstreamError):
        OpenAIEmbeddings().parse_reply(UpstreamReply(200, {}, body))


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, ErrorClass.RATE_LIMITED), (401, ErrorClass.AUTH), (400, ErrorClass.BAD_REQUEST), (503, ErrorClass.SERVER)],
)
def test_error_statuses_are_classified_like_chat(status: int, error_class: ErrorClass) -> None:
    reply = _reply({"error": {"type": "x", "message": "secret text"}}, status, {"retry-after": "4"})
    for translator in (OpenAIEmbeddings(), GeminiEmbeddings(), OllamaEmbeddings()):
        with pytest.raises(UpstreamError) as raised:
            translator.parse_reply(reply)
        assert raised.value.error_class is error_class and "secret" not in raised.value.message
        if status == 429:
            assert raised.value.retry_after_seconds == 4.0


def test_gemini_one_text_uses_embed_content_and_several_batch() -> None:
    one = GeminiEmbeddings().build_request(_call(EmbeddingInput(texts=("a",), dimensions=8)))
    assert one.url == "https://api.example.com/v1beta/models/emb-model:embedContent"
    assert one.json_body == {
        "model": "models/emb-model",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 8,
    }
    assert one.headers["x-goog-api-key"] == "sk-secret" and "sk-secret" not in one.url
    batch = GeminiEmbeddings().build_request(_call())
    assert batch.url.endswith("/v1beta/models/emb-model:batchEmbedContents")
    assert batch.json_body is not None and [r["content"]["parts"][0]["text"] for r in batch.json_body["requests"]] == [
        "a",
        "b",
    ]


def test_gemini_endpoint_override_always_takes_the_batch_body() -> None:
    request = GeminiEmbeddings().build_request(
        _call(EmbeddingInput(texts=("a",)), endpoint="/v1/models/emb-model:batchEmbedContents")
    )
    assert request.url.endswith("/v1/models/emb-model:batchEmbedContents")
    assert request.json_body is not None and len(request.json_body["requests"]) == 1


def test_gemini_replies_single_and_batch_with_optional_usage() -> None:
    single = GeminiEmbeddings().parse_reply(_reply({"embedding": {"values": [0.1, 0.2]}}))
    assert single.vectors == ((0.1, 0.2),) and single.input_tokens is None
    batch = GeminiEmbeddings().parse_reply(
        _reply({"embeddings": [{"values": [1]}, {"values": [2]}], "usageMetadata": {"promptTokenCount": 5}})
    )
    assert batch.vectors == ((1.0,), (2.0,)) and batch.input_tokens == 5


def test_ollama_request_and_reply() -> None:
    request = OllamaEmbeddings().build_request(_call(base_url="http://localhost:11434"))
    assert request.url == "http://localhost:11434/api/embed"
    assert request.json_body == {"model": "emb-model", "input": ["a", "b"], "dimensions": 8}
    assert "authorization" not in request.headers
    reply = OllamaEmbeddings().parse_reply(
        _reply({"model": "emb-model", "embeddings": [[0.1], [0.2]], "prompt_eval_count": 4})
    )
    assert reply.vectors == ((0.1,), (0.2,)) and reply.input_tokens == 4


@pytest.mark.parametrize("translator", [GeminiEmbeddings(), OllamaEmbeddings()])
def test_text_only_formats_refuse_token_arrays_as_a_bad_request(translator) -> None:
    with pytest.raises(UpstreamError) as raised:
        translator.build_request(_call(TOKENS))
    assert raised.value.error_class is ErrorClass.BAD_REQUEST


def test_probes_embed_one_word() -> None:
    probe = OpenAIEmbeddings().build_probe(_call())
    assert probe.json_body is not None and probe.json_body["input"] == ["ping"]
    assert GeminiEmbeddings().build_probe(_call()).url.endswith(":embedContent")


def test_every_embedding_type_has_a_translator_and_anthropic_none() -> None:
    for provider_type in (
        ProviderType.OPENAI,
        ProviderType.OPENAI_COMPATIBLE,
        ProviderType.GEMINI,
        ProviderType.OLLAMA,
    ):
        assert embedding_adapter_for(provider_type) is not None
    with pytest.raises(KeyError):
        embedding_adapter_for(ProviderType.ANTHROPIC)
