"""The three routing endpoints (SPEC §4): parse, call core, shape the reply."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from bkvy.api.hot_route import HotRoute
from bkvy.api.body import parse_body, read_body
from bkvy.api.client_auth import authenticate_client
from bkvy.api.deps import services_of
from bkvy.api.errors import request_id_of
from bkvy.core.executor import ExecutionRequest, ExecutionResult
from bkvy.core.routing import RouteRequest
from bkvy.models.schemas import DirectRequest, IntelligenceRequest, ScenarioRequest, _RoutedRequest
from bkvy.models.types import RoutingMethod


_CHARS_PER_TOKEN = 4


def _input_tokens_estimate(body: _RoutedRequest) -> int:
    return sum(len(m.to_message().text()) for m in body.messages) // _CHARS_PER_TOKEN + 1


def _route_of(body: _RoutedRequest) -> RouteRequest:
    common = {"max_wait_seconds": body.max_wait_seconds, "input_tokens_estimate": _input_tokens_estimate(body),
              "output_tokens_estimate": body.options.max_tokens or 500}
    if isinstance(body, IntelligenceRequest):
        return RouteRequest(RoutingMethod.INTELLIGENCE, level=body.intelligence_level, **common)
    if isinstance(body, ScenarioRequest):
        return RouteRequest(RoutingMethod.SCENARIO, scenario=body.scenario, **common)
    assert isinstance(body, DirectRequest)
    return RouteRequest(RoutingMethod.DIRECT, provider=body.provider, model=body.model, key_id=body.api_key_id,
                        **common)


def _reply(request_id: str, body: _RoutedRequest, route: RouteRequest, result: ExecutionResult) -> dict:
    completion = result.completion
    reply: dict[str, object] = {
        "success": True, "request_id": request_id, "model_used": result.candidate.model,
        "content": completion.content,
        "usage": {"input_tokens": completion.usage.input_tokens, "output_tokens": completion.usage.output_tokens,
                  "total_tokens": completion.usage.total_tokens},
        "finish_reason": completion.finish_reason.value,
    }
    if body.debug:
        reply.update({
            "provider_used": result.candidate.provider, "key_used": result.candidate.key_id,
            "routing_method": route.method.value, "decision_reason": result.candidate.reason,
            "cost_estimate_usd": round(result.cost_usd, 8),
            "metadata": {
                "alternatives_considered": [
                    {"provider": c.provider, "model": c.model, "key_id": c.key_id, "reason": c.reason,
                     "estimated_cost_usd": round(c.estimated_cost_usd, 8),
                     "estimate_seconds": round(c.estimate_seconds, 3)} for c in result.plan.candidates]
                + [{"provider": s.provider, "model": s.model, "key_id": s.key_id, "skipped": s.reason}
                   for s in result.plan.skipped],
                "attempts": [a.as_dict() for a in result.attempts],
                "queue_wait_ms": round(result.queue_wait_ms, 2),
                "total_completion_time_ms": round(result.total_ms, 2),
            },
        })
    return reply


async def _handle(request: Request, schema: type[_RoutedRequest]) -> JSONResponse:
    services = services_of(request)
    request_id = request_id_of(request)
    client_key = authenticate_client(request)   # a client key's name overrides the body's client_id
    body = parse_body(await read_body(request, services.settings.max_body_bytes), schema)
    route = _route_of(body)
    execution = ExecutionRequest(request_id, client_key.name if client_key else body.client_id, route,
                                 tuple(m.to_message() for m in body.messages), body.options.to_options(),
                                 client_key.key_id if client_key else None)
    result = await services.executor.execute(execution)
    return JSONResponse(_reply(request_id, body, route, result))


async def llm_intelligence(request: Request) -> JSONResponse:
    return await _handle(request, IntelligenceRequest)


async def llm_scenario(request: Request) -> JSONResponse:
    return await _handle(request, ScenarioRequest)


async def llm_direct(request: Request) -> JSONResponse:
    return await _handle(request, DirectRequest)


hot_routes = [HotRoute("/llm/intelligence", llm_intelligence, methods=["POST"]),
              HotRoute("/llm/scenario", llm_scenario, methods=["POST"]),
              HotRoute("/llm/direct", llm_direct, methods=["POST"])]
