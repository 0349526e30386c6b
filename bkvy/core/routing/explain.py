"""A route's full plan as data, without sending (issue 18 §5): every candidate, why it sits where it does or
why it would not be tried, and the one the executor would try first.

Pure: a function of (request, route table, a snapshot of live states, now). The ranking is ``plan_route``'s
own; this only lists what the plan leaves out (``RouteTable.listed_groups_for``) and says why, in words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from bkvy.core.config.pricing import cost_usd
from bkvy.core.routing.plan import (
    Candidate,
    CandidateKey,
    CandidateState,
    RoutePlan,
    RouteRequest,
    Skipped,
    plan_route,
)
from bkvy.models.outcomes import DecisionReason, SkipReason

if TYPE_CHECKING:
    from bkvy.core.routing.route_table import RouteEntry, RouteTable
    from bkvy.core.routing.scoring import ScoreBreakdown


class ExcludedBy(str, Enum):
    """Why the executor would not try a candidate (or, ``DEADLINE``, would try it only after the others)."""

    CIRCUIT = "circuit"  # open, or not closed in fast mode
    LIMIT = "limit"  # its rate-limit wait is past the request's max wait
    DEADLINE = "deadline"  # its estimate is past max_wait_seconds: still tried, after every one that fits
    CAPABILITY = "capability"  # it cannot serve this request (json_schema, chat/embeddings, its input)
    POLICY = "policy"  # policy (issue 19) does not allow its model for this request


@dataclass(frozen=True, slots=True)
class ExplainedCandidate:
    provider: str
    model: str
    key_id: str
    position: int | None  # 1-based place in the order the executor tries; None: never tried
    excluded_by: ExcludedBy | None
    reasons: tuple[str, ...]
    estimated_cost_usd: float
    estimate_seconds: float
    score: float | None = None  # set when the plan ranks by score (issue 18 §2)
    score_components: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    route: RouteRequest
    decision_reason: DecisionReason
    candidates: tuple[ExplainedCandidate, ...]  # those tried, in order, then those excluded

    @property
    def chosen(self) -> ExplainedCandidate | None:
        """What the executor would try first; None when nothing would be tried."""
        first = self.candidates[0] if self.candidates else None
        return first if first is not None and first.position == 1 else None


_SKIP_EXCLUSIONS = {
    SkipReason.CIRCUIT_OPEN: ExcludedBy.CIRCUIT,
    SkipReason.CIRCUIT_NOT_CLOSED: ExcludedBy.CIRCUIT,
    SkipReason.RATE_LIMITED: ExcludedBy.LIMIT,
}


def explain_route(
    request: RouteRequest,
    table: RouteTable,
    snapshot: Mapping[CandidateKey, CandidateState],
    *,
    now: float,
    accepts_input: Callable[[CandidateKey], bool] | None = None,
    reorder: Callable[[RoutePlan], RoutePlan] | None = None,
    policy_words: str = "policy",
) -> Explanation:
    """The plan ``plan_route`` makes for ``request`` over ``snapshot`` (states read at monotonic ``now``), with
        every candidate of the route and why. ``accepts_input``: whether a candidate's wire format can carry the
        request's input (the executor's check before sending); None: all can. ``reorder``: what the executor does to
    a plan after ranking (a replicated model's replica order). ``policy_words``: what narrowed
    ``request.allowed`` (e.g. "rule 'pii-to-private'"). Raises Unknown*/NoCandidates (404)."""
    groups = table.listed_groups_for(request)
    entries = {entry.key: entry for group in groups for entry in group}
    unfit = {key: why for key, entry in entries.items() if (why := _capability_gap(request, table, entry))}
    unfit_rows = [
        _excluded(request, entries[key], snapshot, ExcludedBy.CAPABILITY, (why,)) for key, why in unfit.items()
    ]
    allowed = request.allowed
    if allowed is not None:
        why = f"{policy_words} does not allow this model for this request"
        banned = [key for key in entries if key not in unfit and (key.provider, key.model) not in allowed]
        unfit_rows += [_excluded(request, entries[key], snapshot, ExcludedBy.POLICY, (why,)) for key in banned]
        unfit.update(dict.fromkeys(banned, why))
    if len(unfit) == len(entries):
        return Explanation(request, DecisionReason.NO_CANDIDATE_AVAILABLE, tuple(unfit_rows))
    plan = plan_route(request, table, snapshot)
    if reorder is not None:
        plan = reorder(plan)
    tried: list[ExplainedCandidate] = []
    excluded: list[ExplainedCandidate] = []
    for candidate in plan.candidates:
        if accepts_input is not None and not accepts_input(_key(candidate)):
            why = "its wire format cannot carry this input (e.g. a remote image URL): skipped when reached"
            excluded.append(_excluded(request, entries[_key(candidate)], snapshot, ExcludedBy.CAPABILITY, (why,)))
        else:
            tried.append(_tried(request, candidate, len(tried) + 1, snapshot, now, plan.scores))
    listed = {CandidateKey(c.provider, c.model, c.key_id) for c in (*tried, *excluded)}
    for skip in plan.skipped:
        if (skip.provider, skip.model, skip.key_id) not in listed:
            entry = entries[CandidateKey(skip.provider, skip.model, skip.key_id)]
            excluded.append(_skipped(request, entry, skip, snapshot, now))
    excluded += unfit_rows
    decision_reason = plan.decision_reason if tried else DecisionReason.NO_CANDIDATE_AVAILABLE
    return Explanation(request, decision_reason, tuple(tried + excluded))


def _key(candidate: Candidate) -> CandidateKey:
    return CandidateKey(candidate.provider, candidate.model, candidate.key_id)


def _capability_gap(request: RouteRequest, table: RouteTable, entry: RouteEntry) -> str | None:
    """Why this entry's model cannot serve the request at all, or None."""
    if table.is_embedding(entry.key) != request.wants_embeddings:
        return "an embedding model: use it on POST /v1/embeddings" if not request.wants_embeddings else "a chat model"
    if request.needs_json and not entry.has_json:
        return "no 'json' capability: it cannot honour a json_schema response_format"
    return None


def _tried(
    request: RouteRequest,
    candidate: Candidate,
    position: int,
    snapshot: Mapping[CandidateKey, CandidateState],
    now: float,
    scores: Mapping[CandidateKey, ScoreBreakdown] | None,
) -> ExplainedCandidate:
    reasons = [f"#{position}: {_DECISION_WORDS.get(candidate.reason, candidate.reason.value)}"]
    reasons += _estimate_reasons(request, candidate)
    reasons += _circuit_reasons(snapshot.get(_key(candidate)), now)
    sample = None if request.samples is None else request.samples.get((candidate.provider, candidate.model))
    if sample is not None:
        reasons.append(f"adaptive: bandit draw {sample:.3f}")
    is_late = candidate.reason is DecisionReason.OUTSIDE_ESTIMATE
    breakdown = None if scores is None else scores.get(_key(candidate))
    if breakdown is not None:
        reasons.append(_score_words(breakdown))
    return ExplainedCandidate(
        candidate.provider,
        candidate.model,
        candidate.key_id,
        position,
        ExcludedBy.DEADLINE if is_late else None,
        tuple(reasons),
        candidate.estimated_cost_usd,
        candidate.estimate_seconds,
        None if breakdown is None else round(breakdown.score, 4),
        None if breakdown is None else breakdown.components(),
    )


def _score_words(breakdown: ScoreBreakdown) -> str:
    """``score 0.812 = cost 1.00, latency 0.63, ...`` (each component 0–1, 1 = best of this request's)."""
    parts = ", ".join(f"{name} {value:.2f}" for name, value in breakdown.components().items())
    default = " (quality: the tier's default)" if breakdown.is_default_quality else ""
    return f"score {breakdown.score:.3f} = {parts}{default}"


def _skipped(
    request: RouteRequest, entry: RouteEntry, skip: Skipped, snapshot: Mapping[CandidateKey, CandidateState], now: float
) -> ExplainedCandidate:
    excluded_by = _SKIP_EXCLUSIONS.get(skip.reason, ExcludedBy.CIRCUIT)
    if excluded_by is ExcludedBy.LIMIT:
        reasons = [f"rate-limit wait {skip.wait_seconds:.2f} s is past max_wait_seconds ({request.max_wait_seconds})"]
    else:
        reasons = _circuit_reasons(snapshot.get(entry.key), now)
    return _excluded(request, entry, snapshot, excluded_by, tuple(reasons))


def _excluded(
    request: RouteRequest,
    entry: RouteEntry,
    snapshot: Mapping[CandidateKey, CandidateState],
    excluded_by: ExcludedBy,
    reasons: tuple[str, ...],
) -> ExplainedCandidate:
    state = snapshot.get(entry.key) or entry.seed.state
    cost = cost_usd(
        request.input_tokens_estimate,
        request.output_tokens_estimate,
        entry.input_price_per_1k,
        entry.output_price_per_1k,
    )
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    key = entry.key
    return ExplainedCandidate(
        key.provider, key.model, key.key_id, None, excluded_by, reasons, cost, wait + state.expected_latency_seconds
    )


def _estimate_reasons(request: RouteRequest, candidate: Candidate) -> list[str]:
    estimate_seconds, cost = candidate.estimate_seconds, candidate.estimated_cost_usd
    latency, wait = candidate.expected_latency_seconds, candidate.wait_seconds
    reasons = [f"estimate {estimate_seconds:.2f} s = wait {wait:.2f} s + expected latency {latency:.2f} s"]
    max_wait = request.max_wait_seconds
    if candidate.reason is DecisionReason.OUTSIDE_ESTIMATE:
        reasons.append(f"estimate past max_wait_seconds ({max_wait:g} s): tried after every candidate that fits")
    elif max_wait is not None and estimate_seconds > max_wait:  # scenario and direct keep their order
        reasons.append(f"estimate past max_wait_seconds ({max_wait:g} s)")
    tokens = f"{request.input_tokens_estimate} in + {request.output_tokens_estimate} out tokens"
    reasons.append(f"cost ${cost:.6f} for ~{tokens}")
    return reasons


def _circuit_reasons(state: CandidateState | None, now: float) -> list[str]:
    if state is None or (state.is_closed and not state.is_flapping):
        return ["circuit closed"]
    if state.is_closed:
        return ["circuit closed but flapping: ranked last"]
    if not state.allows_request:
        why = state.open_reason.value if state.open_reason is not None else "unknown"
        until = "until reset" if state.open_until is None else f"for {max(0.0, state.open_until - now):.1f} s more"
        return [f"circuit open ({why}) {until}"]
    return ["circuit not closed (half-open or backoff over): tried, except in fast mode"]


_DECISION_WORDS = {
    DecisionReason.CHEAPEST_WITHIN_ESTIMATE: "cheapest within the estimate",
    DecisionReason.CHEAPEST_WITHIN_ESTIMATE_HIGHER_TIER: "cheapest within the estimate, higher tier (fallback)",
    DecisionReason.FASTEST_AVAILABLE: "nothing fits max_wait_seconds: fastest first",
    DecisionReason.FASTEST_AVAILABLE_HIGHER_TIER: "fastest first, higher tier (fallback)",
    DecisionReason.OUTSIDE_ESTIMATE: "outside the estimate: after every candidate that fits",
    DecisionReason.SCENARIO_PRIORITY: "scenario priority order",
    DecisionReason.DIRECT: "direct: the named model, shortest wait first",
    DecisionReason.PANIC_MODE: "panic mode: every circuit open, the one whose backoff ends soonest",
    DecisionReason.TENANT_PREFERRED: "the tenant's preferred model",
}
