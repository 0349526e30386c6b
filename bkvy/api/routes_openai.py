"""The OpenAI-compatible API: ``POST /v1/chat/completions`` (streamed or not), ``GET /v1/models`` and
``GET /v1/models/{id}``.

Errors on these paths use OpenAI's envelope (see ``api.errors``) so the official SDK raises its own classes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse

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
from bkvy.api.client_auth import authenticate_client
from bkvy.api.deps import services_of
from bkvy.api.errors import request_id_of
from bkvy.api.hot_path import Exchange, JsonReply
from bkvy.api.openai_format import (
    ChunkWriter,
    completion_json,
    decision_headers,
    error_event,
    model_list,
    model_of,
    request_id_headers,
    route_for_model,
)
from bkvy.api.policy_gate import policy_headers
from bkvy.api.stream_relay import SseReply
from bkvy.api.tenancy import subject_of
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.routing.classifier import Classification
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.scoring import with_weights
from bkvy.core.upstream.adapters.base import StreamDelta
from bkvy.models.errors import BkvyError, StreamInterrupted
from bkvy.models.openai_schemas import ChatCompletionIn
from bkvy.models.types import ChatMessage, GenerationOptions

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4
_ANONYMOUS_CLIENT = "openai-client"


async def list_models(request: Request) -> JSONResponse:
    services = services_of(request)
    await authenticate_client(services, request.headers.get("authorization"))
    return JSONResponse(model_list(services.config), headers=request_id_headers(request_id_of(request)))


async def retrieve_model(request: Request, model_id: str) -> JSONResponse:
    """One model of ``GET /v1/models`` by its id. An id may hold a slash (``openai/gpt-4o-mini``): the openai SDK
    sends it as ``%2F``, which the server decodes before routing, so both forms reach ``{model_id:path}``."""
    services = services_of(request)
    await authenticate_client(services, request.headers.get("authorization"))
    entry = model_of(model_id, services.config)
    return JSONResponse(entry, headers=request_id_headers(request_id_of(request)))


async def chat_completions(exchange: Exchange) -> JsonReply | SseReply:
    """A hot endpoint (``api.endpoints``): answered by ``api.hot_path`` ahead of FastAPI."""
    services = exchange.services
    request_id = exchange.request_id
    client_key = await authenticate_client(services, exchange.header(b"authorization"))
    body = parse_body(await exchange.body(), ChatCompletionIn)
    messages = body.to_messages()
    options = body.to_options()
    classification = None
    if body.model == AUTO:
        classification = classify_heuristic(messages, options)
    route = chat_route(body, messages, options, services.config, classification)
    client_id = client_key.name if client_key else (body.bkvy.client_id or _ANONYMOUS_CLIENT)
    execution = ExecutionRequest(
        request_id,
        client_id,
        route,
        messages,
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
    created = int(services.clock.wall())
    if body.stream:
        probe = probe_of(exchange, execution, body.bkvy.cache)
        hit = await cached_hit(exchange, probe, execution) if probe is not None else None
        if hit is not None:
            return _cached_sse(request_id, created, hit, body.include_usage, policy_headers(execution))
        stream = await services.executor.open_stream(execution)
        writer = ChunkWriter(request_id, created, stream.candidate.model, include_usage=body.include_usage)
        headers = (
            decision_headers(
                request_id, stream.candidate.provider, stream.candidate.model, stream.candidate.reason, stream.is_hedged
            )
            | {"cache-control": "no-cache", "x-accel-buffering": "no"}
            | policy_headers(execution)
        )
        if classification is not None:
            headers |= classification_headers(classification)
        if probe is not None:
            headers |= MISS_HEADERS
        return SseReply(_sse_events(relayed_batches(services, probe, stream), writer), headers, stream, _error_event)
    result, report, cache_headers = await execute_cached(exchange, execution, body.bkvy.cache)
    candidate = result.candidate
    headers = decision_headers(request_id, candidate.provider, candidate.model, candidate.reason, result.hedged)
    headers |= policy_headers(execution) | cache_headers
    if classification is not None:
        headers |= classification_headers(classification)
    return JsonReply(completion_json(request_id, created, result), headers, after_sending=report)


def chat_route(
    body: ChatCompletionIn,
    messages: tuple[ChatMessage, ...],
    options: GenerationOptions,
    config: GatewayConfig,
    classification: Classification | None = None,
) -> RouteRequest:
    """The route of a chat completion (and of ``POST /v1/route/explain``): the classified level and domain for
    ``auto``, then ``optimize``. Raises UnknownModel (404)."""
    route = route_for_model(
        body.model,
        config,
        max_wait_seconds=body.bkvy.max_wait_seconds,
        input_tokens_estimate=sum(len(m.text()) for m in messages) // _CHARS_PER_TOKEN + 1,
        output_tokens_estimate=options.max_tokens or 500,
        needs_json=options.json_schema is not None,
        affinity_key=body.bkvy.session_id or body.user,
    )
    if classification is not None:
        route = classified_route(route, classification)
    return with_weights(route, body.bkvy.optimize, config.routing.optimize)


async def _sse_events(batches: AsyncIterator[list[StreamDelta]], writer: ChunkWriter) -> AsyncGenerator[bytes, None]:
    """Relay the stream; a break after content ends it with an error event, never a ``stop``."""
    try:
        async for batch in batches:
            events = b"".join([writer.delta_events(delta) for delta in batch])
            if events:
                yield events
    except StreamInterrupted as error:
        yield error_event(error.status, error.code, error.message)
        return
    yield writer.closing_events()


def _cached_sse(request_id: str, created: int, hit: CacheHit, include_usage: bool, policy: dict[str, str]) -> SseReply:
    """A hit told as OpenAI's chunks: the whole reply in one delta, then the finish, usage and ``[DONE]``."""
    candidate = hit.result.candidate
    writer = ChunkWriter(request_id, created, candidate.model, include_usage=include_usage)
    stream = CachedStream(hit.report)
    headers = decision_headers(request_id, candidate.provider, candidate.model, candidate.reason, False)
    headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"} | hit.headers | policy
    events = writer.delta_events(reply_delta(hit.result)) + writer.closing_events()
    return SseReply(stream.told(events), headers, stream, _error_event)


def _error_event(error: BkvyError) -> bytes:
    return error_event(error.status, error.code, error.message)
