"""Every HTTP endpoint of bkvy, in one table: method, path, request schema, response, handler, tags.

Everything else reads this table (STYLE: one list, like starlette's ``Router(routes=[...])``):
- ``api.hot_path.HotPaths`` answers the ``is_hot`` rows straight from ASGI, ahead of FastAPI (their handlers take
  an ``Exchange``);
- ``register_endpoints`` adds every row to FastAPI: the others are served there, the hot ones are registered for
  ``/docs`` and ``/openapi.json`` only (``GatewayApp`` answers them first);
- ``api.app._middleware`` guards the ``is_monitoring`` rows with one rule (``api.allowlist``);
- ``add_request_schemas`` documents each row's request schema in the OpenAPI document. A handler reads and
  validates its body itself (``api.body``: one size cap, one error envelope), so FastAPI never parses a body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.routing import compile_path

from bkvy.api import (
    routes_admin,
    routes_anthropic,
    routes_cache,
    routes_circuits,
    routes_dashboard,
    routes_embeddings,
    routes_explain,
    routes_llm,
    routes_monitor,
    routes_openai,
    routes_records,
    routes_shadow,
    routes_tenants,
)
from bkvy.api.admin import require_admin
from bkvy.models.anthropic_schemas import MessagesCountTokensIn, MessagesCreateIn
from bkvy.models.embeddings import EmbeddingsIn
from bkvy.models.errors import BkvyError
from bkvy.models.explain_schemas import LlmExplainIn
from bkvy.models.openai_schemas import ChatCompletionIn
from bkvy.models.schemas import DirectRequest, IntelligenceRequest, ScenarioRequest


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # starlette syntax: ``{name}``, ``{name:path}``
    request_schema: type[BaseModel] | None  # the JSON body, validated by the handler; None: no body
    response: str  # what a success returns, for /docs
    handler: Callable[..., Any]
    tags: tuple[str, ...]
    is_hot: bool = False  # answered by api.hot_path before FastAPI; handler takes an Exchange
    is_admin: bool = False  # needs X-Admin-API-Key (api.admin.require_admin)
    is_monitoring: bool = False  # read-only operator view: MONITOR_ALLOWED_IPS and BKVY_MONITOR_API_KEY (api.allowlist)
    status_code: int = 200
    response_class: type[Response] = JSONResponse


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/llm/intelligence",
        IntelligenceRequest,
        "the completion, routed by intelligence level",
        routes_llm.llm_intelligence,
        ("routing",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/llm/scenario",
        ScenarioRequest,
        "the completion, routed by a named scenario",
        routes_llm.llm_scenario,
        ("routing",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/llm/direct",
        DirectRequest,
        "the completion from one provider and model",
        routes_llm.llm_direct,
        ("routing",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/llm/explain",
        LlmExplainIn,
        "the plan the body of /llm/intelligence, /scenario or /direct would get; no provider is called",
        routes_explain.llm_explain,
        ("routing",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/v1/chat/completions",
        ChatCompletionIn,
        "an OpenAI chat completion, or its chunks as text/event-stream with stream=true",
        routes_openai.chat_completions,
        ("openai",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/v1/messages",
        MessagesCreateIn,
        "an Anthropic Message, or its events as text/event-stream with stream=true",
        routes_anthropic.messages,
        ("anthropic",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/v1/messages/count_tokens",
        MessagesCountTokensIn,
        "bkvy's estimate of the input tokens, as Anthropic's {input_tokens}",
        routes_anthropic.count_tokens,
        ("anthropic",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/v1/embeddings",
        EmbeddingsIn,
        "OpenAI embeddings: one vector per input, as numbers or base64 (encoding_format)",
        routes_embeddings.embeddings,
        ("openai",),
        is_hot=True,
    ),
    Endpoint(
        "POST",
        "/v1/route/explain",
        ChatCompletionIn,
        "the plan a /v1/chat/completions body would get; no provider is called",
        routes_explain.route_explain,
        ("openai",),
        is_hot=True,
    ),
    Endpoint("GET", "/v1/models", None, "the models, in OpenAI's list format", routes_openai.list_models, ("openai",)),
    Endpoint(
        "GET",
        "/v1/models/{model_id:path}",
        None,
        "one model of the list, by id (a slash may be sent as %2F)",
        routes_openai.retrieve_model,
        ("openai",),
    ),
    Endpoint("GET", "/health", None, "counts of providers, models and scenarios", routes_monitor.health, ("monitor",)),
    Endpoint(
        "GET",
        "/providers",
        None,
        "providers with key ids (never values), models and prices",
        routes_monitor.providers,
        ("monitor",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/intelligence/{level}",
        None,
        "the candidates of one tier with their live state",
        routes_monitor.intelligence,
        ("monitor",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET", "/scenarios", None, "each scenario's chain", routes_monitor.scenarios, ("monitor",), is_monitoring=True
    ),
    Endpoint(
        "GET",
        "/queue/status",
        None,
        "queued requests per lane",
        routes_monitor.queue_status,
        ("monitor",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/rates/status",
        None,
        "every lane's rate-limit state",
        routes_monitor.rates_status,
        ("monitor",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/circuits/status",
        None,
        "every circuit",
        routes_circuits.circuits_status,
        ("circuits",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/circuits/summary",
        None,
        "circuits by state, flapping count, provider health",
        routes_circuits.circuits_summary,
        ("circuits",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/circuits/provider/{provider}",
        None,
        "one provider's health and circuits",
        routes_circuits.circuits_of_provider,
        ("circuits",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/circuits/{provider}/{model:path}/{key_id}",
        None,
        "one circuit",
        routes_circuits.circuit_detail,
        ("circuits",),
        is_monitoring=True,
    ),
    Endpoint(
        "POST",
        "/circuits/reset/{provider}/{model:path}/{key_id}",
        None,
        "whether it was open; the circuit",
        routes_circuits.circuit_reset,
        ("circuits", "admin"),
        is_admin=True,
    ),
    Endpoint(
        "POST",
        "/admin/keys",
        routes_admin.ClientKeyCreateIn,
        "the new client key, shown only once",
        routes_admin.create_key,
        ("admin",),
        is_admin=True,
        status_code=201,
    ),
    Endpoint(
        "GET",
        "/admin/keys",
        None,
        "every client key's id, name, limits and spend (never the key)",
        routes_admin.list_keys,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "DELETE",
        "/admin/keys/{key_id}",
        None,
        "the revoked key's id",
        routes_admin.revoke_key,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "POST",
        "/admin/tenants",
        routes_tenants.TenantCreateIn,
        "the new tenant (409 tenant_exists when the id is taken)",
        routes_tenants.create_tenant,
        ("admin",),
        is_admin=True,
        status_code=201,
    ),
    Endpoint(
        "GET",
        "/admin/tenants",
        None,
        "every tenant (config/tenants.json and API) with its spend this month",
        routes_tenants.list_tenants,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "GET",
        "/admin/tenants/{tenant_id}",
        None,
        "the tenant (404 unknown_tenant)",
        routes_tenants.get_tenant,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "PATCH",
        "/admin/tenants/{tenant_id}",
        routes_tenants.TenantConfig,
        "the changed tenant (409 tenant_read_only for a tenant of config/tenants.json)",
        routes_tenants.update_tenant,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "DELETE",
        "/admin/tenants/{tenant_id}",
        None,
        "the disabled tenant (its keys get 403 tenant_disabled)",
        routes_tenants.disable_tenant,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "DELETE",
        "/admin/cache",
        None,
        "how many cached replies were purged: all, or ?scope=tenant:ID | key:ID | client:NAME | shared",
        routes_cache.purge_cache,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "POST",
        "/admin/reload",
        None,
        "the new config's hash and load time, and the keys whose value changed (400 invalid_config: it stays)",
        routes_admin.reload_config,
        ("admin",),
        is_admin=True,
    ),
    Endpoint(
        "GET",
        "/statistics/status",
        None,
        "which records are on",
        routes_records.statistics_status,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/statistics/summary",
        None,
        "totals over every recorded day",
        routes_records.statistics_summary,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/statistics/aggregate",
        None,
        "totals over a range of days",
        routes_records.statistics_aggregate,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/statistics/shadow",
        None,
        "shadow traffic: the primary vs each shadow model per route (success, p50/p95, cost, similarity)",
        routes_shadow.statistics_shadow,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/statistics/daily",
        None,
        "the recorded days",
        routes_records.statistics_days,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/statistics/daily/{day}",
        None,
        "one day's statistics",
        routes_records.statistics_day,
        ("statistics",),
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/metrics",
        None,
        "Prometheus text format",
        routes_records.metrics,
        ("metrics",),
        response_class=PlainTextResponse,
        is_monitoring=True,
    ),
    Endpoint(
        "GET",
        "/dashboard",
        None,
        "the dashboard page",
        routes_dashboard.dashboard,
        ("dashboard",),
        response_class=HTMLResponse,
    ),
    Endpoint(
        "GET",
        "/dashboard/data",
        None,
        "the dashboard's data for one range",
        routes_dashboard.dashboard_json,
        ("dashboard",),
    ),
)


def register_endpoints(app: FastAPI, endpoints: Iterable[Endpoint]) -> None:
    """Add every endpoint to FastAPI, in table order (starlette matches the first route that fits)."""
    for endpoint in endpoints:
        app.add_api_route(
            endpoint.path,
            _answered_ahead(endpoint) if endpoint.is_hot else endpoint.handler,
            methods=[endpoint.method],
            name=endpoint.handler.__name__,
            tags=list(endpoint.tags),
            description=inspect.getdoc(endpoint.handler) or "",
            status_code=endpoint.status_code,
            response_description=endpoint.response,
            response_class=endpoint.response_class,
            dependencies=[Depends(require_admin)] if endpoint.is_admin else None,
        )


def _answered_ahead(endpoint: Endpoint) -> Callable[[], Any]:
    """A hot endpoint's FastAPI route: in the docs only, as ``GatewayApp`` answers it before FastAPI runs."""

    async def answered_by_gateway_app() -> None:
        raise BkvyError(f"{endpoint.path} is served once the gateway has started")

    return answered_by_gateway_app


def add_request_schemas(openapi: dict[str, Any], endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    """Each endpoint's request schema as its operation's JSON request body, models under components/schemas."""
    components: dict[str, Any] = openapi.setdefault("components", {}).setdefault("schemas", {})
    for endpoint in endpoints:
        if endpoint.request_schema is None:
            continue
        schema = endpoint.request_schema.model_json_schema(ref_template="#/components/schemas/{model}")
        named = {**schema.pop("$defs", {}), endpoint.request_schema.__name__: schema}
        for name, definition in named.items():
            if components.setdefault(name, definition) != definition:
                raise ValueError(f"two request models named {name!r}; rename one")
        operation = openapi["paths"][compile_path(endpoint.path)[1]][endpoint.method.lower()]
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint.request_schema.__name__}"}}
            },
        }
    return openapi
