"""``/admin/tenants`` (issue 19 §3; X-Admin-API-Key): create, list, read, change and disable the tenants not
defined in config/tenants.json (those are read-only here: 409 ``tenant_read_only``). ``DELETE`` disables a
tenant (its keys get 403 ``tenant_disabled``) and keeps its record; ``PATCH {"disabled": false}`` enables it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from bkvy.api.body import parse_body, read_body
from bkvy.api.deps import services_of
from bkvy.core.config.policy_config import policy_rule_names
from bkvy.core.config.tenants import TENANT_ID_PATTERN, TenantConfig, unknown_policy_rule
from bkvy.core.limits.tenants import TenantStore, validated_tenant
from bkvy.models.errors import AdminDisabled, InvalidRequest, UnknownTenant

TenantId = Annotated[str, Path(min_length=1, max_length=64, pattern=TENANT_ID_PATTERN)]


class TenantCreateIn(TenantConfig):
    id: str = Field(min_length=1, max_length=64, pattern=TENANT_ID_PATTERN)


def _tenants(request: Request) -> TenantStore:
    store = services_of(request).tenants
    if store is None:
        raise AdminDisabled("tenants are not available in this process")
    return store


def _known_models(request: Request) -> set[str]:
    providers = services_of(request).config.providers
    return {f"{name}/{model}" for name, provider in providers.items() for model in provider.models}


def _check_rules(request: Request, config: TenantConfig) -> None:
    """Each rule the tenant names in ``policy`` is a rule of policy.json. Raises InvalidRequest (400)."""
    names = policy_rule_names(services_of(request).config.policy)
    unknown = unknown_policy_rule(config, names)
    if unknown is not None:
        known = f"one of {sorted(names)}" if names else "a rule of config/policy.json (there is none)"
        raise InvalidRequest(f"policy: unknown rule {unknown!r}; use {known}", param="policy")


async def _body(request: Request) -> bytes:
    return await read_body(
        request.receive,
        request.headers.get("content-length"),
        services_of(request).settings.max_body_bytes,
        content_type=request.headers.get("content-type"),
    )


async def _save(request: Request, tenant_id: str, config: TenantConfig, *, new: bool = False) -> dict[str, Any]:
    """``new``: a create, refused 409 ``tenant_exists`` when another request (or replica) took the id first."""
    services, store = services_of(request), _tenants(request)
    if services.shared_tenants is not None:  # REDIS_URL: stored in Redis, announced to every replica
        if new:
            await services.shared_tenants.create(tenant_id, config)
        else:
            await services.shared_tenants.save(tenant_id, config)
    else:
        await store.save(tenant_id, config, new=new)
    return store.described(store.api_tenant(tenant_id))


async def create_tenant(request: Request) -> JSONResponse:
    store = _tenants(request)
    body = parse_body(await _body(request), TenantCreateIn)
    store.check_new(body.id)
    config = validated_tenant(body.model_dump(exclude={"id"}, exclude_defaults=True), _known_models(request))
    _check_rules(request, config)
    return JSONResponse(await _save(request, body.id, config, new=True), status_code=201)


async def list_tenants(request: Request) -> JSONResponse:
    store = _tenants(request)
    return JSONResponse({"tenants": [store.described(tenant) for tenant in store.tenants()]})


async def get_tenant(request: Request, tenant_id: TenantId) -> JSONResponse:
    store = _tenants(request)
    tenant = store.get(tenant_id)
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return JSONResponse(store.described(tenant))


async def update_tenant(request: Request, tenant_id: TenantId) -> JSONResponse:
    """Change the fields sent (``null`` puts an optional one back to its default); the rest stay."""
    store = _tenants(request)
    store.api_tenant(tenant_id)  # 404 / 409 before the body is read
    raw, resets = _without_nulls(await _body(request))
    body = parse_body(raw, TenantConfig)
    fields = body.model_dump(mode="json", include=body.model_fields_set) | dict.fromkeys(resets)
    config = store.changed(tenant_id, fields, _known_models(request))
    _check_rules(request, config)
    return JSONResponse(await _save(request, tenant_id, config))


def _without_nulls(raw: bytes) -> tuple[bytes, tuple[str, ...]]:
    """The body without its ``null`` TenantConfig fields, and their names: null resets a field to its default, so
    it is not validated against the field's type (``"blocked_models": null`` was a 422 though documented)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return raw, ()  # parse_body names what is wrong
    if not isinstance(document, dict):
        return raw, ()
    resets = tuple(key for key, value in document.items() if value is None and key in TenantConfig.model_fields)
    if not resets:
        return raw, ()
    kept = {key: value for key, value in document.items() if key not in resets}
    return json.dumps(kept).encode(), resets


async def disable_tenant(request: Request, tenant_id: TenantId) -> JSONResponse:
    store = _tenants(request)
    config = store.api_tenant(tenant_id).config.model_copy(update={"disabled": True})
    return JSONResponse(await _save(request, tenant_id, config))
