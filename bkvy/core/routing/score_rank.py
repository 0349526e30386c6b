"""Ranking by score and domain preference inside ``plan.py`` (issue 18 §2), compiled once per config.

``ScoringTable`` holds what scoring needs from config: each model's quality (declared, or its tier's default),
``domain_models`` and each scenario's priorities. ``Scorer`` reorders one preference group's candidates that fit
the deadline: by score when the request has weights (a scenario: by priority first, score among equal priority),
then, for intelligence routing, the request's domain models first. Plans that use neither never build one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from bkvy.core.routing.plan import Candidate, CandidateKey, CandidateState, LiveCandidate, RouteRequest
from bkvy.core.routing.scoring import (
    HEALTH_CLOSED,
    HEALTH_FLAPPING,
    HEALTH_HALF_OPEN,
    ScoreBreakdown,
    ScoreInputs,
    score_candidates,
)
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import IntelligenceLevel

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig
    from bkvy.core.routing.route_table import RouteEntry

# A model that declares no quality: its tier's default, named as a default in the explanation (docs/ROUTING.md).
DEFAULT_QUALITY = {IntelligenceLevel.LOW: 0.5, IntelligenceLevel.MEDIUM: 0.7, IntelligenceLevel.HIGH: 0.85}
_SCORED = (DecisionReason.HIGHEST_SCORE_WITHIN_ESTIMATE, DecisionReason.HIGHEST_SCORE_WITHIN_ESTIMATE_HIGHER_TIER)
_Row = tuple[Any, ...]
_new_tuple = tuple.__new__  # a NamedTuple from its fields in order, without its Python __new__ (as in plan.py)


def _fields_of(*names: str) -> Callable[[_Row], Any]:
    return itemgetter(*(Candidate._fields.index(name) for name in names))


_MODEL_OF = _fields_of("provider", "model")
_KEY_OF = _fields_of("provider", "model", "key_id")
_INPUT_FIELDS = _fields_of("estimated_cost_usd", "estimate_seconds", "used_in_minute")
_SORT_FIELDS = _fields_of("is_flapping", "used_in_minute", "last_used", "rank")
_REASON = Candidate._fields.index("reason")
if len(Candidate._fields) - 1 != _REASON:  # ``_with_reason`` replaces the last field
    raise TypeError("Candidate.reason must be its last field")


class ModelQuality(NamedTuple):
    overall: float
    by_domain: Mapping[str, float]
    is_default: bool

    def for_domain(self, domain: str | None) -> float:
        if domain is None:
            return self.overall
        return self.by_domain.get(domain, self.overall)


def model_quality(quality: float | Mapping[str, float] | None, tier: IntelligenceLevel | None) -> ModelQuality:
    """A model's quality from providers.json; without "overall" (or any quality), its tier's default."""
    default = DEFAULT_QUALITY.get(tier, DEFAULT_QUALITY[IntelligenceLevel.MEDIUM]) if tier else 0.7
    if quality is None:
        return ModelQuality(default, {}, True)
    if not isinstance(quality, Mapping):
        return ModelQuality(quality, {}, False)
    by_domain = {name: score for name, score in quality.items() if name != "overall"}
    overall = quality.get("overall")
    return ModelQuality(default if overall is None else overall, by_domain, overall is None)


@dataclass(frozen=True, slots=True)
class ScoringTable:
    qualities: Mapping[tuple[str, str], ModelQuality] = field(default_factory=dict)
    domain_models: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    priorities: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # scenario -> priority per rank

    @classmethod
    def compile(cls, config: GatewayConfig) -> ScoringTable:
        qualities = {
            (provider_name, model_name): model_quality(model.quality, model.intelligence_tier)
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
        }
        domain_models = {
            domain: tuple((name.partition("/")[0], name.partition("/")[2]) for name in names)
            for domain, names in config.routing.domain_models.items()
        }
        priorities = {name: tuple(e.priority for e in config.scenario(name) or ()) for name in config.routing.scenarios}
        return cls(qualities, domain_models, priorities)

    def scorer(
        self, request: RouteRequest, known: Mapping[CandidateKey, LiveCandidate], fill: Callable[[RouteEntry], Any]
    ) -> Scorer | None:
        """A ``Scorer`` for a request with weights, or with a domain that has domain models; else None."""
        preferred = self.domain_models.get(request.domain) if request.domain is not None else None
        if request.preferred:  # a tenant's preferred models come before its domain's (issue 19)
            preferred = request.preferred + tuple(p for p in preferred or () if p not in request.preferred)
        if request.weights is None and not preferred:
            return None
        return Scorer(self, request, known, fill, preferred or ())


class Scorer:
    """Reorders the fits of each group of one plan, and keeps each scored candidate's breakdown."""

    __slots__ = ("_table", "_request", "_known", "_fill", "_preferred", "scores")

    def __init__(
        self,
        table: ScoringTable,
        request: RouteRequest,
        known: Mapping[CandidateKey, LiveCandidate],
        fill: Callable[[RouteEntry], Any],
        preferred: tuple[tuple[str, str], ...],
    ) -> None:
        self._table, self._request, self._known, self._fill = table, request, known, fill
        self._preferred = preferred
        self.scores: dict[CandidateKey, ScoreBreakdown] | None = None  # None until a group is scored

    def order(
        self, fits: list[_Row], group: tuple[RouteEntry, ...], reason: DecisionReason, *, is_fallback: bool
    ) -> tuple[list[_Row], DecisionReason]:
        """Intelligence routing: ``fits`` (cheapest first) by score when weighted, then domain models first."""
        if not fits:
            return fits, reason
        if self._request.weights is not None:
            reason = _SCORED[is_fallback]
            fits = self._by_score(fits, group, reason, None)
        if self._preferred:
            fits = self._domain_first(fits)
        return fits, fits[0][_REASON]

    def order_scenario(self, fits: list[_Row], group: tuple[RouteEntry, ...]) -> list[_Row]:
        """A scenario's fits: priority first, then score among equal priority (flapping ones still last)."""
        if not fits or self._request.weights is None:
            return fits
        priorities = self._table.priorities.get(self._request.scenario or "", ())
        return self._by_score(fits, group, DecisionReason.SCENARIO_PRIORITY, priorities)

    def _by_score(
        self, fits: list[_Row], group: tuple[RouteEntry, ...], reason: DecisionReason, priorities: Sequence[int] | None
    ) -> list[_Row]:
        """``fits`` by score (after scenario priority, when given); flapping last; ties to the least used key."""
        assert self._request.weights is not None
        keys = [_new_tuple(CandidateKey, _KEY_OF(row)) for row in fits]
        breakdowns = score_candidates(self._request.weights, self._inputs(fits, keys, group))
        scores = self.scores = self.scores or {}
        scores.update(zip(keys, breakdowns, strict=True))
        sort_keys = []
        for row, breakdown in zip(fits, breakdowns, strict=True):
            is_flapping, used_in_minute, last_used, rank = _SORT_FIELDS(row)
            priority = priorities[rank] if priorities is not None else 0
            # equal inputs give bit-equal scores (one formula), so ties reach the least-used key
            sort_keys.append((is_flapping, priority, -breakdown.score, used_in_minute, last_used))
        order = sorted(range(len(fits)), key=sort_keys.__getitem__)
        return [_with_reason(fits[n], reason) for n in order]

    def _inputs(self, fits: list[_Row], keys: list[CandidateKey], group: tuple[RouteEntry, ...]) -> list[ScoreInputs]:
        qualities = self._table.qualities
        domain = self._request.domain
        known, entries = self._known, None
        inputs = []
        for row, key in zip(fits, keys, strict=True):
            live = known.get(key)
            if live is None:
                entries = entries or {entry.key: entry for entry in group}
                live = self._fill(entries[key])
            quality = qualities[_MODEL_OF(row)]
            score = quality.for_domain(domain)
            is_default = quality.is_default and (domain is None or domain not in quality.by_domain)
            cost, estimate_seconds, used_in_minute = _INPUT_FIELDS(row)
            health = HEALTH_CLOSED if live.is_steady else _health(live.state)
            fields = (cost, estimate_seconds, score, used_in_minute, health, is_default)
            inputs.append(_new_tuple(ScoreInputs, fields))
        return inputs

    def tenant_first(self, fits: list[_Row]) -> list[_Row]:
        """A scenario's or an adaptive route's fits with the tenant's preferred models first (issue 19): a
        tenant's preference holds whatever the ranking; a domain's applies to intelligence routing only."""
        if not self._request.preferred or not fits:
            return fits
        return self._domain_first(fits, self._request.preferred)

    def _domain_first(self, fits: list[_Row], preferred: tuple[tuple[str, str], ...] | None = None) -> list[_Row]:
        position = {pair: n for n, pair in enumerate(self._preferred if preferred is None else preferred)}
        chosen = [row for row in fits if _MODEL_OF(row) in position]
        if not chosen:
            return fits
        chosen.sort(key=lambda row: position[_MODEL_OF(row)])  # stable: a model's keys keep their order
        others = [row for row in fits if _MODEL_OF(row) not in position]
        tenants = self._request.preferred
        return [
            _with_reason(row, _TENANT if _MODEL_OF(row) in tenants else DecisionReason.DOMAIN_PREFERRED)
            for row in chosen
        ] + others


_TENANT = DecisionReason.TENANT_PREFERRED


def _with_reason(row: _Row, reason: DecisionReason) -> _Row:
    return row[:_REASON] + (reason,)


def _health(state: CandidateState) -> float:
    if state.is_flapping:
        return HEALTH_FLAPPING
    return HEALTH_CLOSED if state.is_closed else HEALTH_HALF_OPEN
