"""Tenants (issue 19 §3): those of config/tenants.json (read-only through the API, replaced at each reload) and
those created through ``/admin/tenants``, kept in LOG_DIR/admin_tenants.json (written whole in a thread, temp file
then ``os.replace``, mode 0600). With REDIS_URL the API tenants are shared too (``core.shared.tenants``), and
this store is each process's copy. The hot path (``get``) touches memory only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bkvy.core.config.tenants import TenantConfig, check_tenant_models, tenant_rules
from bkvy.core.limits.tenant_meter import TenantMeter
from bkvy.models.errors import InvalidRequest, TenantExists, TenantReadOnly, UnknownTenant
from bkvy.models.policy import TenantRules
from bkvy.utils.private_files import ensure_private_dir, open_private

__all__ = ["ADMIN_TENANTS_FILE", "Tenant", "TenantSource", "TenantStore"]

log = logging.getLogger(__name__)

ADMIN_TENANTS_FILE = "admin_tenants.json"


class TenantSource(str, Enum):
    FILE = "file"  # config/tenants.json: read-only through the API
    API = "api"  # /admin/tenants


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    config: TenantConfig
    source: TenantSource
    rules: TenantRules  # what policy reads (PolicySubject.tenant)


def _tenant(tenant_id: str, config: TenantConfig, source: TenantSource) -> Tenant:
    return Tenant(tenant_id, config, source, tenant_rules(tenant_id, config))


class TenantStore:
    def __init__(self, path: Path, meter: TenantMeter) -> None:
        self._path = path
        self.meter = meter
        self._from_file: dict[str, Tenant] = {}
        self._from_api: dict[str, Tenant] = {}
        self._write_lock = asyncio.Lock()

    async def start(self, file_tenants: Mapping[str, TenantConfig]) -> None:
        self.configure(file_tenants)
        for tenant_id, config in (await asyncio.to_thread(self._load)).items():
            self._from_api[tenant_id] = _tenant(tenant_id, config, TenantSource.API)

    def configure(self, file_tenants: Mapping[str, TenantConfig]) -> None:
        """The tenants of config/tenants.json, at start-up and at each reload; a file tenant hides an API one."""
        self._from_file = {tid: _tenant(tid, config, TenantSource.FILE) for tid, config in file_tenants.items()}

    # -- hot path -------------------------------------------------------------------------------------
    def get(self, tenant_id: str) -> Tenant | None:
        return self._from_file.get(tenant_id) or self._from_api.get(tenant_id)

    def tenants(self) -> list[Tenant]:
        return [*self._from_file.values(), *(t for tid, t in self._from_api.items() if tid not in self._from_file)]

    def used_ratios(self) -> dict[str, float]:
        """Each budgeted tenant's spend this month over its budget (``bkvy_tenant_budget_used_ratio``)."""
        ratios = {}
        for tenant in self.tenants():
            ratio = self.meter.used_ratio(tenant.tenant_id, tenant.config)
            if ratio is not None:
                ratios[tenant.tenant_id] = ratio
        return ratios

    # -- admin ----------------------------------------------------------------------------------------
    def check_new(self, tenant_id: str) -> None:
        """Raises TenantExists (409) when the id is taken, by the file or the API."""
        if self.get(tenant_id) is not None:
            raise TenantExists(f"tenant {tenant_id!r} exists: change it with PATCH /admin/tenants/{tenant_id}")

    def changed(self, tenant_id: str, fields: Mapping[str, Any], known_models: Collection[str]) -> TenantConfig:
        """The API tenant's config with ``fields`` changed (null: back to the default), validated.
        Raises UnknownTenant (404), TenantReadOnly (409) or InvalidRequest (400)."""
        tenant = self.api_tenant(tenant_id)
        merged = tenant.config.model_dump(mode="json", exclude_defaults=True) | dict(fields)
        return validated_tenant({k: v for k, v in merged.items() if v is not None}, known_models)

    def api_tenant(self, tenant_id: str) -> Tenant:
        """Raises UnknownTenant (404), TenantReadOnly (409, a tenant of config/tenants.json)."""
        if tenant_id in self._from_file:
            raise TenantReadOnly(
                f"tenant {tenant_id!r} is defined in config/tenants.json: edit the file and reload to change it"
            )
        tenant = self._from_api.get(tenant_id)
        if tenant is None:
            raise UnknownTenant(f"no tenant {tenant_id!r}")
        return tenant

    async def save(self, tenant_id: str, config: TenantConfig, *, new: bool = False) -> Tenant:
        """Create or replace an API tenant and write the file. ``new``: raises TenantExists (409) when the id is
        taken by then (checked and adopted with no await between, so of two creates one wins)."""
        if new:
            self.check_new(tenant_id)
        tenant = self.adopt(tenant_id, config)
        async with self._write_lock:
            snapshot = {
                tid: t.config.model_dump(mode="json", exclude_defaults=True) for tid, t in self._from_api.items()
            }
            await asyncio.to_thread(self._write, snapshot)
        log.info("tenant_saved", extra={"tenant": tenant_id, "disabled": config.disabled})
        return tenant

    def adopt(self, tenant_id: str, config: TenantConfig) -> Tenant:
        """Know an API tenant (created here, or elsewhere and heard through Redis)."""
        tenant = _tenant(tenant_id, config, TenantSource.API)
        self._from_api[tenant_id] = tenant
        return tenant

    def described(self, tenant: Tenant) -> dict[str, Any]:
        spent = self.meter.spent_usd(tenant.tenant_id)
        ratio = self.meter.used_ratio(tenant.tenant_id, tenant.config)
        return {
            "id": tenant.tenant_id,
            "source": tenant.source.value,
            **tenant.config.model_dump(mode="json"),
            "spend_usd_this_month": round(spent, 8),
            "budget_used_ratio": None if ratio is None else round(ratio, 6),
        }

    # -- persistence (threads only) -------------------------------------------------------------------
    def _load(self) -> dict[str, TenantConfig]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        loaded = {}
        for tenant_id, fields in json.loads(text).items():
            try:
                loaded[tenant_id] = TenantConfig.model_validate(fields)
            except ValidationError:
                log.warning("tenant_record_skipped", extra={"tenant": tenant_id})
        return loaded

    def _write(self, snapshot: dict[str, Any]) -> None:
        ensure_private_dir(self._path.parent)
        temporary = self._path.with_name(self._path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8", opener=open_private) as file:
            file.truncate()
            json.dump(snapshot, file, sort_keys=True, indent=1)
        os.replace(temporary, self._path)


def validated_tenant(fields: Any, known_models: Collection[str]) -> TenantConfig:
    """A tenant's config from an API body. Raises InvalidRequest (400) naming the field."""
    try:
        config = TenantConfig.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{location}: {str(first['msg']).removeprefix('Value error, ')}") from None
    problem = check_tenant_models(config, known_models)
    if problem is not None:
        raise InvalidRequest(problem)
    return config
