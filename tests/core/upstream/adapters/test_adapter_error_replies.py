"""Every adapter classifies every kind of failed reply the same way (SPEC §6), from status and headers."""

from __future__ import annotations

import pytest
from anthropic.types import ErrorResponse

from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, ProviderType

_OPENAI_ERROR = {
    "error": {
        "message": "You said 'Hello there' with sk-test-SECRET-4f2a9c",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
ERROR_BODIES = {
    ProviderType.OPENAI: _OPENAI_ERROR,
    ProviderType.OPENAI_COMPATIBLE: _OPENAI_ERROR,
    ProviderType.ANTHROPIC: {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Hello there sk-test-SECRET-4f2a9c"},
    },
    ProviderType.GEMINI: {
        "error": {"code": 429, "message": "Hello there sk-test-SECRET-4f2a9c", "status": "RESOURCE_EXHAUSTED"}
    },
    ProviderType.OLLAMA: {"error": "Hello there sk-test-SECRET-4f2a9c"},
}
CASES = [  # (status, headers, error class, retry_after_seconds)
    (401, {}, ErrorClass.AUTH, None),
    (403, {}, ErrorClass.AUTH, None),
    (429, {"retry-after": "7"}, ErrorClass.RATE_LIMITED, 7.0),
    (429, {"retry-after-ms": "250"}, ErrorClass.RATE_LIMITED, 0.25),
    (429, {"x-ratelimit-reset-requests": "6m0s"}, ErrorClass.RATE_LIMITED, 360.0),
    (
        429,
        {"anthropic-ratelimit-requests-reset": "2026-01-01T00:01:00Z", "date": "Thu, 01 Jan 2026 00:00:00 GMT"},
        ErrorClass.RATE_LIMITED,
        60.0,
    ),
    (500, {}, ErrorClass.SERVER, None),
    (503, {"retry-after": "3"}, ErrorClass.SERVER, 3.0),
    (529, {}, ErrorClass.SERVER, None),
    (504, {}, ErrorClass.TIMEOUT, None),
    (400, {}, ErrorClass.BAD_REQUEST, None),
    (413, {}, ErrorClass.BAD_REQUEST, None),
]


def test_anthropic_error_body_matches_the_sdk_type() -> None:
    ErrorResponse.model_validate({**ERROR_BODIES[ProviderType.ANTHROPIC], "request_id": "req_1"})


@pytest.mark.parametrize("provider_type", list(ProviderType))
@pytest.mark.parametrize(("status", "headers", "error_class", "retry_after"), CASES)
def test_failed_reply_is_classified(make_reply, provider_type, status, headers, error_class, retry_after) -> None:
    with pytest.raises(UpstreamError) as raised:
        adapter_for(provider_type).parse_reply(make_reply(status, ERROR_BODIES[provider_type], headers))
    error = raised.value
    assert (error.error_class, error.status, error.retry_after_seconds) == (error_class, status, retry_after)
    assert "SECRET" not in error.message and "Hello there" not in error.message
    assert str(status) in error.message


@pytest.mark.parametrize("provider_type", list(ProviderType))
@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'{"unexpected": true}'])
def test_malformed_200_body_is_a_server_error(make_reply, provider_type, body) -> None:
    with pytest.raises(UpstreamError) as raised:
        adapter_for(provider_type).parse_reply(make_reply(200, body))
    assert raised.value.error_class is ErrorClass.SERVER and raised.value.status == 200


def test_vendor_error_type_is_kept_in_message(make_reply) -> None:
    with pytest.raises(UpstreamError) as raised:
        adapter_for(ProviderType.ANTHROPIC).parse_reply(make_reply(529, ERROR_BODIES[ProviderType.ANTHROPIC]))
    assert raised.value.message == "upstream status 529 (overloaded_error)"


def test_gemini_resource_exhausted_is_rate_limited(make_reply) -> None:
    with pytest.raises(UpstreamError) as raised:
        adapter_for(ProviderType.GEMINI).parse_reply(make_reply(429, ERROR_BODIES[ProviderType.GEMINI]))
    assert raised.value.error_class is ErrorClass.RATE_LIMITED and "RESOURCE_EXHAUSTED" in raised.value.message


# How each vendor reports a model it does not know (or has retired), as its API sends it.
MODEL_NOT_FOUND_BODIES = {
    ProviderType.OPENAI: {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    },
    # vLLM; Ollama's OpenAI-compatible route sends the OpenAI shape with "type": "api_error"
    ProviderType.OPENAI_COMPATIBLE: {
        "error": {"message": "The model `m` does not exist.", "type": "NotFoundError", "param": None, "code": 404}
    },
    ProviderType.ANTHROPIC: {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}},
    ProviderType.GEMINI: {
        "error": {
            "code": 404,
            "message": "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.",
            "status": "NOT_FOUND",
        }
    },
    ProviderType.OLLAMA: {"error": "model 'llama9' not found, try pulling it first"},
}


def test_anthropic_not_found_body_matches_the_sdk_type() -> None:
    ErrorResponse.model_validate({**MODEL_NOT_FOUND_BODIES[ProviderType.ANTHROPIC], "request_id": "req_1"})


@pytest.mark.parametrize("provider_type", list(ProviderType))
def test_a_404_for_the_model_is_not_found(make_reply, provider_type) -> None:
    with pytest.raises(UpstreamError) as raised:
        adapter_for(provider_type).parse_reply(make_reply(404, MODEL_NOT_FOUND_BODIES[provider_type]))
    assert raised.value.error_class is ErrorClass.NOT_FOUND and raised.value.status == 404
    assert raised.value.error_class.is_retryable  # fail over: the client's input was fine


@pytest.mark.parametrize("provider_type", list(ProviderType))
@pytest.mark.parametrize("body", [b"404 page not found", b"<html>Not Found</html>", b'{"detail": "Not Found"}', b""])
def test_a_404_the_vendor_api_did_not_send_is_a_server_fault(make_reply, provider_type, body) -> None:
    """A wrong base_url/endpoint or a proxy in front: not the model, and not the client's input."""
    with pytest.raises(UpstreamError) as raised:
        adapter_for(provider_type).parse_reply(make_reply(404, body))
    assert raised.value.error_class is ErrorClass.SERVER and raised.value.status == 404
