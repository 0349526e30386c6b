"""Administration: client keys (``/admin/keys``) and config reload (``/admin/reload``); every route needs
``X-Admin-API-Key`` (``is_admin`` in the table)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bkvy.api.body import parse_body, read_body
from bkvy.api.deps import services_of
from bkvy.core.config.gateway import ConfigError
from bkvy.core.config.tenants import REGION_PATTERN, TENANT_ID_PATTERN
from bkvy.core.limits.client_keys import ClientKeyStore
from bkvy.core.limits.key_scope import KeyScope
from bkvy.core.shared.client_keys import SharedClientKeys
from bkvy.models.errors import AdminDisabled, InvalidConfig, UnknownTenant
from bkvy.models.policy import DataClass
from bkvy.utils.records import utc_timestamp


class ClientKeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$")
    rpm: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    monthly_budget_usd: float | None = Field(default=None, ge=0.0, le=1e9)
    tenant: str | None = Field(default=None, pattern=TENANT_ID_PATTERN)  # 404 unknown_tenant when not one
    data_class: DataClass | None = None  # the key's requests' data class, unless a request sends its own
    allowed_regions: tuple[Annotated[str, Field(pattern=REGION_PATTERN)], ...] | None = Field(
        default=None, max_length=100
    )  # model regions; None: any
    allow_source_region: bool = False  # may send x-bkvy-source-region

    def scope(self) -> KeyScope:
        return KeyScope(self.tenant, self.data_class, self.allowed_regions, self.allow_source_region)


def _store(request: Request) -> ClientKeyStore | SharedClientKeys:
    services = services_of(request)
    if services.shared_keys is not None:  # REDIS_URL: created and revoked in Redis, for every replica
        return services.shared_keys
    if services.client_keys is None:
        raise AdminDisabled("client keys are not available in this process")
    return services.client_keys


async def create_key(request: Request) -> JSONResponse:
    store = _store(request)
    raw = await read_body(
        request.receive,
        request.headers.get("content-length"),
        services_of(request).settings.max_body_bytes,
        content_type=request.headers.get("content-type"),
    )
    body = parse_body(raw, ClientKeyCreateIn)
    tenants = services_of(request).tenants
    if body.tenant is not None and (tenants is None or tenants.get(body.tenant) is None):
        raise UnknownTenant(f"no tenant {body.tenant!r}: create it first (POST /admin/tenants or tenants.json)")
    scope = body.scope()
    key, plaintext = await store.create(
        body.name, rpm=body.rpm, monthly_budget_usd=body.monthly_budget_usd, scope=scope
    )
    return JSONResponse(
        {
            "id": key.key_id,
            "name": key.name,
            "key": plaintext,
            "created": key.created_wall,
            "rpm": key.rpm,
            "monthly_budget_usd": key.monthly_budget_usd,
            **scope.as_dict(),
            "note": "store this key now: it is shown only once",
        },
        status_code=201,
    )


async def list_keys(request: Request) -> JSONResponse:
    return JSONResponse({"keys": await _store(request).describe()})


async def revoke_key(
    request: Request, key_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^ck_[0-9a-f]{1,60}$")]
) -> JSONResponse:
    await _store(request).revoke(key_id)
    return JSONResponse({"id": key_id, "revoked": True})


async def reload_config(request: Request) -> JSONResponse:
    """Read and validate the config files and swap them in (``Services.reload``); 400 ``invalid_config`` with
    start-up's one-line message when they are invalid, and the running config stays."""
    services = services_of(request)
    try:
        keys_changed = await services.reload()
    except ConfigError as error:
        raise InvalidConfig(str(error)) from None
    return JSONResponse(
        {
            "reloaded": True,
            "config_hash": services.config_hash,
            "config_loaded_at": utc_timestamp(services.config_loaded_wall),
            "keys_changed": keys_changed,
        }
    )
