"""config/policy.json (issue 19): policy rules and data residency, validated once with the rest of the config.

Optional: no file, no policy. Rule names are unique; actions, kinds, data classes, scenarios and levels must be
known. Client key and tenant names in a rule's scope cannot be checked here (keys and tenants change at run
time): a scope naming an unknown one simply never matches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bkvy.models.policy import DataClass, PiiKind, PolicyAction
from bkvy.models.types import IntelligenceLevel

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMatch(_Strict):
    """What a rule matches: any finding (``pii``), some kinds (``pii_kinds``) or a data class; exactly one."""

    pii: bool | None = None
    pii_kinds: tuple[PiiKind, ...] | None = Field(default=None, min_length=1)
    data_class: DataClass | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RuleMatch:
        given = [name for name in ("pii", "pii_kinds", "data_class") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError('give exactly one of {"pii": true}, {"pii_kinds": [...]} or {"data_class": "..."}')
        if self.pii is False:
            raise ValueError('"pii": false matches nothing; use {"pii": true} or drop the rule')
        return self


class RuleScope(_Strict):
    client_keys: tuple[str, ...] | None = None  # client key names (not checked at load)
    tenants: tuple[str, ...] | None = None  # tenant ids (not checked at load)
    scenarios: tuple[str, ...] | None = None
    levels: tuple[IntelligenceLevel, ...] | None = None


class PolicyRule(_Strict):
    name: str = Field(pattern=_NAME)
    match: RuleMatch
    action: PolicyAction
    scope: RuleScope | None = None  # None: everywhere
    allowed_regions: tuple[str, ...] | None = Field(default=None, min_length=1)  # data-class rules: model regions


class ResidencyRule(_Strict):
    name: str = Field(pattern=_NAME)
    source_regions: tuple[str, ...] = Field(min_length=1)
    allowed_model_regions: tuple[str, ...] = Field(min_length=1)
    blocked_providers: tuple[str, ...] = ()


class PolicyConfig(_Strict):
    rules: tuple[PolicyRule, ...] = ()
    residency: tuple[ResidencyRule, ...] = ()

    @model_validator(mode="after")
    def _names_are_unique(self) -> PolicyConfig:
        seen: set[str] = set()
        for name in [r.name for r in self.rules] + [r.name for r in self.residency]:
            if name in seen:
                raise ValueError(f"rule name {name!r} is used twice: rule names must be unique")
            seen.add(name)
        return self


class PolicyConfigError(ValueError):
    """policy.json is invalid; the message names the file, the JSON path and the fix (load_config makes it a
    ConfigError)."""


def build_policy(raw: Any, config: GatewayConfig, *, policy_file: str = "policy.json") -> PolicyConfig:
    """Validate policy.json's JSON value against ``config`` (its scenarios, providers). Raises PolicyConfigError."""
    try:
        policy = PolicyConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise PolicyConfigError(f"{policy_file}: {location}: {first['msg']}") from None
    for index, rule in enumerate(policy.rules):
        unknown = sorted(set(rule.scope.scenarios or ()) - set(config.routing.scenarios)) if rule.scope else []
        if unknown:
            raise PolicyConfigError(
                f"{policy_file}: rules.{index}.scope.scenarios: unknown scenario {unknown[0]!r}. "
                f"Fix: use one of {sorted(config.routing.scenarios)}"
            )
        if rule.allowed_regions is not None and rule.match.data_class is None:
            raise PolicyConfigError(
                f'{policy_file}: rules.{index}.allowed_regions: only a {{"data_class": ...}} rule takes regions. '
                'Fix: move it to a data-class rule, or use a "residency" rule'
            )
    for index, residency in enumerate(policy.residency):
        unknown = sorted(set(residency.blocked_providers) - set(config.providers))
        if unknown:
            raise PolicyConfigError(
                f"{policy_file}: residency.{index}.blocked_providers: unknown provider {unknown[0]!r}. "
                f"Fix: use one of {sorted(config.providers)}"
            )
    return policy


def load_policy(path: Path, config: GatewayConfig) -> PolicyConfig | None:
    """config/policy.json beside providers.json, or None when there is none. Raises PolicyConfigError."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyConfigError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise PolicyConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return build_policy(raw, config, policy_file=str(path))


def policy_rule_names(policy: PolicyConfig | None) -> frozenset[str]:
    """The names of policy.json's rules (what a tenant's or a scope's ``policy`` may name)."""
    return frozenset() if policy is None else frozenset(rule.name for rule in policy.rules)
