"""The Anthropic-compatible API: ``POST /v1/messages`` (streamed or not) and ``POST /v1/messages/count_tokens``.

Routed exactly like ``/v1/chat/completions`` (the same ``model`` names, the same executor: failover before the
first byte, records, metrics, budgets, hedging). Errors on these paths use Anthropic's envelope and statuses
(``api.anthropic_format``, mapped in ``api.errors``) so the official SDK raises its own classes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bkvy.api.anthropic_format import (
    EventWriter,
    error_event,
    estimate_input_tokens,
    message_json,
    to_messages,
    to_options,
    to_tools,
)
from bkvy.api.body import parse_body
from bkvy.api.cache_gate import MISS_HEADERS, CachedStream, CacheHit, cached_hit, execute_cached, probe_of, reply_delta
from bkvy.api.cache_stream import relayed_batches
from bkvy.api.classification import (
    AUTO,
    classification_headers,
    classified_route,
    classify_heuristic,
    police_classified,
)
from bkvy.api.client_auth import authenticate_anthropic_client
from bkvy.api.hot_path import Exchange, JsonReply
from bkvy.api.openai_format import decision_headers, route_for_model
from bkvy.api.policy_gate import policy_headers
from bkvy.api.stream_relay import SseReply
from bkvy.api.tenancy import subject_of
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.limits.client_keys import ClientKey
from bkvy.core.routing.scoring import with_weights
from bkvy.core.upstream.adapters.base import StreamDelta
from bkvy.models.anthropic_schemas import MessagesCountTokensIn, MessagesCreateIn
from bkvy.models.errors import BkvyError, InvalidRequest, StreamInterrupted

_ANONYMOUS_CLIENT = "anthropic-client"
_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
Body = TypeVar("Body", bound=BaseModel)


async def messages(exchange: Exchange) -> JsonReply | SseReply:
    """A hot endpoint (``api.endpoints``): answered by ``api.hot_path`` ahead of FastAPI."""
    services = exchange.services
    request_id = exchange.request_id
    client_key = await _client_key(exchange)
    body = _parsed(await exchange.body(), MessagesCreateIn)
    chat_messages = to_messages(body)
    options = to_options(body)
    input_tokens_estimate = estimate_input_tokens(chat_messages, options.tools)
    route = route_for_model(
        body.model,
        services.config,
        max_wait_seconds=body.bkvy.max_wait_seconds,
        input_tokens_estimate=input_tokens_estimate,
        output_tokens_estimate=body.max_tokens,
        needs_json=options.json_schema is not None,
        affinity_key=body.bkvy.session_id,
    )
    classification = None
    if body.model == AUTO:
        classification = classify_heuristic(chat_messages, options)
        route = classified_route(route, classification)
    route = with_weights(route, body.bkvy.optimize, services.config.routing.optimize)
    execution = ExecutionRequest(
        request_id,
        client_key.name if client_key else (body.bkvy.client_id or _ANONYMOUS_CLIENT),
        route,
        chat_messages,
        options,
        client_key.key_id if client_key else None,
        timeout_seconds=body.bkvy.timeout_seconds,
        hedge=body.bkvy.hedge,
        client_gone=exchange.client_gone,
        classification=classification,
        subject=subject_of(services, client_key),
    )
    execution = await police_classified(exchange, execution, body.bkvy.optimize)
    classification = execution.classification
    if body.stream:
        probe = probe_of(exchange, execution, body.bkvy.cache)
        hit = await cached_hit(exchange, probe, execution) if probe is not None else None
        if hit is not None:
            return _cached_sse(request_id, hit, input_tokens_estimate, policy_headers(execution))
        stream = await services.executor.open_stream(execution)
        candidate = stream.candidate
        writer = EventWriter(request_id, candidate.model, input_tokens_estimate=input_tokens_estimate)
        headers = decision_headers(request_id, candidate.provider, candidate.model, candidate.reason, stream.is_hedged)
        headers |= policy_headers(execution)
        if classification is not None:
            headers |= classification_headers(classification)
        if probe is not None:
            headers |= MISS_HEADERS
        return SseReply(
            _sse_events(relayed_batches(services, probe, stream), writer, request_id),
            headers | {"request-id": request_id} | _STREAM_HEADERS,
            stream,
            lambda error: error_event(error.status, error.code, error.message, request_id),
        )
    result, report, cache_headers = await execute_cached(exchange, execution, body.bkvy.cache)
    candidate = result.candidate
    headers = decision_headers(request_id, candidate.provider, candidate.model, candidate.reason, result.hedged)
    headers |= policy_headers(execution) | cache_headers
    if classification is not None:
        headers |= classification_headers(classification)
    return JsonReply(message_json(request_id, result), headers | {"request-id": request_id}, after_sending=report)


def _cached_sse(request_id: str, hit: CacheHit, input_tokens_estimate: int, policy: dict[str, str]) -> SseReply:
    """A hit told as Anthropic's events: the opening, the whole reply as one delta, then the closing."""
    candidate = hit.result.candidate
    writer = EventWriter(request_id, candidate.model, input_tokens_estimate=input_tokens_estimate)
    stream = CachedStream(hit.report)
    headers = decision_headers(request_id, candidate.provider, candidate.model, candidate.reason, False)
    headers |= hit.headers | policy | {"request-id": request_id} | _STREAM_HEADERS
    events = writer.opening_events() + writer.delta_events(reply_delta(hit.result)) + writer.closing_events()
    return SseReply(stream.told(events), headers, stream, partial(_stream_error, request_id=request_id))


def _stream_error(error: BkvyError, *, request_id: str) -> bytes:
    return error_event(error.status, error.code, error.message, request_id)


async def count_tokens(exchange: Exchange) -> JsonReply:
    """bkvy's estimate of the input tokens (``anthropic_format.estimate_input_tokens``); no upstream call."""
    await _client_key(exchange)
    body = _parsed(await exchange.body(), MessagesCountTokensIn)
    route_for_model(
        body.model, exchange.services.config, max_wait_seconds=None, input_tokens_estimate=0, output_tokens_estimate=0
    )  # an unknown model is a 404 here too
    chat_messages = to_messages(body)
    input_tokens = estimate_input_tokens(chat_messages, to_tools(body))
    return JsonReply({"input_tokens": input_tokens}, {"request-id": exchange.request_id})


async def _client_key(exchange: Exchange) -> ClientKey | None:
    return await authenticate_anthropic_client(
        exchange.services, exchange.header(b"authorization"), exchange.header(b"x-api-key")
    )


def _parsed(raw: bytes, schema: type[Body]) -> Body:
    """The body, or a 400 that names the first problem; a field bkvy does not carry is named as such."""
    try:
        return schema.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "extra_forbidden":
            location = ".".join(str(part) for part in first["loc"])
            raise InvalidRequest(f"{location}: not supported by bkvy's Messages API; remove it") from None
    return parse_body(raw, schema)  # raises the body's first error, worded as on every other route


async def _sse_events(
    batches: AsyncIterator[list[StreamDelta]], writer: EventWriter, request_id: str
) -> AsyncGenerator[bytes, None]:
    """Relay the stream; a break after content ends it with an ``error`` event, never a fake ``end_turn``."""
    opening = writer.opening_events()  # sent with the first batch: the stream is never left unread
    try:
        async for batch in batches:
            events = opening + b"".join([writer.delta_events(delta) for delta in batch])
            opening = b""
            if events:
                yield events
    except StreamInterrupted as error:
        yield opening + error_event(error.status, error.code, error.message, request_id)
        return
    yield writer.closing_events()
