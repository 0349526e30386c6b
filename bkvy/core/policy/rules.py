"""Policy evaluation (issue 19 §1–2, §4): pure, a function of what was found, who asks and the config.

``decide`` takes a request's ``PolicyInputs`` and gives a ``PolicyDecision``: the action of the first rule in
scope that matches (``allow`` when none does), the (provider, model) pairs the request may go to, and the plan
lines ``[rule] PASS/BLOCK: reason``. Candidates are narrowed by every constraint that applies: the action
(``require_private``), a data-class rule's ``allowed_regions``, the first residency rule for the source region,
the tenant's allowed/blocked models, regions and data classes, and the key's allowed regions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bkvy.core.config.policy_config import PolicyConfig, PolicyRule, ResidencyRule
from bkvy.core.policy.detector import RequestScan
from bkvy.models.policy import DataClass, PiiKind, PolicyAction, PolicySubject
from bkvy.models.types import IntelligenceLevel

Pair = tuple[str, str]  # (provider, model)


@dataclass(frozen=True, slots=True)
class ModelPlace:
    """What policy knows of one model: its privacy and region (providers.json)."""

    provider: str
    model: str
    is_private: bool
    region: str | None


@dataclass(frozen=True, slots=True)
class PolicyInputs:
    scan: RequestScan
    data_class: DataClass | None = None  # the request's own (body or x-bkvy-data-class)
    source_region: str | None = None  # x-bkvy-source-region, when honoured
    level: IntelligenceLevel | None = None
    scenario: str | None = None
    subject: PolicySubject | None = None


@dataclass(frozen=True, slots=True)
class _Constraint:
    name: str  # the rule (or "tenant:<id>", "client_key:<name>") that narrows the candidates
    admits: Callable[[ModelPlace], bool]
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    action: PolicyAction
    rule: str | None  # the rule whose action applies; None: no rule matched (allow)
    allowed: frozenset[Pair] | None  # None: every model
    narrowed_by: tuple[str, ...]  # names of what narrowed the candidates (403/503 messages)
    kinds: frozenset[PiiKind]
    data_class: DataClass | None
    lines: tuple[str, ...]  # "[rule] PASS/BLOCK: reason"

    @property
    def header_value(self) -> str | None:
        """``x-bkvy-policy``: what policy did to this request; None when it did nothing."""
        parts = []
        if self.action is PolicyAction.REDACT and self.kinds:  # nothing found, nothing redacted: no "redacted:"
            parts.append("redacted:" + ",".join(sorted(kind.value for kind in self.kinds)))
        elif self.rule is not None and self.action not in (PolicyAction.ALLOW, PolicyAction.REDACT):
            parts.append(f"{self.action.value}:{self.rule}")
        shown = {self.rule} if parts else set()  # "require_private:<rule>" already names its rule
        parts += [f"restricted:{name}" for name in self.narrowed_by if name not in shown]
        return ";".join(parts) or None

    @property
    def is_narrowed(self) -> bool:
        return self.allowed is not None

    @property
    def data_class_name(self) -> str:
        return f"data class {self.data_class.value}" if self.data_class is not None else "no data class"


_SENSITIVITY = (DataClass.PUBLIC, DataClass.INTERNAL, DataClass.CONFIDENTIAL, DataClass.RESTRICTED)


def effective_data_class(inputs: PolicyInputs) -> DataClass | None:
    """The more sensitive of the request's data class and its key's (the api layer puts a tenant's default
    there): the key's or tenant's class is a floor a client can raise but never lower."""
    floor = inputs.subject.data_class if inputs.subject is not None else None
    own = inputs.data_class
    if own is None or floor is None:
        return own if floor is None else floor
    return max(own, floor, key=_SENSITIVITY.index)


def decide(policy: PolicyConfig | None, models: Sequence[ModelPlace], inputs: PolicyInputs) -> PolicyDecision:
    """The policy decision for one request (first matching rule in scope wins; constraints narrow the
    candidates). Pure; never reads a value of the request, only ``inputs.scan``'s kinds and count."""
    data_class = effective_data_class(inputs)
    lines: list[str] = []
    rule = _first_match(policy.rules if policy else (), inputs, data_class, lines)
    action = rule.action if rule is not None else PolicyAction.ALLOW
    constraints = _rule_constraints(rule)
    constraints += _residency_constraints(policy.residency if policy else (), inputs.source_region, lines)
    constraints += _subject_constraints(inputs.subject, data_class)
    allowed = None
    if constraints:
        remaining = list(models)
        for constraint in constraints:
            admitted = [m for m in remaining if constraint.admits(m)]
            # BLOCK: this constraint admits no model at all, or it is the one that empties the candidates
            refuses = not any(constraint.admits(m) for m in models) or (bool(remaining) and not admitted)
            lines.append(f"[{constraint.name}] {'BLOCK' if refuses else 'PASS'}: {constraint.reason}")
            remaining = admitted
        allowed = frozenset((m.provider, m.model) for m in remaining)
    return PolicyDecision(
        action,
        rule.name if rule is not None else None,
        allowed,
        tuple(dict.fromkeys(c.name for c in constraints)),
        inputs.scan.kinds,
        data_class,
        tuple(lines),
    )


def _first_match(
    rules: Sequence[PolicyRule], inputs: PolicyInputs, data_class: DataClass | None, lines: list[str]
) -> PolicyRule | None:
    for rule in rules:
        if not _is_in_scope(rule, inputs):
            continue
        found = _matches(rule, inputs.scan, data_class)
        if found is None:
            lines.append(f"[{rule.name}] PASS: not matched")
            continue
        verdict = "BLOCK" if rule.action is PolicyAction.BLOCK else "PASS"
        lines.append(f"[{rule.name}] {verdict}: {found}: {rule.action.value}")
        return rule
    return None


def _is_in_scope(rule: PolicyRule, inputs: PolicyInputs) -> bool:
    """Absent scope fields match everything. A tenant's ``policy`` naming the rule satisfies the scope's
    ``client_keys`` and ``tenants`` (who asks) only: its ``scenarios`` and ``levels`` still apply."""
    scope = rule.scope
    if scope is None:
        return True
    subject = inputs.subject
    tenant = subject.tenant if subject is not None else None
    client_key = subject.client_key if subject is not None else None
    named = tenant is not None and rule.name in tenant.policy
    return (
        (named or scope.client_keys is None or client_key in scope.client_keys)
        and (named or scope.tenants is None or (tenant is not None and tenant.tenant_id in scope.tenants))
        and (scope.scenarios is None or inputs.scenario in scope.scenarios)
        and (scope.levels is None or inputs.level in scope.levels)
    )


def _matches(rule: PolicyRule, scan: RequestScan, data_class: DataClass | None) -> str | None:
    """What matched, in words (kinds and counts only), or None."""
    match = rule.match
    if match.pii:
        return _found(scan.kinds, scan.count) if scan.count else None
    if match.pii_kinds is not None:
        kinds = scan.kinds & frozenset(match.pii_kinds)
        return _found(kinds, None) if kinds else None
    return f"data class {data_class.value}" if data_class is not None and data_class is match.data_class else None


def _found(kinds: frozenset[PiiKind], count: int | None) -> str:
    names = ",".join(sorted(kind.value for kind in kinds))
    return f"found {names}" + (f" ({count})" if count is not None else "")


def _rule_constraints(rule: PolicyRule | None) -> list[_Constraint]:
    if rule is None:
        return []
    constraints = []
    if rule.action is PolicyAction.REQUIRE_PRIVATE:
        constraints.append(_Constraint(rule.name, lambda m: m.is_private, "private models only"))
    regions = rule.allowed_regions
    if regions is not None:
        constraints.append(_in_regions(rule.name, frozenset(regions)))
    return constraints


def _in_regions(name: str, regions: frozenset[str]) -> _Constraint:
    return _Constraint(name, lambda m: m.region in regions, "model regions " + ",".join(sorted(regions)))


def _residency_constraints(
    residency: Sequence[ResidencyRule], source_region: str | None, lines: list[str]
) -> list[_Constraint]:
    """The first residency rule naming the source region (none without one)."""
    if source_region is None:
        return []
    for rule in residency:
        if source_region in rule.source_regions:
            regions, blocked = frozenset(rule.allowed_model_regions), frozenset(rule.blocked_providers)
            reason = f"from {source_region}: model regions " + ",".join(sorted(regions))
            if blocked:
                reason += "; not " + ",".join(sorted(blocked))
            return [_residency(rule.name, regions, blocked, reason)]
    return []


def _residency(name: str, regions: frozenset[str], blocked: frozenset[str], reason: str) -> _Constraint:
    return _Constraint(name, lambda m: m.region in regions and m.provider not in blocked, reason)


def _subject_constraints(subject: PolicySubject | None, data_class: DataClass | None) -> list[_Constraint]:
    """The tenant's model and region lists and data classes, the key's regions."""
    if subject is None:
        return []
    constraints = []
    tenant = subject.tenant
    if tenant is not None:
        name = f"tenant:{tenant.tenant_id}"
        allowed, blocked = tenant.allowed_models, tenant.blocked_models
        if allowed is not None or blocked:
            constraints.append(
                _Constraint(name, lambda m: _is_listed(m, allowed, blocked), "the tenant's allowed/blocked models")
            )
        if tenant.allowed_regions is not None:
            constraints.append(_in_regions(name, tenant.allowed_regions))
        classes = tenant.allowed_data_classes
        if classes is not None and data_class is not None and data_class not in classes:
            constraints.append(_Constraint(name, lambda m: False, f"data class {data_class.value} not allowed"))
    if subject.allowed_regions is not None:
        constraints.append(_in_regions(f"client_key:{subject.client_key}", subject.allowed_regions))
    return constraints


def _is_listed(model: ModelPlace, allowed: frozenset[str] | None, blocked: frozenset[str]) -> bool:
    name = f"{model.provider}/{model.model}"
    return (allowed is None or name in allowed) and name not in blocked
