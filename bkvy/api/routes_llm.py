"""The three routing endpoints (SPEC §4): parse, call core, shape the reply. Hot endpoints of ``api.endpoints``."""

from __future__ import annotations

from bkvy.api.body import parse_body
from bkvy.api.cache_gate import execute_cached
from bkvy.api.classification import (
    AUTO,
    classification_headers,
    classified_route,
    classify_heuristic,
    police_classified,
)
from bkvy.api.client_auth import authenticate_client
from bkvy.api.hot_path import Exchange, JsonReply
from bkvy.api.policy_gate import policy_headers
from bkvy.api.score_view import score_fields
from bkvy.api.tenancy import subject_of
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.executor import ExecutionRequest, ExecutionResult
from bkvy.core.routing.classifier import Classification
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.scoring import with_weights
from bkvy.models.schemas import DirectRequest, IntelligenceRequest, ScenarioRequest, _RoutedRequest
from bkvy.models.types import ChatMessage, IntelligenceLevel, RoutingMethod

_CHARS_PER_TOKEN = 4
_HEDGED = {"x-bkvy-hedged": "true"}  # a hedge raced this answer (SPEC §6)


def _route_of(body: _RoutedRequest, messages: tuple[ChatMessage, ...]) -> RouteRequest:
    route = RouteRequest(
        RoutingMethod.DIRECT,
        max_wait_seconds=body.max_wait_seconds,
        input_tokens_estimate=sum(len(m.text()) for m in messages) // _CHARS_PER_TOKEN + 1,
        output_tokens_estimate=body.options.max_tokens or 500,
        affinity_key=body.options.session_id,  # replicated models: this session's replica (docs/ROUTING.md)
    )
    if isinstance(body, IntelligenceRequest):
        level = body.intelligence_level if isinstance(body.intelligence_level, IntelligenceLevel) else None
        return route._replace(method=RoutingMethod.INTELLIGENCE, level=level)
    if isinstance(body, ScenarioRequest):
        return route._replace(method=RoutingMethod.SCENARIO, scenario=body.scenario)
    assert isinstance(body, DirectRequest)
    return route._replace(provider=body.provider, model=body.model, key_id=body.api_key_id)


def llm_route(
    body: _RoutedRequest,
    messages: tuple[ChatMessage, ...],
    config: GatewayConfig,
    classification: Classification | None = None,
) -> RouteRequest:
    """The route of an /llm/* request (and of ``POST /llm/explain``): its kind, estimates, the classified level
    and domain for ``auto``, and ``optimize`` (the request's, else routing.json's for its level or scenario)."""
    route = _route_of(body, messages)
    if classification is not None:
        route = classified_route(route, classification)
    return with_weights(route, body.options.optimize, config.routing.optimize)


def _reply(
    request_id: str,
    body: _RoutedRequest,
    route: RouteRequest,
    result: ExecutionResult,
    classification: Classification | None,
) -> dict:
    completion = result.completion
    reply: dict[str, object] = {
        "success": True,
        "request_id": request_id,
        "model_used": result.candidate.model,
        "content": completion.content,
        "usage": {
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "total_tokens": completion.usage.total_tokens,
        },
        "finish_reason": completion.finish_reason.value,
    }
    if body.debug:
        reply.update(
            {
                "provider_used": result.candidate.provider,
                "key_used": result.candidate.key_id,
                "routing_method": route.method.value,
                "decision_reason": result.candidate.reason,
                "cost_estimate_usd": round(result.cost_usd, 8),
                "metadata": {
                    "alternatives_considered": [
                        {
                            "provider": c.provider,
                            "model": c.model,
                            "key_id": c.key_id,
                            "reason": c.reason,
                            "estimated_cost_usd": round(c.estimated_cost_usd, 8),
                            "estimate_seconds": round(c.estimate_seconds, 3),
                            **score_fields(result.plan, c),
                        }
                        for c in result.plan.candidates
                    ]
                    + [
                        {"provider": s.provider, "model": s.model, "key_id": s.key_id, "skipped": s.reason}
                        for s in result.plan.skipped
                    ],
                    "attempts": [a.as_dict() for a in result.attempts],
                    "queue_wait_ms": round(result.queue_wait_ms, 2),
                    "total_completion_time_ms": round(result.total_ms, 2),
                },
            }
        )
        if classification is not None:
            reply["classification"] = classification.as_dict()
    return reply


async def _handle(exchange: Exchange, schema: type[_RoutedRequest]) -> JsonReply:
    services = exchange.services
    client_key = await authenticate_client(services, exchange.header(b"authorization"))  # its name overrides client_id
    body = parse_body(await exchange.body(), schema)
    messages = tuple(m.to_message() for m in body.messages)
    options = body.options.to_options()
    classification = None
    if isinstance(body, IntelligenceRequest) and body.intelligence_level == AUTO:
        classification = classify_heuristic(messages, options)
    route = llm_route(body, messages, services.config, classification)
    execution = ExecutionRequest(
        exchange.request_id,
        client_key.name if client_key else body.client_id,
        route,
        messages,
        options,
        client_key.key_id if client_key else None,
        timeout_seconds=body.timeout_seconds,
        hedge=body.options.hedge,
        client_gone=exchange.client_gone,
        classification=classification,
        subject=subject_of(services, client_key),
    )
    execution = await police_classified(exchange, execution, body.options.optimize, body.data_class)
    classification, route = execution.classification, execution.route
    result, report, cache_headers = await execute_cached(exchange, execution, body.options.cache)
    headers = _HEDGED | cache_headers if result.hedged else cache_headers or None
    if classification is not None:
        headers = (headers or {}) | classification_headers(classification)
    if execution.policy is not None:
        headers = (headers or {}) | policy_headers(execution)
    reply = _reply(exchange.request_id, body, route, result, classification)
    if body.debug and execution.policy is not None:
        reply["policy"] = list(execution.policy.lines)
    return JsonReply(reply, headers, after_sending=report)


async def llm_intelligence(exchange: Exchange) -> JsonReply:
    return await _handle(exchange, IntelligenceRequest)


async def llm_scenario(exchange: Exchange) -> JsonReply:
    return await _handle(exchange, ScenarioRequest)


async def llm_direct(exchange: Exchange) -> JsonReply:
    return await _handle(exchange, DirectRequest)
