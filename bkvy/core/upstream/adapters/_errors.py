"""Upstream status, headers and body -> ``UpstreamError``; retry-after and rate-limit hints.

Everything here is pure. Dates in headers (an HTTP-date ``retry-after``, Anthropic's RFC 3339
resets) are measured against ``now_wall`` when given, else against the reply's own ``date``
header: the server's clock, which also sidesteps skew between our clock and theirs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, RateLimitHint

_TIMEOUT_STATUSES = frozenset({408, 504, 524, 598})
_BAD_REQUEST_STATUSES = frozenset({400, 405, 409, 413, 415, 422})
# A vendor's error type or status word, when there is no HTTP status (stream error events).
_VENDOR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "not_found_error": 404,
    "NOT_FOUND": 404,
    "request_too_large": 413,
    "authentication_error": 401,
    "UNAUTHENTICATED": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "PERMISSION_DENIED": 403,
    "rate_limit_error": 429,
    "RESOURCE_EXHAUSTED": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "timeout_error": 504,
    "DEADLINE_EXCEEDED": 504,
    "api_error": 500,
    "server_error": 500,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "overloaded_error": 529,
    "billing_error": 402,
    "conflict_error": 409,
}
# A vendor's error type or code, by the shapes the vendors use (their SDKs and docs): OpenAI and Anthropic
# lower_snake words ("invalid_request_error", "context_length_exceeded"), Gemini UPPER_SNAKE statuses
# ("RESOURCE_EXHAUSTED"), vLLM CamelCase class names ("NotFoundError"), a short number ("429"). Words are
# letters only: a key ("sk-...", "AIza...", a hex or base64 token) holds digits or a dash and never passes.
_SAFE_CODE = re.compile(
    r"[a-z]{1,24}(?:_[a-z]{1,24}){0,7}|[A-Z]{1,24}(?:_[A-Z]{1,24}){0,7}|(?:[A-Z][a-z]{1,15}){1,6}|[0-9]{3}"
)
_MAX_CODE_CHARS = 64
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RETRY_AFTER_RESET_HEADERS = (
    "x-ratelimit-reset-requests",
    "anthropic-ratelimit-requests-reset",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-tokens-reset",
)


class _HintHeaders(NamedTuple):
    """One vendor's rate-limit header names: remaining and reset per budget; "" for a budget it does not send."""

    requests: str
    requests_reset: str
    tokens: str
    tokens_reset: str
    input_tokens: str = ""
    input_tokens_reset: str = ""
    output_tokens: str = ""
    output_tokens_reset: str = ""


# OpenAI sends one token budget ("x-ratelimit-reset-tokens": a duration, "6m0s"); Anthropic three (the total,
# input and output), its resets in RFC 3339. Both checked against the vendors' rate-limit docs.
_HINT_NAMES = (
    _HintHeaders(
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ),
    _HintHeaders(
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ),
)
_ANY_HINT_HEADER = frozenset(name for names in _HINT_NAMES for name in names if name)
_NO_TOKEN_BUDGETS = (None, None, None, None)


def classify_status(status: int) -> ErrorClass:
    """The one rule from HTTP status to ``ErrorClass`` (SPEC §6)."""
    if status in (401, 402, 403):  # 402: the key has no credit left, like a bad key
        return ErrorClass.AUTH
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status in _TIMEOUT_STATUSES:
        return ErrorClass.TIMEOUT
    if status == 404:  # a chat or embeddings call names one resource: the model (see ``_class_of``)
        return ErrorClass.NOT_FOUND
    if status in _BAD_REQUEST_STATUSES or 400 <= status < 500:
        return ErrorClass.BAD_REQUEST
    return ErrorClass.SERVER  # 5xx, 529 overloaded, and any unexpected 1xx/3xx


def upstream_error(
    status: int, headers: Mapping[str, str], body: bytes, *, now_wall: float | None = None
) -> UpstreamError:
    """Classify a non-2xx reply. The message holds the status and the vendor's error code only."""
    payload = _loads_or_none(body)
    vendor_code = _vendor_error_code(payload)
    return UpstreamError(
        _class_of(status, payload),
        _message(status, vendor_code),
        status=status,
        retry_after_seconds=retry_after_seconds(headers, now_wall=now_wall),
    )


def _class_of(status: int, payload: Any) -> ErrorClass:
    """``classify_status``, except for a 404 that the vendor's API did not answer itself.

    Every vendor answers a call naming an unknown or retired model with 404 and its own JSON error envelope:
    OpenAI ``{"error": {"type": "invalid_request_error", "code": "model_not_found"}}``, Anthropic
    ``{"type": "error", "error": {"type": "not_found_error"}}``, Gemini ``{"error": {"status": "NOT_FOUND"}}``,
    Ollama ``{"error": "model 'x' not found"}`` (its OpenAI-compatible route: ``type: "api_error"``), vLLM
    ``type: "NotFoundError"``. The path of a chat or embeddings call is fixed, so that 404 is about the model.
    A 404 without that envelope (an HTML or plain-text page, a framework's ``{"detail": "Not Found"}``) comes
    from something in front of the API or a wrong ``base_url``/``endpoint``: not the model, not the client's
    input (it cannot choose an upstream URL), so a server fault: fail over, and the circuit counts it.
    """
    error_class = classify_status(status)
    if error_class is ErrorClass.NOT_FOUND and not (isinstance(payload, Mapping) and "error" in payload):
        return ErrorClass.SERVER
    return error_class


def error_from_event(payload: Mapping[str, Any]) -> UpstreamError:
    """Classify an error carried inside a stream (no HTTP status: use the vendor's type word)."""
    vendor_code = _vendor_error_code(payload)
    status = _VENDOR_TYPE_STATUS.get(vendor_code or "", 500)
    return UpstreamError(classify_status(status), "stream error event " + _message(status, vendor_code), status=status)


def unparseable_reply(status: int) -> UpstreamError:
    return UpstreamError(ErrorClass.SERVER, f"upstream status {status}: unparseable body", status=status)


def json_object_or_raise(status: int, body: bytes) -> dict[str, Any]:
    """Decode a 2xx body; anything but a JSON object is a server fault."""
    payload = _loads_or_none(body)
    if not isinstance(payload, dict):
        raise unparseable_reply(status)
    return payload


def retry_after_seconds(headers: Mapping[str, str], *, now_wall: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``retry-after`` or the vendors' reset headers."""
    ms = _float_or_none(headers.get("retry-after-ms"))
    if ms is not None:
        return max(ms / 1000.0, 0.0)
    raw = headers.get("retry-after")
    if raw is not None:
        seconds = _float_or_none(raw)
        if seconds is None:
            seconds = _seconds_until(_parse_http_date(raw), headers, now_wall)
        if seconds is not None:
            return max(seconds, 0.0)
    for name in _RETRY_AFTER_RESET_HEADERS:
        seconds = _reset_seconds(headers.get(name), headers, now_wall)
        if seconds is not None:
            return seconds
    return None


def rate_limit_hint(headers: Mapping[str, str], *, now_wall: float | None = None) -> RateLimitHint | None:
    """Remaining request and token budgets and their resets, from OpenAI's ``x-ratelimit-*`` or Anthropic's
    ``anthropic-ratelimit-*`` headers (tokens: the total, and Anthropic's input and output); None when absent."""
    if headers.keys().isdisjoint(_ANY_HINT_HEADER):  # most replies carry none: 0.2 µs, not 1.2 (timeit)
        return None
    for names in _HINT_NAMES:
        remaining = _int_or_none(headers.get(names.requests))
        reset = _reset_seconds(headers.get(names.requests_reset), headers, now_wall)
        tokens = _token_budgets(headers, names, now_wall)
        if remaining is not None or reset is not None or tokens is not None:
            return RateLimitHint(remaining, reset, *(tokens or _NO_TOKEN_BUDGETS))
    return None


def _token_budgets(
    headers: Mapping[str, str], names: _HintHeaders, now_wall: float | None
) -> tuple[int | None, int | None, int | None, float | None] | None:
    """(total, input, output remaining, the latest of their resets) from a vendor's token headers; None when
    it sent none."""
    total = _int_or_none(headers.get(names.tokens))
    input_tokens = _int_or_none(headers.get(names.input_tokens))
    output_tokens = _int_or_none(headers.get(names.output_tokens))
    resets = [
        seconds
        for name in (names.tokens_reset, names.input_tokens_reset, names.output_tokens_reset)
        if (seconds := _reset_seconds(headers.get(name), headers, now_wall)) is not None
    ]
    if total is None and input_tokens is None and output_tokens is None and not resets:
        return None
    return total, input_tokens, output_tokens, max(resets, default=None)


def parse_duration_seconds(raw: str) -> float | None:
    """OpenAI's Go-style durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``."""
    text = raw.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _reset_seconds(raw: str | None, headers: Mapping[str, str], now_wall: float | None) -> float | None:
    if raw is None:
        return None
    seconds = parse_duration_seconds(raw)
    if seconds is None:
        seconds = _float_or_none(raw)
    if seconds is None:
        seconds = _seconds_until(_parse_rfc3339(raw), headers, now_wall)
    return None if seconds is None else max(seconds, 0.0)


def _seconds_until(moment: datetime | None, headers: Mapping[str, str], now_wall: float | None) -> float | None:
    if moment is None:
        return None
    if now_wall is None:
        server_now = _parse_http_date(headers.get("date", ""))
        if server_now is None:
            return None
        now_wall = server_now.timestamp()
    return moment.timestamp() - now_wall


def _parse_http_date(raw: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_rfc3339(raw: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _vendor_error_code(payload: Any) -> str | None:
    """OpenAI ``error.type/code``, Anthropic ``error.type``, Gemini ``error.status``; never the message."""
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if not isinstance(error, Mapping):
        return None
    for name in ("status", "type", "code"):
        value = error.get(name)
        if isinstance(value, str) and len(value) <= _MAX_CODE_CHARS and _SAFE_CODE.fullmatch(value):
            return value
    return None


def _message(status: int, vendor_code: str | None) -> str:
    return f"upstream status {status}" + (f" ({vendor_code})" if vendor_code else "")


def _loads_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _float_or_none(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
