"""The one status -> ErrorClass rule, retry-after parsing and rate-limit hints."""

from __future__ import annotations

import json

import pytest

from bkvy.core.upstream.adapters._errors import (
    classify_status,
    error_from_event,
    parse_duration_seconds,
    rate_limit_hint,
    retry_after_seconds,
    upstream_error,
)
from bkvy.models.types import ErrorClass, RateLimitHint

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ErrorClass.AUTH),
        (403, ErrorClass.AUTH),
        (402, ErrorClass.AUTH),
        (429, ErrorClass.RATE_LIMITED),
        (408, ErrorClass.TIMEOUT),
        (504, ErrorClass.TIMEOUT),
        (524, ErrorClass.TIMEOUT),
        (500, ErrorClass.SERVER),
        (502, ErrorClass.SERVER),
        (503, ErrorClass.SERVER),
        (529, ErrorClass.SERVER),
        (400, ErrorClass.BAD_REQUEST),
        (404, ErrorClass.NOT_FOUND),
        (413, ErrorClass.BAD_REQUEST),
        (422, ErrorClass.BAD_REQUEST),
        (418, ErrorClass.BAD_REQUEST),
        (302, ErrorClass.SERVER),
        (101, ErrorClass.SERVER),
    ],
)
def test_status_maps_to_error_class(status: int, expected: ErrorClass) -> None:
    assert classify_status(status) is expected


def test_retry_after_seconds_is_parsed() -> None:
    assert retry_after_seconds({"retry-after": "12"}) == 12.0


def test_429_retry_after_ms_is_parsed_and_wins_over_retry_after() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_http_date_uses_now_wall() -> None:
    headers = {"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}
    assert retry_after_seconds(headers, now_wall=NOW) == 30.0


def test_retry_after_http_date_falls_back_to_server_date_header() -> None:
    headers = {"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT", "date": "Thu, 01 Jan 2026 00:00:10 GMT"}
    assert retry_after_seconds(headers) == 20.0


def test_retry_after_http_date_without_any_clock_is_none() -> None:
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}) is None


def test_retry_after_in_the_past_is_zero() -> None:
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 00:00:00 GMT"}, now_wall=NOW + 60) == 0.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
    ],
)
def test_openai_reset_durations_are_parsed(raw: str, seconds: float) -> None:
    assert parse_duration_seconds(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["", "soon", "1x", "5s later", "s"])
def test_garbage_durations_are_rejected(raw: str) -> None:
    assert parse_duration_seconds(raw) is None


def test_429_openai_vendor_reset_header_gives_retry_after() -> None:
    assert retry_after_seconds({"x-ratelimit-reset-requests": "6m0s"}) == 360.0


def test_429_anthropic_rfc3339_reset_gives_retry_after() -> None:
    headers = {"anthropic-ratelimit-requests-reset": "2026-01-01T00:00:42Z"}
    assert retry_after_seconds(headers, now_wall=NOW) == 42.0


def test_no_retry_headers_means_none() -> None:
    assert retry_after_seconds({"content-type": "application/json"}) is None


def test_unparseable_retry_after_falls_through_to_vendor_header() -> None:
    assert retry_after_seconds({"retry-after": "soon", "x-ratelimit-reset-requests": "2s"}) == 2.0


def test_openai_rate_limit_hint_from_headers() -> None:
    headers = {"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s"}
    assert rate_limit_hint(headers) == RateLimitHint(remaining_requests=59, reset_seconds=1.0)


def test_anthropic_rate_limit_hint_from_headers() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:05Z",
    }
    assert rate_limit_hint(headers, now_wall=NOW) == RateLimitHint(remaining_requests=3, reset_seconds=5.0)


def test_openai_token_budget_in_the_hint() -> None:
    # As OpenAI's rate-limit guide lists them: one token budget, its reset a Go-style duration.
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert rate_limit_hint(headers) == RateLimitHint(59, 1.0, remaining_tokens=149984, tokens_reset_seconds=360.0)


def test_anthropic_input_and_output_token_budgets_in_the_hint() -> None:
    # Anthropic's header set on a 200 (tokens, input-tokens, output-tokens; resets in RFC 3339).
    headers = {
        "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
        "anthropic-ratelimit-tokens-remaining": "96000",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:02Z",
        "anthropic-ratelimit-input-tokens-remaining": "80000",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:02Z",
        "anthropic-ratelimit-output-tokens-remaining": "500",
        "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:07Z",
    }
    assert rate_limit_hint(headers, now_wall=NOW) == RateLimitHint(
        remaining_requests=999,
        reset_seconds=1.0,
        remaining_tokens=96000,
        remaining_input_tokens=80000,
        remaining_output_tokens=500,
        tokens_reset_seconds=7.0,  # the latest of the three: until then some budget may still be short
    )


def test_token_headers_alone_make_a_hint() -> None:
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5s"}
    assert rate_limit_hint(headers) == RateLimitHint(remaining_tokens=0, tokens_reset_seconds=1.5)


def test_no_rate_limit_headers_means_no_hint() -> None:
    assert rate_limit_hint({"server": "nginx"}) is None


def test_error_message_keeps_vendor_code_but_never_the_upstream_message() -> None:
    body = json.dumps(
        {
            "error": {
                "message": "Incorrect API key provided: sk-test-SECRET",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        }
    ).encode()
    error = upstream_error(401, {}, body)
    assert error.error_class is ErrorClass.AUTH and error.status == 401
    assert "invalid_request_error" in error.message and "SECRET" not in error.message


def test_vendor_code_with_odd_characters_is_dropped_from_message() -> None:
    body = json.dumps({"error": {"type": "you said: hello there"}}).encode()
    assert upstream_error(400, {}, body).message == "upstream status 400"


@pytest.mark.parametrize(
    ("vendor_type", "expected"),
    [
        ("overloaded_error", ErrorClass.SERVER),
        ("rate_limit_error", ErrorClass.RATE_LIMITED),
        ("RESOURCE_EXHAUSTED", ErrorClass.RATE_LIMITED),
        ("authentication_error", ErrorClass.AUTH),
        ("invalid_request_error", ErrorClass.BAD_REQUEST),
        ("something_new", ErrorClass.SERVER),
    ],
)
def test_stream_error_event_is_classified_by_vendor_type(vendor_type: str, expected: ErrorClass) -> None:
    assert error_from_event({"error": {"type": vendor_type}}).error_class is expected


@pytest.mark.parametrize(
    "code",
    [
        "invalid_request_error",  # OpenAI and Anthropic types
        "memory_precondition_failed_error",
        "context_length_exceeded",  # OpenAI codes
        "RESOURCE_EXHAUSTED",  # Gemini statuses
        "NotFoundError",  # vLLM
        "429",
    ],
)
def test_vendor_codes_of_the_known_shapes_are_kept(code: str) -> None:
    body = json.dumps({"error": {"type": code}}).encode()
    assert upstream_error(400, {}, body).message == f"upstream status 400 ({code})"


@pytest.mark.parametrize(
    "code",
    [
        "sk-proj-Abc123Def456Ghi789",  # key shapes: a dash, digits
        "AIzaSyD3fG7hJ9kL2mN4pQ6rS8tU0vW",
        "gsk_4f9a8b7c6d5e4f3a2b1c",
        "0123456789abcdef0123456789abcdef",
        "bkvy-sk-abcdef",
        "x" * 25,  # a word longer than any vendor's
        "a_b_c_d_e_f_g_h_i",  # more words than any vendor's
        "Bearer token",
    ],
)
def test_a_vendor_code_that_could_be_a_key_is_dropped(code: str) -> None:
    """Issue 16: an upstream that puts its key in ``error.type`` must not have it relayed in the message."""
    body = json.dumps({"error": {"type": code, "code": code, "status": code}}).encode()
    assert upstream_error(400, {}, body).message == "upstream status 400"
    assert error_from_event({"error": {"type": code}}).message == "stream error event upstream status 500"
