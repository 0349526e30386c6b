"""OpenAI's shapes: the model name → a route, results → ChatCompletion, deltas → ChatCompletionChunk SSE,
errors → ``{"error": {message, type, code, param}}``. Pure functions; the routes do the I/O."""

from __future__ import annotations

import json
from typing import Any

from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.executor import ExecutionResult
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.upstream.adapters import StreamDelta
from bkvy.models.errors import UnknownModel
from bkvy.models.types import IntelligenceLevel, RoutingMethod, ToolCall, Usage

# "auto" is classified by the routes (``api.classification``); medium is only its level before that.
VIRTUAL_LEVELS = {
    "auto": IntelligenceLevel.MEDIUM,
    "low": IntelligenceLevel.LOW,
    "medium": IntelligenceLevel.MEDIUM,
    "high": IntelligenceLevel.HIGH,
}
SCENARIO_PREFIX = "scenario:"
SSE_DONE = b"data: [DONE]\n\n"

# OpenAI's error "type" per status: the SDK picks its exception class by status, clients log the type.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def route_for_model(
    model: str,
    config: GatewayConfig,
    *,
    max_wait_seconds: float | None,
    input_tokens_estimate: int,
    output_tokens_estimate: int,
    needs_json: bool = False,
    affinity_key: str | None = None,
) -> RouteRequest:
    """``auto``, ``low|medium|high``, ``scenario:NAME``, ``provider/model`` or a bare model name; ``needs_json``
    (a ``json_schema`` response_format) keeps only models with the "json" capability.

    Raises UnknownModel (404) for a name no provider serves; unknown scenarios raise at planning.
    """
    common: dict[str, Any] = {
        "max_wait_seconds": max_wait_seconds,
        "input_tokens_estimate": input_tokens_estimate,
        "output_tokens_estimate": output_tokens_estimate,
        "needs_json": needs_json,
        "affinity_key": affinity_key,  # ``session_id``, else ``user``: which replica of a replicated model
    }
    if model in VIRTUAL_LEVELS:
        return RouteRequest(RoutingMethod.INTELLIGENCE, level=VIRTUAL_LEVELS[model], **common)
    if model.startswith(SCENARIO_PREFIX):
        return RouteRequest(RoutingMethod.SCENARIO, scenario=model.removeprefix(SCENARIO_PREFIX), **common)
    provider_name, _, model_name = model.partition("/")
    provider = config.providers.get(provider_name)
    if model_name and provider is not None and model_name in provider.models:
        return RouteRequest(RoutingMethod.DIRECT, provider=provider_name, model=model_name, **common)
    for name, candidate in config.providers.items():  # a bare name: the first provider (config order) serving it
        if model in candidate.models:
            return RouteRequest(RoutingMethod.DIRECT, provider=name, model=model, **common)
    raise UnknownModel(f"no provider serves model {model!r}; see GET /v1/models", param="model")


def _model_json(model_id: str, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by}


def model_list(config: GatewayConfig) -> dict[str, Any]:
    """``GET /v1/models``: every ``provider/model``, then the virtual names."""
    data = [
        _model_json(f"{provider_name}/{model_name}", provider_name)
        for provider_name, provider in config.providers.items()
        for model_name in provider.models
    ]
    virtual = [*VIRTUAL_LEVELS, *(SCENARIO_PREFIX + name for name in config.routing.scenarios)]
    data += [_model_json(name, "bkvy") for name in virtual]
    return {"object": "list", "data": data}


def model_of(model_id: str, config: GatewayConfig) -> dict[str, Any]:
    """``GET /v1/models/{id}``: a listed id, or a bare model name as ``model`` takes it (the first provider, in
    config order, that serves it). Raises UnknownModel (404) otherwise."""
    for entry in model_list(config)["data"]:
        if entry["id"] == model_id:
            return entry
    for provider_name, provider in config.providers.items():
        if model_id in provider.models:
            return _model_json(model_id, provider_name)
    raise UnknownModel(f"no model {model_id[:256]!r}; see GET /v1/models", param="model")


def request_id_headers(request_id: str) -> dict[str, str]:
    """Every /v1 reply names its request: ``x-request-id`` is what the openai SDK reads (``_request_id``, an
    error's ``request_id``); ``x-bkvy-request-id`` is bkvy's own name, kept on every API."""
    return {"x-bkvy-request-id": request_id, "x-request-id": request_id}


def decision_headers(request_id: str, provider: str, model: str, reason: str, is_hedged: bool) -> dict[str, str]:
    headers = {
        **request_id_headers(request_id),
        "x-bkvy-provider": provider,
        "x-bkvy-model": model,
        "x-bkvy-decision-reason": reason,
    }
    if is_hedged:
        headers["x-bkvy-hedged"] = "true"  # a hedge raced this answer (SPEC §6)
    return headers


def _usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage: ``completion_tokens`` is the billed output, reasoning included, as OpenAI counts it."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_calls_json(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in calls
    ]


def completion_json(request_id: str, created: int, result: ExecutionResult) -> dict[str, Any]:
    """A ``ChatCompletion`` object."""
    completion = result.completion
    message: dict[str, Any] = {"role": "assistant", "content": completion.content, "refusal": None}
    if completion.tool_calls:
        message["tool_calls"] = _tool_calls_json(completion.tool_calls)
        message["content"] = completion.content or None
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": result.candidate.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason.value}
        ],
        "usage": _usage_json(completion.usage),
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ChunkWriter:
    """Turns deltas into ``ChatCompletionChunk`` SSE events, one delta at a time (nothing is buffered)."""

    def __init__(self, request_id: str, created: int, model: str, *, include_usage: bool) -> None:
        self._envelope = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        self._has_role = False
        self._usage: dict[str, Any] | None = None

    def delta_events(self, delta: StreamDelta) -> bytes:
        if delta.usage is not None:
            self._usage = _usage_json(delta.usage)
        body: dict[str, Any] = {}
        if not self._has_role:  # OpenAI's first chunk carries the role
            body["role"] = "assistant"
            self._has_role = True
        if delta.content or (not delta.tool_calls and body):
            body["content"] = delta.content
        if delta.tool_calls:
            body["tool_calls"] = [_tool_call_delta_json(call) for call in delta.tool_calls]
        events = self._chunk(body, None) if body else b""
        if delta.finish_reason is not None:
            events += self._chunk({}, delta.finish_reason.value)
        return events

    def closing_events(self) -> bytes:
        """The usage chunk (when asked) and ``[DONE]``: only after a finish reason was sent."""
        events = b""
        if self._include_usage:
            events += _sse({**self._envelope, "choices": [], "usage": self._usage or _usage_json(Usage())})
        return events + SSE_DONE

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        chunk: dict[str, Any] = {
            **self._envelope,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return _sse(chunk)


def _tool_call_delta_json(call: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"index": call.index}
    function: dict[str, Any] = {"arguments": call.arguments}
    if call.call_id is not None:
        item["id"] = call.call_id
        item["type"] = "function"
    if call.name is not None:
        function["name"] = call.name
    item["function"] = function
    return item


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope; ``code`` is bkvy's stable error code."""
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


def error_event(status: int, code: str, message: str) -> bytes:
    """The SSE event that ends a stream broken after content was sent (the openai SDK raises APIError)."""
    return _sse(error_body(status, code, message))
