"""``config/tenants.json`` (issue 19 §3, optional, beside providers.json): tenants with model rules, data classes,
regions, a default policy, rpm/tpm limits and a monthly budget with an alert threshold.

The same ``TenantConfig`` validates the body of ``POST /admin/tenants``. ``check_tenants`` raises ValueError with
the operator's one-line message (file, JSON path, fix); ``core.config.gateway`` turns it into a ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bkvy.models.policy import DataClass, TenantRules

__all__ = [
    "REGION_PATTERN",
    "TENANT_ID_PATTERN",
    "TenantConfig",
    "check_tenants",
    "check_tenant_models",
    "tenant_rules",
]

TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_MODEL_NAME = r"^[^/\s]+/\S+$"  # provider/model
_RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
REGION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=128)
    monthly_budget_usd: float | None = Field(default=None, ge=0.0, le=1e9)
    alert_threshold_percent: float | None = Field(default=None, gt=0.0, le=100.0)
    allowed_models: tuple[str, ...] | None = Field(default=None, max_length=1000)
    blocked_models: tuple[str, ...] = Field(default=(), max_length=1000)
    preferred_models: tuple[str, ...] = Field(default=(), max_length=1000)
    allowed_regions: tuple[str, ...] | None = Field(default=None, max_length=100)
    allowed_data_classes: tuple[DataClass, ...] | None = None
    data_class: DataClass | None = None  # the default data class of its keys' requests (key's, request's win)
    policy: tuple[str, ...] = Field(default=(), max_length=100)  # names of policy.json rules
    rpm: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    tpm: int | None = Field(default=None, ge=1, le=1_000_000_000, strict=True)
    disabled: bool = False  # its keys get 403 tenant_disabled

    @model_validator(mode="after")
    def _names_are_well_formed(self) -> TenantConfig:
        for field_name in ("allowed_models", "blocked_models", "preferred_models"):
            for model in getattr(self, field_name) or ():
                if not _matches(_MODEL_NAME, model):
                    raise ValueError(f"{field_name}: {model!r} is not 'provider/model'")
        for region in self.allowed_regions or ():
            if not _matches(REGION_PATTERN, region):
                raise ValueError(f"allowed_regions: {region!r} is not a region name (letters, digits, '_.:-')")
        for rule in self.policy:
            if not _matches(_RULE_NAME, rule):
                raise ValueError(f"policy: {rule!r} is not a rule name")
        return self

    @model_validator(mode="after")
    def _default_class_is_allowed(self) -> TenantConfig:
        allowed = self.allowed_data_classes
        if self.data_class is not None and allowed is not None and self.data_class not in allowed:
            raise ValueError(f"data_class: {self.data_class.value!r} is not in allowed_data_classes")
        return self


def _matches(pattern: str, text: str) -> bool:
    return re.match(pattern, text) is not None


def check_tenants(raw: Any, known_models: Collection[str], file: str) -> dict[str, TenantConfig]:
    """The tenants of a tenants.json value. Raises ValueError naming the file, the JSON path and the fix."""
    if not isinstance(raw, dict):
        raise ValueError(f'{file}: must be an object of tenants, e.g. {{"acme": {{"monthly_budget_usd": 100}}}}')
    tenants: dict[str, TenantConfig] = {}
    for tenant_id, fields in raw.items():
        if not _matches(TENANT_ID_PATTERN, tenant_id):
            raise ValueError(f"{file}: {tenant_id!r}: tenant ids use letters, digits, '_', '-', '.' (64 at most)")
        try:
            tenant = TenantConfig.model_validate(fields)
        except ValidationError as error:
            raise ValueError(f"{file}: {tenant_id}.{_problem(error)}") from None
        problem = check_tenant_models(tenant, known_models)
        if problem is not None:
            raise ValueError(f"{file}: {tenant_id}.{problem}")
        tenants[tenant_id] = tenant
    return tenants


def check_tenant_models(tenant: TenantConfig, known_models: Collection[str]) -> str | None:
    """``field: problem. Fix: ...`` for the first model the config does not have, else None."""
    for field_name in ("allowed_models", "blocked_models", "preferred_models"):
        for model in getattr(tenant, field_name) or ():
            if model not in known_models:
                return (
                    f"{field_name}: {model!r} is not a configured model. Fix: use 'provider/model' from providers.json"
                )
    return None


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    fix = "Fix: see docs/CONFIGURATION.md, tenants.json"
    return f"{location}: {message}. {fix}" if location else f"{message}. {fix}"


def tenant_rules(tenant_id: str, tenant: TenantConfig) -> TenantRules:
    """What policy and routing read of a tenant (``models.policy.TenantRules``)."""
    return TenantRules(
        tenant_id=tenant_id,
        allowed_models=None if tenant.allowed_models is None else frozenset(tenant.allowed_models),
        blocked_models=frozenset(tenant.blocked_models),
        preferred_models=tenant.preferred_models,
        allowed_regions=None if tenant.allowed_regions is None else frozenset(tenant.allowed_regions),
        allowed_data_classes=None if tenant.allowed_data_classes is None else frozenset(tenant.allowed_data_classes),
        policy=tenant.policy,
        data_class=tenant.data_class,
    )


def unknown_policy_rule(tenant: TenantConfig, rule_names: Collection[str]) -> str | None:
    """The first of the tenant's ``policy`` names that policy.json does not define, or None."""
    return next((name for name in tenant.policy if name not in rule_names), None)
