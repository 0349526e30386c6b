"""The routing decision (SPEC §5): a pure function of (request, config, snapshot).

The per-candidate records are NamedTuples rather than frozen dataclasses: equally immutable, and several
times cheaper to build and hash, which matters when a plan ranks hundreds of candidates per request.

No I/O, no clock, no await: ``plan_route`` ranks every candidate (provider, model, key) and says why,
so it is tested by building a snapshot by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from bkvy.models.errors import NoCandidates, UnknownKey, UnknownModel, UnknownProvider, UnknownScenario
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod

if TYPE_CHECKING:
    from bkvy.core.config import GatewayConfig

_PANIC_REASONS = {ErrorClass.SERVER, ErrorClass.TIMEOUT, ErrorClass.CONNECTION}


class CandidateKey(NamedTuple):
    provider: str
    model: str
    key_id: str


class CandidateState(NamedTuple):
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


class RouteRequest(NamedTuple):
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


class Candidate(NamedTuple):
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


class Skipped(NamedTuple):
    provider: str
    model: str
    key_id: str
    reason: str                 # "circuit_open" | "rate_limited" | "circuit_not_closed"
    wait_seconds: float = 0.0


class RoutePlan(NamedTuple):
    candidates: tuple[Candidate, ...]
    decision_reason: str
    skipped: tuple[Skipped, ...] = ()

    @property
    def rate_limit_retry_after_seconds(self) -> float | None:
        waits = [s.wait_seconds for s in self.skipped if s.reason == "rate_limited"]
        return min(waits) if waits else None


@dataclass(frozen=True, slots=True)
class _Entry:
    """One (provider, model, key) with what routing needs from config, compiled once."""

    key: CandidateKey
    input_price_per_1k: float
    output_price_per_1k: float
    seed: CandidateState       # used when the snapshot knows nothing about this candidate
    rank: int                  # scenario: position of its entry in priority order


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every candidate list routing can be asked for, precomputed from one GatewayConfig."""

    tiers: dict[int, tuple[_Entry, ...]]
    scenarios: dict[str, tuple[_Entry, ...]]
    models: dict[tuple[str, str], tuple[_Entry, ...]]
    providers: frozenset[str]

    @classmethod
    def compile(cls, config: GatewayConfig) -> RouteTable:
        models: dict[tuple[str, str], tuple[_Entry, ...]] = {}
        tiers: dict[int, list[_Entry]] = {}
        for provider_name, provider in config.providers.items():
            for model_name, model in provider.models.items():
                seed = CandidateState(expected_latency_seconds=model.expected_latency_ms / 1000.0)
                entries = tuple(_Entry(CandidateKey(provider_name, model_name, key_id), model.input_price_per_1k,
                                       model.output_price_per_1k, seed, 0) for key_id in provider.keys)
                models[(provider_name, model_name)] = entries
                tiers.setdefault(model.intelligence_tier.rank, []).extend(entries)
        scenarios = {}
        for name in config.routing.scenarios:
            scenario_entries = config.scenario(name) or []
            scenarios[name] = tuple(_Entry(e.key, e.input_price_per_1k, e.output_price_per_1k, e.seed, rank)
                                    for rank, entry in enumerate(scenario_entries)
                                    for e in models[(entry.provider, entry.model)])
        return cls({rank: tuple(entries) for rank, entries in tiers.items()}, scenarios, models,
                   frozenset(config.providers))

    def groups_for(self, request: RouteRequest) -> list[tuple[_Entry, ...]]:
        """Candidates in preference groups: intelligence routing's higher tiers come after its own tier."""
        if request.method is RoutingMethod.SCENARIO:
            entries = self.scenarios.get(request.scenario or "")
            if entries is None:
                raise UnknownScenario(f"unknown scenario {request.scenario!r}")
            return [entries]
        if request.method is RoutingMethod.DIRECT:
            return [self._direct(request)]
        assert request.level is not None
        groups = [self.tiers[rank] for rank in sorted(self.tiers) if rank >= request.level.rank]
        if not groups:
            raise NoCandidates(f"no model is configured at tier {request.level.value!r} or above")
        return groups

    def _direct(self, request: RouteRequest) -> tuple[_Entry, ...]:
        if request.provider not in self.providers:
            raise UnknownProvider(f"unknown provider {request.provider!r}")
        entries = self.models.get((request.provider or "", request.model or ""))
        if entries is None:
            raise UnknownModel(f"provider {request.provider!r} has no model {request.model!r}")
        if request.key_id is None:
            return entries
        chosen = tuple(e for e in entries if e.key.key_id == request.key_id)
        if not chosen:
            raise UnknownKey(f"provider {request.provider!r} has no key id {request.key_id!r}")
        return chosen


# The working row while ranking: flat, so every sort key is an ``itemgetter`` (C, no Python call per row)
# and a Candidate is the entry's key plus a slice of the row.
_Row = tuple   # (provider, model, key_id, cost, rate_limit_wait, queue_wait, latency, is_flapping, wait,
#                 used_in_minute, last_used, rank, estimate)
_CANDIDATE_FIELDS = slice(0, 7)          # Candidate's fields but the reason
_ESTIMATE = 12
_new_tuple = tuple.__new__

# Sort keys. Ties between equal choices go to the key used least in the last minute, then least recently.
_by_cost = itemgetter(7, 3, 9, 10)              # flapping last, then cheapest
_by_priority = itemgetter(7, 11, 8, 9, 10)      # flapping last, then scenario order, then shortest wait
_by_wait = itemgetter(7, 8, 9, 10)              # direct: flapping last, then shortest wait


def _by_speed(row: _Row) -> tuple:
    """Flapping last, then the soonest answer (waits + latency; rounded so float noise does not decide)."""
    return (row[7], round(row[12], 6), row[9], row[10])


def plan_route(request: RouteRequest, config: GatewayConfig,
               snapshot: Mapping[CandidateKey, CandidateState]) -> RoutePlan:
    """Rank the candidates for ``request``. Raises Unknown*/NoCandidates (404) for bad names."""
    groups = config.route_table.groups_for(request)
    ranked: list[Candidate] = []
    skipped: list[Skipped] = []
    decision_reason = ""
    for index, group in enumerate(groups):
        rows = _usable_rows(request, group, snapshot, skipped)
        ordered, reason = _order(request, rows, fallback=index > 0)
        ranked.extend(ordered)
        decision_reason = decision_reason or (reason if ordered else "")
    if not ranked:
        panic = _panic_candidate(request, groups, snapshot)
        if panic is not None:
            return RoutePlan((panic,), "panic_mode", tuple(skipped))
    return RoutePlan(tuple(ranked), decision_reason or "no_candidate_available", tuple(skipped))


def _row(request: RouteRequest, entry: _Entry, state: CandidateState) -> _Row:
    cost = (request.input_tokens_estimate * entry.input_price_per_1k
            + request.output_tokens_estimate * entry.output_price_per_1k) / 1000.0
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    return (*entry.key, cost, state.rate_limit_wait_seconds, state.queue_wait_seconds,
            state.expected_latency_seconds, state.is_flapping, wait, state.used_in_minute, state.last_used,
            entry.rank, wait + state.expected_latency_seconds)


def _usable_rows(request: RouteRequest, group: tuple[_Entry, ...], snapshot: Mapping[CandidateKey, CandidateState],
                 skipped: list[Skipped]) -> list[_Row]:
    """The group's usable candidates as rows; refusals go to ``skipped``.

    The hot loop of routing (it runs once per candidate per request), so ``_row`` is inlined here.
    """
    get = snapshot.get
    fast_mode, max_wait = request.fast_mode, request.max_wait_seconds
    input_tokens, output_tokens = request.input_tokens_estimate, request.output_tokens_estimate
    rows: list[_Row] = []
    append = rows.append
    for entry in group:
        key = entry.key
        state = get(key) or entry.seed
        (latency, rate_limit_wait, queue_wait, used_in_minute, last_used, is_closed, allows_request, _, _,
         is_flapping) = state
        wait = rate_limit_wait + queue_wait
        if allows_request and (is_closed or not fast_mode) and (wait <= 0 or (max_wait is not None
                                                                              and wait <= max_wait)):
            cost = (input_tokens * entry.input_price_per_1k + output_tokens * entry.output_price_per_1k) / 1000.0
            append((key[0], key[1], key[2], cost, rate_limit_wait, queue_wait, latency, is_flapping, wait,
                    used_in_minute, last_used, entry.rank, wait + latency))
        else:
            skipped.append(_refusal(request, key, state))
    return rows


def _refusal(request: RouteRequest, key: CandidateKey, state: CandidateState) -> Skipped:
    if not state.allows_request:
        return Skipped(key.provider, key.model, key.key_id, "circuit_open")
    if request.fast_mode and not state.is_closed:
        return Skipped(key.provider, key.model, key.key_id, "circuit_not_closed")
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    return Skipped(key.provider, key.model, key.key_id, "rate_limited", wait)


def _candidate(row: _Row, reason: str) -> Candidate:
    return _candidates([row], reason)[0]


def _candidates(rows: list[_Row], reason: str) -> list[Candidate]:
    fields, tail = _CANDIDATE_FIELDS, (reason,)
    return [_new_tuple(Candidate, row[fields] + tail) for row in rows]


def _order(request: RouteRequest, rows: list[_Row], *, fallback: bool) -> tuple[list[Candidate], str]:
    if request.method is RoutingMethod.SCENARIO:
        rows.sort(key=_by_priority)
        return _candidates(rows, "scenario_priority"), "scenario_priority"
    if request.method is RoutingMethod.DIRECT:
        rows.sort(key=_by_wait)
        return _candidates(rows, "direct"), "direct"
    suffix = "_higher_tier" if fallback else ""
    deadline = request.max_wait_seconds
    if not request.fast_mode:
        fits = rows if deadline is None else [r for r in rows if r[_ESTIMATE] <= deadline]
        if fits:
            late = [] if deadline is None else [r for r in rows if r[_ESTIMATE] > deadline]
            fits.sort(key=_by_cost)
            late.sort(key=_by_speed)
            reason = "cheapest_within_estimate" + suffix
            return _candidates(fits, reason) + _candidates(late, "outside_estimate"), reason
    reason = "fastest_available" + suffix
    rows.sort(key=_by_speed)
    return _candidates(rows, reason), reason


def _panic_candidate(request: RouteRequest, groups: Sequence[tuple[_Entry, ...]],
                     snapshot: Mapping[CandidateKey, CandidateState]) -> Candidate | None:
    """Every candidate is open for server/timeout reasons: try the one whose backoff ends soonest."""
    rows = [(entry, snapshot.get(entry.key)) for group in groups for entry in group]
    if not rows or any(s is None or s.allows_request or s.open_reason not in _PANIC_REASONS for _, s in rows):
        return None
    entry, state = min(rows, key=lambda row: row[1].open_until or 0.0)
    return _candidate(_row(request, entry, state), "panic_mode")
