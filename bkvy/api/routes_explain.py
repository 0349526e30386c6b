"""``POST /llm/explain`` and ``POST /v1/route/explain`` (issue 18 §5): the plan a request would get, every
candidate and why, without calling a provider or taking a provider's rate-limit slot. Hot rows of
``api.endpoints``: the same client-key auth and body rules as the routes they explain."""

from __future__ import annotations

from typing import Any

from bkvy.api.body import parse_body
from bkvy.api.client_auth import authenticate_client
from bkvy.api.explain import explanation_json, llm_explain_request, openai_explain_request
from bkvy.api.hot_path import Exchange, JsonReply
from bkvy.api.openai_format import request_id_headers
from bkvy.api.policy_gate import police
from bkvy.api.tenancy import subject_of
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.models.explain_schemas import LlmExplainIn
from bkvy.models.policy import PolicyAction


async def llm_explain(exchange: Exchange) -> JsonReply:
    """The plan for a body of /llm/intelligence, /llm/scenario or /llm/direct (told apart by its fields)."""
    services = exchange.services
    client_key = await authenticate_client(services, exchange.header(b"authorization"))
    raw = await exchange.body()
    request, classification = llm_explain_request(raw, exchange.request_id, services.config)
    request = request._replace(subject=subject_of(services, client_key))  # its tenant's and key's rules apply
    request = police(exchange, request, parse_body(raw, LlmExplainIn).data_class)
    reply = explanation_json(services.executor.explain(request), classification)
    return JsonReply(_with_policy(reply, request), {"x-bkvy-request-id": exchange.request_id})


async def route_explain(exchange: Exchange) -> JsonReply:
    """The plan for a body of /v1/chat/completions (``model`` as there: auto, a level, scenario:NAME, a model)."""
    services = exchange.services
    client_key = await authenticate_client(services, exchange.header(b"authorization"))
    raw = await exchange.body()
    request, classification = openai_explain_request(raw, exchange.request_id, services.config)
    request = request._replace(subject=subject_of(services, client_key))
    request = police(exchange, request)
    reply = explanation_json(services.executor.explain(request), classification)
    return JsonReply(_with_policy(reply, request), request_id_headers(exchange.request_id))


def _with_policy(reply: dict[str, Any], request: ExecutionRequest) -> dict[str, Any]:
    """The policy lines (``[rule] PASS/BLOCK: reason``) when policy decided on the request (issue 19 §4)."""
    decision = request.policy
    if decision is not None:
        reply["policy"] = list(decision.lines)
        if decision.action is PolicyAction.BLOCK:  # the request would be refused (400) before any candidate
            reply["chosen"] = None
            reply["blocked_by"] = decision.rule
    return reply
