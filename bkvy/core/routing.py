"""The routing decision (SPEC §5): a pure function of (request, config, snapshot).

No I/O, no clock, no await: ``plan_route`` ranks every candidate (provider, model, key) and says why,
so it is tested by building a snapshot by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bkvy.core.config import GatewayConfig
from bkvy.models.errors import NoCandidates, UnknownKey, UnknownModel, UnknownProvider, UnknownScenario
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod

_PANIC_REASONS = {ErrorClass.SERVER, ErrorClass.TIMEOUT, ErrorClass.CONNECTION}


@dataclass(frozen=True, slots=True)
class CandidateKey:
    provider: str
    model: str
    key_id: str


@dataclass(frozen=True, slots=True)
class CandidateState:
    """Live state of one candidate, taken by the executor just before planning."""

    expected_latency_seconds: float
    rate_limit_wait_seconds: float = 0.0
    queue_wait_seconds: float = 0.0
    used_in_minute: int = 0
    last_used: float = float("-inf")
    is_closed: bool = True               # circuit CLOSED
    allows_request: bool = True          # False while OPEN and its backoff has not ended
    open_reason: ErrorClass | None = None
    open_until: float | None = None
    is_flapping: bool = False


@dataclass(frozen=True, slots=True)
class RouteRequest:
    method: RoutingMethod
    level: IntelligenceLevel | None = None
    scenario: str | None = None
    provider: str | None = None
    model: str | None = None
    key_id: str | None = None
    max_wait_seconds: float | None = None
    input_tokens_estimate: int = 0
    output_tokens_estimate: int = 500
    fast_mode: bool = False              # soft timeout reached: closed circuits only, fastest first


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    model: str
    key_id: str
    estimated_cost_usd: float
    rate_limit_wait_seconds: float
    queue_wait_seconds: float
    expected_latency_seconds: float
    reason: str

    @property
    def wait_seconds(self) -> float:
        return self.rate_limit_wait_seconds + self.queue_wait_seconds

    @property
    def estimate_seconds(self) -> float:
        return self.wait_seconds + self.expected_latency_seconds


@dataclass(frozen=True, slots=True)
class Skipped:
    provider: str
    model: str
    key_id: str
    reason: str                 # "circuit_open" | "rate_limited" | "circuit_not_closed"
    wait_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    candidates: tuple[Candidate, ...]
    decision_reason: str
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)

    @property
    def rate_limit_retry_after_seconds(self) -> float | None:
        waits = [s.wait_seconds for s in self.skipped if s.reason == "rate_limited"]
        return min(waits) if waits else None


def plan_route(request: RouteRequest, config: GatewayConfig,
               snapshot: Mapping[CandidateKey, CandidateState]) -> RoutePlan:
    """Rank the candidates for ``request``. Raises Unknown*/NoCandidates (404) for bad names."""
    groups = _candidate_groups(request, config)
    ranked: list[Candidate] = []
    skipped: list[Skipped] = []
    decision_reason = ""
    for index, group in enumerate(groups):
        usable = []
        for key in group:
            state = snapshot.get(key) or _seed_state(config, key)
            refusal = _refusal(request, key, state)
            if refusal is not None:
                skipped.append(refusal)
            else:
                usable.append((key, state))
        ordered, reason = _order(request, config, usable, fallback=index > 0)
        ranked.extend(ordered)
        decision_reason = decision_reason or (reason if ordered else "")
    if not ranked:
        panic = _panic_candidate(request, config, groups, snapshot)
        if panic is not None:
            return RoutePlan((panic,), "panic_mode", tuple(skipped))
    return RoutePlan(tuple(ranked), decision_reason or "no_candidate_available", tuple(skipped))


def _seed_state(config: GatewayConfig, key: CandidateKey) -> CandidateState:
    model = config.providers[key.provider].models[key.model]
    return CandidateState(expected_latency_seconds=model.expected_latency_ms / 1000.0)


def _candidate_groups(request: RouteRequest, config: GatewayConfig) -> list[list[CandidateKey]]:
    """Candidates in preference groups: intelligence routing's higher tiers come after its own tier."""
    if request.method is RoutingMethod.SCENARIO:
        entries = config.scenario(request.scenario or "")
        if entries is None:
            raise UnknownScenario(f"unknown scenario {request.scenario!r}")
        return [[key for entry in entries for key in _keys_of(config, entry.provider, entry.model)]]
    if request.method is RoutingMethod.DIRECT:
        return [_direct_keys(request, config)]
    assert request.level is not None
    by_rank: dict[int, list[CandidateKey]] = {}
    for provider_name, provider in config.providers.items():
        for model_name, model in provider.models.items():
            if model.intelligence_tier.rank >= request.level.rank:
                by_rank.setdefault(model.intelligence_tier.rank, []).extend(
                    _keys_of(config, provider_name, model_name))
    if not by_rank:
        raise NoCandidates(f"no model is configured at tier {request.level.value!r} or above")
    return [by_rank[rank] for rank in sorted(by_rank)]


def _keys_of(config: GatewayConfig, provider: str, model: str) -> list[CandidateKey]:
    return [CandidateKey(provider, model, key_id) for key_id in config.providers[provider].keys]


def _direct_keys(request: RouteRequest, config: GatewayConfig) -> list[CandidateKey]:
    provider = config.providers.get(request.provider or "")
    if provider is None:
        raise UnknownProvider(f"unknown provider {request.provider!r}")
    if request.model not in provider.models:
        raise UnknownModel(f"provider {request.provider!r} has no model {request.model!r}")
    if request.key_id is not None:
        if request.key_id not in provider.keys:
            raise UnknownKey(f"provider {request.provider!r} has no key id {request.key_id!r}")
        return [CandidateKey(request.provider or "", request.model or "", request.key_id)]
    return _keys_of(config, request.provider or "", request.model or "")


def _refusal(request: RouteRequest, key: CandidateKey, state: CandidateState) -> Skipped | None:
    if not state.allows_request:
        return Skipped(key.provider, key.model, key.key_id, "circuit_open")
    if request.fast_mode and not state.is_closed:
        return Skipped(key.provider, key.model, key.key_id, "circuit_not_closed")
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    if wait > 0 and (request.max_wait_seconds is None or wait > request.max_wait_seconds):
        return Skipped(key.provider, key.model, key.key_id, "rate_limited", wait)
    return None


def _candidate(config: GatewayConfig, request: RouteRequest, key: CandidateKey, state: CandidateState,
               reason: str) -> Candidate:
    model = config.providers[key.provider].models[key.model]
    cost = (request.input_tokens_estimate * model.input_price_per_1k
            + request.output_tokens_estimate * model.output_price_per_1k) / 1000.0
    return Candidate(key.provider, key.model, key.key_id, cost, state.rate_limit_wait_seconds,
                     state.queue_wait_seconds, state.expected_latency_seconds, reason)


def _spread(state: CandidateState) -> tuple[int, float]:
    """Tie-break between equal choices: the key used least in the last minute, then least recently."""
    return (state.used_in_minute, state.last_used)


def _order(request: RouteRequest, config: GatewayConfig,
           usable: list[tuple[CandidateKey, CandidateState]], *, fallback: bool) -> tuple[list[Candidate], str]:
    if request.method is RoutingMethod.SCENARIO:
        return _ranked(request, config, usable, lambda i, c, s: (s.is_flapping, i, c.wait_seconds, _spread(s)),
                       "scenario_priority"), "scenario_priority"
    if request.method is RoutingMethod.DIRECT:
        return _ranked(request, config, usable, lambda i, c, s: (s.is_flapping, c.wait_seconds, _spread(s)),
                       "direct"), "direct"
    suffix = "_higher_tier" if fallback else ""
    built = [(_candidate(config, request, key, state, ""), state) for key, state in usable]
    deadline = request.max_wait_seconds
    fits = [(c, s) for c, s in built if deadline is None or c.estimate_seconds <= deadline]
    if fits and not request.fast_mode:
        late = [(c, s) for c, s in built if (c, s) not in fits]
        first = sorted(fits, key=lambda cs: (cs[1].is_flapping, round(cs[0].estimated_cost_usd, 12), _spread(cs[1])))
        rest = sorted(late, key=lambda cs: (cs[1].is_flapping, cs[0].estimate_seconds))
        reason = "cheapest_within_estimate" + suffix
        return [_with_reason(c, reason) for c, _ in first] + [_with_reason(c, "outside_estimate") for c, _ in rest], reason
    reason = "fastest_available" + suffix
    ordered = sorted(built, key=lambda cs: (cs[1].is_flapping, round(cs[0].estimate_seconds, 6), _spread(cs[1])))
    return [_with_reason(c, reason) for c, _ in ordered], reason


def _ranked(request: RouteRequest, config: GatewayConfig, usable: list[tuple[CandidateKey, CandidateState]],
            sort_key, reason: str) -> list[Candidate]:
    entry_rank: dict[tuple[str, str], int] = {}
    for key, _ in usable:
        entry_rank.setdefault((key.provider, key.model), len(entry_rank))
    built = [(entry_rank[(key.provider, key.model)], _candidate(config, request, key, state, reason), state)
             for key, state in usable]
    return [c for _, c, _ in sorted(built, key=lambda ics: sort_key(*ics))]


def _with_reason(candidate: Candidate, reason: str) -> Candidate:
    return Candidate(candidate.provider, candidate.model, candidate.key_id, candidate.estimated_cost_usd,
                     candidate.rate_limit_wait_seconds, candidate.queue_wait_seconds,
                     candidate.expected_latency_seconds, reason)


def _panic_candidate(request: RouteRequest, config: GatewayConfig, groups: Iterable[list[CandidateKey]],
                     snapshot: Mapping[CandidateKey, CandidateState]) -> Candidate | None:
    """Every candidate is open for server/timeout reasons: try the one whose backoff ends soonest."""
    keys = [key for group in groups for key in group]
    states = [(key, snapshot.get(key)) for key in keys]
    if not states or any(s is None or s.allows_request or s.open_reason not in _PANIC_REASONS for _, s in states):
        return None
    key, state = min(states, key=lambda ks: ks[1].open_until or 0.0)
    return _candidate(config, request, key, state, "panic_mode")
