"""Explain without sending (issue 18 §5): a request body → the request the executor would run, and an
``Explanation`` → the JSON both endpoints and ``python main.py explain --json`` answer. Shared by
``api.routes_explain`` and ``api.explain_cli`` so the CLI builds exactly the endpoint's route."""

from __future__ import annotations

from typing import Any

from bkvy.api.body import parse_body
from bkvy.api.classification import AUTO, classify_heuristic
from bkvy.api.routes_llm import llm_route
from bkvy.api.routes_openai import chat_route
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.routing.classifier import Classification
from bkvy.core.routing.explain import ExplainedCandidate, Explanation
from bkvy.models.errors import RouteKindUnclear
from bkvy.models.explain_schemas import LlmExplainIn
from bkvy.models.openai_schemas import ChatCompletionIn
from bkvy.models.schemas import DirectRequest, IntelligenceRequest, ScenarioRequest, _RoutedRequest

_ANONYMOUS_CLIENT = "openai-client"


def llm_explain_request(
    raw: bytes, request_id: str, config: GatewayConfig
) -> tuple[ExecutionRequest, dict[str, Any] | None]:
    """``POST /llm/explain``'s body as the request /llm/intelligence, /scenario or /direct would run, and the
    classifier's answer for ``intelligence_level: "auto"``. Raises RouteKindUnclear (400) unless the body has
    exactly one of ``intelligence_level``, ``scenario``, ``provider``+``model``; body errors as those routes."""
    body = parse_body(raw, _schema_of(parse_body(raw, LlmExplainIn)))
    messages = tuple(m.to_message() for m in body.messages)
    options = body.options.to_options()
    classification = None
    if isinstance(body, IntelligenceRequest) and body.intelligence_level == AUTO:
        classification = classify_heuristic(messages, options)
    route = llm_route(body, messages, config, classification)
    return ExecutionRequest(request_id, body.client_id, route, messages, options), _shown(classification, config)


def _schema_of(probe: LlmExplainIn) -> type[_RoutedRequest]:
    has_level, has_scenario = probe.intelligence_level is not None, probe.scenario is not None
    has_model = probe.provider is not None or probe.model is not None
    kinds = [schema for schema, present in _KINDS if present(has_level, has_scenario, has_model)]
    if len(kinds) != 1:
        raise RouteKindUnclear(
            "send exactly one of 'intelligence_level', 'scenario' or 'provider' with 'model' "
            "(the body of /llm/intelligence, /llm/scenario or /llm/direct)",
            param="body",
        )
    return kinds[0]


_KINDS: tuple[tuple[type[_RoutedRequest], Any], ...] = (
    (IntelligenceRequest, lambda level, scenario, model: level),
    (ScenarioRequest, lambda level, scenario, model: scenario),
    (DirectRequest, lambda level, scenario, model: model),
)


def openai_explain_request(
    raw: bytes, request_id: str, config: GatewayConfig
) -> tuple[ExecutionRequest, dict[str, Any] | None]:
    """``POST /v1/route/explain``'s body (the chat completion's) as the request /v1/chat/completions would run.
    Raises as that route does (404 for an unknown model)."""
    body = parse_body(raw, ChatCompletionIn)
    messages = body.to_messages()
    options = body.to_options()
    classification = classify_heuristic(messages, options) if body.model == AUTO else None
    route = chat_route(body, messages, options, config, classification)
    client_id = body.bkvy.client_id or _ANONYMOUS_CLIENT
    return ExecutionRequest(request_id, client_id, route, messages, options), _shown(classification, config)


def _shown(classification: Classification | None, config: GatewayConfig) -> dict[str, Any] | None:
    """The classification as explain shows it: the built-in classifier's, since explain asks no model; with a
    classifier model configured, a feature says the real request would ask it."""
    if classification is None:
        return None
    shown = classification.as_dict()
    if config.routing.classifier is not None:
        shown["features"] = [*classification.features, "classifier_model_not_asked"]
    return shown


def explanation_json(explanation: Explanation, classification: dict[str, Any] | None) -> dict[str, Any]:
    """The endpoints' answer: ``{chosen, candidates, classification?, decision_reason, route, skipped}``."""
    chosen = explanation.chosen
    route = explanation.route
    reply: dict[str, Any] = {
        "chosen": None
        if chosen is None
        else {"provider": chosen.provider, "model": chosen.model, "key_id": chosen.key_id},
        "decision_reason": explanation.decision_reason.value,
        "route": {
            "method": route.method.value,
            "level": route.level.value if route.level is not None else None,
            "scenario": route.scenario,
            "provider": route.provider,
            "model": route.model,
            "max_wait_seconds": route.max_wait_seconds,
            "input_tokens_estimate": route.input_tokens_estimate,
            "output_tokens_estimate": route.output_tokens_estimate,
            "needs_json": route.needs_json,
        },
        "candidates": [_candidate_json(c) for c in explanation.candidates],
        "skipped": sum(1 for c in explanation.candidates if c.position is None),
    }
    if classification is not None:
        reply["classification"] = classification
    return reply


def _candidate_json(candidate: ExplainedCandidate) -> dict[str, Any]:
    row: dict[str, Any] = {
        "provider": candidate.provider,
        "model": candidate.model,
        "key_id": candidate.key_id,
        "position": candidate.position,
        "estimated_cost_usd": round(candidate.estimated_cost_usd, 8),
        "estimate_seconds": round(candidate.estimate_seconds, 3),
        "reasons": list(candidate.reasons),
    }
    if candidate.score is not None:
        row["score"] = round(candidate.score, 6)
        if candidate.score_components is not None:
            row["score_components"] = {name: round(value, 6) for name, value in candidate.score_components.items()}
    if candidate.excluded_by is not None:
        row["excluded_by"] = candidate.excluded_by.value
    return row
