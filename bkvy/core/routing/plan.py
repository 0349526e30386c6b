"""The routing decision (SPEC §5): a pure function of (request, config, snapshot).

No I/O, no clock, no await: ``plan_route`` ranks every candidate (provider, model, key) and says why,
so it is tested by building a snapshot by hand.

A ranked candidate is a ``Candidate``. Most of its fields depend only on the candidate's live state
(``LiveFields``), so they are built once per state (``LiveCandidate``, kept by ``CandidateStates`` between
changes) and a plan only adds what depends on the request: the scenario rank, the cost estimate and the
reason. Ranking sorts *rows*, a candidate's fields as a plain tuple (``LiveFields`` + those three), with sort
keys named by field (``_fields_of``); ``RoutePlan`` makes a row a ``Candidate`` when it is read.
The records are NamedTuples rather than frozen dataclasses: equally immutable, and several times cheaper to
build, which matters when a plan ranks hundreds of candidates per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from bkvy.core.config.pricing import cost_usd
from bkvy.models.outcomes import DecisionReason, SkipReason
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod

if TYPE_CHECKING:
    from bkvy.core.routing.route_table import RouteEntry, RouteTable
    from bkvy.core.routing.score_rank import Scorer
    from bkvy.core.routing.scoring import ScoreBreakdown, Weights

_new_tuple = tuple.__new__  # builds a NamedTuple from a tuple of its fields in order, without its Python __new__
_PANIC_REASONS = {ErrorClass.SERVER, ErrorClass.TIMEOUT, ErrorClass.CONNECTION}


class CandidateKey(NamedTuple):
    provider: str
    model: str
    key_id: str


class CandidateState(NamedTuple):
    """Live state of one candidate, taken by the executor just before planning."""

    # What routing judges it by: its model's learned p95, else mean, else config seed; at least the age of the
    # model's oldest attempt in flight once that is older (a hang). ``LatencyTracker.routing_latency``.
    expected_latency_seconds: float
    rate_limit_wait_seconds: float = 0.0
    queue_wait_seconds: float = 0.0
    used_in_minute: int = 0
    last_used: float = float("-inf")
    is_closed: bool = True  # circuit CLOSED
    allows_request: bool = True  # False while OPEN and its backoff has not ended
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
    fast_mode: bool = False  # soft timeout reached: closed circuits only, fastest first
    needs_json: bool = False  # a json_schema response_format: only models with the "json" capability
    wants_embeddings: bool = False  # /v1/embeddings: embedding models only (and chat: never one)
    domain: str | None = None  # what the request is about (the classifier's domain): quality per domain
    weights: Weights | None = None  # ``optimize``: rank what fits by score; None: cheapest first (cost)
    samples: Mapping[tuple[str, str], float] | None = None  # adaptive: a bandit draw per (provider, model)
    affinity_key: str | None = None  # replicated models: which replica serves this prefix or session
    allowed: frozenset[tuple[str, str]] | None = None  # policy (issue 19): only these (provider, model); None: all
    preferred: tuple[tuple[str, str], ...] = ()  # the tenant's preferred (provider, model), first among the fits


class LiveFields(NamedTuple):
    """The fields of a ``Candidate`` that come from its live state: its first fields, in the same order."""

    provider: str
    model: str
    key_id: str
    rate_limit_wait_seconds: float
    queue_wait_seconds: float
    expected_latency_seconds: float
    is_flapping: bool
    wait_seconds: float  # rate-limit wait + queue wait
    used_in_minute: int
    last_used: float
    estimate_seconds: float  # wait + expected latency


class Candidate(NamedTuple):
    """One ranked candidate: its ``LiveFields``, then what depends on the request (``_REQUEST_FIELDS``)."""

    provider: str
    model: str
    key_id: str
    rate_limit_wait_seconds: float
    queue_wait_seconds: float
    expected_latency_seconds: float
    is_flapping: bool
    wait_seconds: float
    used_in_minute: int
    last_used: float
    estimate_seconds: float
    rank: int  # scenario: position of its entry in priority order
    estimated_cost_usd: float
    reason: DecisionReason  # shown with debug=true


_REQUEST_FIELDS = ("rank", "estimated_cost_usd", "reason")
if Candidate._fields != LiveFields._fields + _REQUEST_FIELDS:  # what ``_row`` relies on
    raise TypeError("Candidate's fields must be LiveFields' followed by " + ", ".join(_REQUEST_FIELDS))

# A row: a Candidate's fields as a plain tuple. Ranking builds one per usable candidate and sorts them; a row
# becomes a ``Candidate`` only when it is read, so a request served by its first candidate builds one, not
# fifty. A Candidate per row instead (built with ``_new_tuple``, sorted by ``attrgetter``) measured +30 %
# on ``plan_route`` and ``live`` at 50 candidates (24.4 against 18.6 µs, benchmarks/routing_micro.py).
_Row = tuple[Any, ...]


def _row(live: LiveFields, rank: int, estimated_cost_usd: float, reason: DecisionReason) -> _Row:
    return live + (rank, estimated_cost_usd, reason)


def _fields_of(*names: str) -> Callable[[_Row], Any]:
    """Reads a row's fields by ``Candidate`` field name; an ``itemgetter`` (C, no Python call per row)."""
    return itemgetter(*(Candidate._fields.index(name) for name in names))


class LiveCandidate(NamedTuple):
    """A candidate's state in the form ranking reads, built once per state."""

    fields: LiveFields
    is_steady: bool  # closed, allowing, no wait, not flapping: usable in every mode
    state: CandidateState


def live_candidate(key: CandidateKey, state: CandidateState) -> LiveCandidate:
    rate_limit_wait, queue_wait = state.rate_limit_wait_seconds, state.queue_wait_seconds
    latency, is_flapping = state.expected_latency_seconds, state.is_flapping
    wait = rate_limit_wait + queue_wait
    # In LiveFields' order: 0.07 µs against 0.45 µs by keyword, once per state read (``live_cold`` in
    # benchmarks/routing_micro.py reads every state per plan).
    fields = _new_tuple(
        LiveFields,
        (
            key.provider,
            key.model,
            key.key_id,
            rate_limit_wait,
            queue_wait,
            latency,
            is_flapping,
            wait,
            state.used_in_minute,
            state.last_used,
            wait + latency,
        ),
    )
    is_steady = state.is_closed and state.allows_request and wait <= 0 and not is_flapping
    return _new_tuple(LiveCandidate, (fields, is_steady, state))


class Skipped(NamedTuple):
    provider: str
    model: str
    key_id: str
    reason: SkipReason
    wait_seconds: float = 0.0


class RoutePlan:
    """The ranked candidates, why the first was chosen, and who was skipped.

    ``rows`` holds the candidates in order as plain tuples; each becomes a ``Candidate`` when it is read.
    """

    __slots__ = ("rows", "decision_reason", "skipped", "scores", "_candidates")

    def __init__(
        self, rows: tuple[_Row, ...], decision_reason: DecisionReason, skipped: tuple[Skipped, ...] = ()
    ) -> None:
        self.rows = rows
        self.decision_reason = decision_reason
        self.skipped = skipped
        self.scores: Mapping[CandidateKey, ScoreBreakdown] | None = None  # ranked by score: each one's breakdown
        self._candidates: tuple[Candidate, ...] | None = None

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        if self._candidates is None:
            self._candidates = tuple(_new_tuple(Candidate, row) for row in self.rows)
        return self._candidates

    def iter_candidates(self) -> Iterator[Candidate]:
        """The candidates in order, each built as the walk reaches it."""
        if self._candidates is not None:
            yield from self._candidates
            return
        for row in self.rows:
            yield _new_tuple(Candidate, row)

    def with_rows(self, rows: tuple[_Row, ...]) -> RoutePlan:
        """This plan with its candidates in another order (a replicated model's replica order); the decision
        reason, the skipped and the scores stay."""
        plan = RoutePlan(rows, self.decision_reason, self.skipped)
        plan.scores = self.scores
        return plan

    @property
    def rate_limit_retry_after_seconds(self) -> float | None:
        waits = [s.wait_seconds for s in self.skipped if s.reason is SkipReason.RATE_LIMITED]
        return min(waits) if waits else None

    def __repr__(self) -> str:
        return f"RoutePlan({self.candidates!r}, {self.decision_reason.value!r}, {self.skipped!r})"


def _ties_to_least_used(*names: str) -> tuple[Callable[[_Row], Any], Callable[[_Row], Any]]:
    """Sort keys (none flapping, some flapping) by the fields ``names``; ties between equal choices go to the
    key used least in the last minute, then least recently. Flapping candidates go last: when none is flapping
    (nearly always) the key leaves that field out, so it starts with a number and the sort compares numbers."""
    names += ("used_in_minute", "last_used")
    return _fields_of(*names), _fields_of("is_flapping", *names)


_BY_COST = _ties_to_least_used("estimated_cost_usd")  # cheapest
_BY_PRIORITY = _ties_to_least_used("rank", "wait_seconds")  # scenario order, then shortest wait
_BY_WAIT = _ties_to_least_used("wait_seconds")  # direct: shortest wait
_SPEED_FIELDS = _fields_of("is_flapping", "estimate_seconds", "used_in_minute", "last_used")
_CHEAPEST = (DecisionReason.CHEAPEST_WITHIN_ESTIMATE, DecisionReason.CHEAPEST_WITHIN_ESTIMATE_HIGHER_TIER)
_FASTEST = (DecisionReason.FASTEST_AVAILABLE, DecisionReason.FASTEST_AVAILABLE_HIGHER_TIER)
_ADAPTIVE = (DecisionReason.ADAPTIVE, DecisionReason.ADAPTIVE_HIGHER_TIER)
_FLAPPING = Candidate._fields.index("is_flapping")
_REASON_INDEX = Candidate._fields.index("reason")  # a row's first two fields are its (provider, model)


def _by_speed(row: _Row) -> tuple[bool, float, int, float]:
    """Flapping last, then the soonest answer (waits + latency; rounded so float noise does not decide)."""
    is_flapping, estimate_seconds, used_in_minute, last_used = _SPEED_FIELDS(row)
    return (is_flapping, round(estimate_seconds, 6), used_in_minute, last_used)


def seed_state(entry: RouteEntry) -> LiveCandidate:
    """The state of a candidate nothing is known about: its config seed."""
    return entry.seed


def plan_route(request: RouteRequest, table: RouteTable, snapshot: Mapping[CandidateKey, CandidateState]) -> RoutePlan:
    """Rank the candidates for ``request`` over a snapshot of states (candidates it lacks: config seeds).
    Raises Unknown*/NoCandidates (404) for bad names."""

    def fill(entry: RouteEntry) -> LiveCandidate:
        state = snapshot.get(entry.key)
        return entry.seed if state is None else live_candidate(entry.key, state)

    return rank_candidates(request, table, {}, fill)


def rank_candidates(
    request: RouteRequest,
    table: RouteTable,
    known: Mapping[CandidateKey, LiveCandidate],
    fill: Callable[[RouteEntry], LiveCandidate] = seed_state,
) -> RoutePlan:
    """``plan_route`` over states in ranking form: ``known`` holds those ready in advance, ``fill`` gives
    the others."""
    groups = table.groups_for(request)
    ranked: list[_Row] = []
    skipped: list[Skipped] = []
    decision_reason: DecisionReason | None = None
    is_plain = request.weights is None and request.domain is None and not request.preferred
    scorer = None if is_plain else table.scoring.scorer(request, known, fill)
    for index, group in enumerate(groups):
        ordered, reason = _ranked_group(request, group, known, fill, skipped, is_fallback=index > 0, scorer=scorer)
        ranked.extend(ordered)
        if decision_reason is None and ordered:
            decision_reason = reason
    if not ranked:
        panic = _panic_row(request, groups, known, fill)
        if panic is not None:
            return RoutePlan((panic,), DecisionReason.PANIC_MODE, tuple(skipped))
    plan = RoutePlan(tuple(ranked), decision_reason or DecisionReason.NO_CANDIDATE_AVAILABLE, tuple(skipped))
    if scorer is not None:
        plan.scores = scorer.scores
    return plan


def _ranked_group(
    request: RouteRequest,
    group: tuple[RouteEntry, ...],
    known: Mapping[CandidateKey, LiveCandidate],
    fill: Callable[[RouteEntry], LiveCandidate],
    skipped: list[Skipped],
    *,
    is_fallback: bool,
    scorer: Scorer | None = None,
) -> tuple[list[_Row], DecisionReason]:
    """One preference group's usable candidates in order, and why; refusals go to ``skipped``. A ``scorer``
    (``optimize``, domain models: score_rank.py) reorders those that fit."""
    method = request.method
    if request.samples is not None and not request.fast_mode and method is not RoutingMethod.DIRECT:
        return _sampled_group(request, group, known, fill, skipped, is_fallback=is_fallback, scorer=scorer)
    if method is RoutingMethod.SCENARIO:
        fits, _, has_flapping = _usable(request, group, known, fill, skipped, DecisionReason.SCENARIO_PRIORITY)
        fits.sort(key=_BY_PRIORITY[has_flapping])
        if scorer is not None:
            fits = scorer.tenant_first(scorer.order_scenario(fits, group))
        return fits, fits[0][_REASON_INDEX] if fits else DecisionReason.SCENARIO_PRIORITY
    if method is RoutingMethod.DIRECT:
        fits, _, has_flapping = _usable(request, group, known, fill, skipped, DecisionReason.DIRECT)
        fits.sort(key=_BY_WAIT[has_flapping])
        return fits, DecisionReason.DIRECT
    fastest, cheapest = _FASTEST[is_fallback], _CHEAPEST[is_fallback]
    if request.fast_mode:
        fits, _, _ = _usable(request, group, known, fill, skipped, fastest)
        fits.sort(key=_by_speed)
        return fits, fastest
    fits, late, has_flapping = _usable(
        request, group, known, fill, skipped, cheapest, deadline=request.max_wait_seconds
    )
    after = _late_rows(late, has_fits=bool(fits), fastest=fastest) if late else []
    if not fits:
        return after, fastest
    fits.sort(key=_BY_COST[has_flapping])
    if scorer is not None:
        fits, cheapest = scorer.order(fits, group, cheapest, is_fallback=is_fallback)
    return fits + after, cheapest


def _late_rows(late: list[tuple[LiveFields, int, float]], *, has_fits: bool, fastest: DecisionReason) -> list[_Row]:
    """Those outside the max wait, soonest first: after the others, or (none fits) the soonest is the choice."""
    late_reason = DecisionReason.OUTSIDE_ESTIMATE if has_fits else fastest
    return sorted((_row(live, rank, cost, late_reason) for live, rank, cost in late), key=_by_speed)


def _sampled_group(
    request: RouteRequest,
    group: tuple[RouteEntry, ...],
    known: Mapping[CandidateKey, LiveCandidate],
    fill: Callable[[RouteEntry], LiveCandidate],
    skipped: list[Skipped],
    *,
    is_fallback: bool,
    scorer: Scorer | None = None,
) -> tuple[list[_Row], DecisionReason]:
    """Adaptive (``request.samples``): the fits by the bandit's draw for their (provider, model), highest first,
    flapping last; those outside the max wait after them, soonest first, as with cost ranking."""
    reason = _ADAPTIVE[is_fallback]
    deadline = request.max_wait_seconds if request.method is RoutingMethod.INTELLIGENCE else None
    fits, late, _ = _usable(request, group, known, fill, skipped, reason, deadline=deadline)
    samples = request.samples or {}
    fits.sort(key=lambda row: (row[_FLAPPING], -samples.get(row[:2], 0.0), _BY_WAIT[False](row)))
    if scorer is not None:
        fits = scorer.tenant_first(fits)  # a tenant's preferred models first, whatever the draws
    after = _late_rows(late, has_fits=bool(fits), fastest=_FASTEST[is_fallback])
    return fits + after, fits[0][_REASON_INDEX] if fits else _FASTEST[is_fallback]


def _usable(
    request: RouteRequest,
    group: tuple[RouteEntry, ...],
    known: Mapping[CandidateKey, LiveCandidate],
    fill: Callable[[RouteEntry], LiveCandidate],
    skipped: list[Skipped],
    reason: DecisionReason,
    *,
    deadline: float | None = None,
) -> tuple[list[_Row], list[tuple[LiveFields, int, float]], bool]:
    """The group's usable candidates whose estimate fits ``deadline`` (all when None) as rows, the others as
    (live fields, rank, cost) for the caller to give a reason, and whether any is flapping; refusals go to
    ``skipped``.

    The hot loop of routing: it runs once per candidate per request. A steady candidate (nearly all) costs a
    dict lookup, the cost estimate and one row (``_row``, inlined).
    """
    get = known.get
    input_tokens, output_tokens = request.input_tokens_estimate, request.output_tokens_estimate
    fits: list[_Row] = []
    late: list[tuple[LiveFields, int, float]] = []
    has_flapping = False
    for entry in group:
        live = get(entry.key) or fill(entry)
        if not live.is_steady:
            state = live.state
            if not _is_usable(request, state):
                skipped.append(_refusal(request, entry.key, state))
                continue
            if state.is_flapping:
                has_flapping = True
        cost = cost_usd(input_tokens, output_tokens, entry.input_price_per_1k, entry.output_price_per_1k)
        fields = live.fields
        if deadline is not None and fields.estimate_seconds > deadline:
            late.append((fields, entry.rank, cost))
        else:
            fits.append(fields + (entry.rank, cost, reason))
    return fits, late, has_flapping


def _is_usable(request: RouteRequest, state: CandidateState) -> bool:
    """An unsteady candidate may be tried: its circuit allows it (closed only, in fast mode) and its wait, if
    any, is within the request's max wait."""
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    max_wait = request.max_wait_seconds
    return (
        state.allows_request
        and (state.is_closed or not request.fast_mode)
        and (wait <= 0 or (max_wait is not None and wait <= max_wait))
    )


def _refusal(request: RouteRequest, key: CandidateKey, state: CandidateState) -> Skipped:
    if not state.allows_request:
        return Skipped(key.provider, key.model, key.key_id, SkipReason.CIRCUIT_OPEN)
    if request.fast_mode and not state.is_closed:
        return Skipped(key.provider, key.model, key.key_id, SkipReason.CIRCUIT_NOT_CLOSED)
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    return Skipped(key.provider, key.model, key.key_id, SkipReason.RATE_LIMITED, wait)


def _panic_row(
    request: RouteRequest,
    groups: Sequence[tuple[RouteEntry, ...]],
    known: Mapping[CandidateKey, LiveCandidate],
    fill: Callable[[RouteEntry], LiveCandidate],
) -> _Row | None:
    """Every candidate is open for server/timeout/connection reasons: try the one whose backoff ends soonest.
    The one panic choice (docs/API.md); none when any candidate allows a request or is open for another reason
    (auth, rate limit)."""
    pairs = [(entry, (known.get(entry.key) or fill(entry)).state) for group in groups for entry in group]
    if not pairs or any(s.allows_request or s.open_reason not in _PANIC_REASONS for _, s in pairs):
        return None
    entry, state = min(pairs, key=lambda pair: pair[1].open_until or 0.0)
    cost = cost_usd(
        request.input_tokens_estimate,
        request.output_tokens_estimate,
        entry.input_price_per_1k,
        entry.output_price_per_1k,
    )
    return _row(live_candidate(entry.key, state).fields, entry.rank, cost, DecisionReason.PANIC_MODE)
