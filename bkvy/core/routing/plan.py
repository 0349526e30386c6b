"""The routing decision (SPEC §5): a pure function of (request, config, snapshot).

The per-candidate records are NamedTuples rather than frozen dataclasses: equally immutable, and several
times cheaper to build and hash, which matters when a plan ranks hundreds of candidates per request.

No I/O, no clock, no await: ``plan_route`` ranks every candidate (provider, model, key) and says why,
so it is tested by building a snapshot by hand.

The ranking works on one plain tuple per candidate (a *row*, in ``Candidate``'s field order). Most of a row
depends only on the candidate's live state, so it is built once per state (``LiveCandidate``, kept by
``CandidateStates`` between changes) and a plan only appends what depends on the request: the scenario
rank, the cost estimate and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig
    from bkvy.core.routing.route_table import RouteEntry

_new_tuple = tuple.__new__   # builds a NamedTuple from a plain tuple without its Python-level __new__
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
    rate_limit_wait_seconds: float
    queue_wait_seconds: float
    expected_latency_seconds: float
    is_flapping: bool
    wait_seconds: float              # rate-limit wait + queue wait
    used_in_minute: int
    last_used: float
    estimate_seconds: float          # wait + expected latency
    # The fields above come from the candidate's live state (``LiveCandidate.prefix``), those below from
    # the request.
    rank: int                        # scenario: position of its entry in priority order
    estimated_cost_usd: float
    reason: str


class LiveCandidate(NamedTuple):
    """A candidate's state in the form ranking reads: the first fields of its row, built once per state."""

    prefix: tuple                    # Candidate's fields up to ``estimate_seconds``
    is_steady: bool                  # closed, allowing, no wait, not flapping: usable in every mode
    state: CandidateState


def live_candidate(key: CandidateKey, state: CandidateState) -> LiveCandidate:
    (latency, rate_limit_wait, queue_wait, used_in_minute, last_used, is_closed, allows_request, _, _,
     is_flapping) = state
    wait = rate_limit_wait + queue_wait
    prefix = (key[0], key[1], key[2], rate_limit_wait, queue_wait, latency, is_flapping, wait, used_in_minute,
              last_used, wait + latency)
    return _new_tuple(LiveCandidate, (prefix, is_closed and allows_request and wait <= 0 and not is_flapping,
                                      state))


class Skipped(NamedTuple):
    provider: str
    model: str
    key_id: str
    reason: str                 # "circuit_open" | "rate_limited" | "circuit_not_closed"
    wait_seconds: float = 0.0


class RoutePlan:
    """The ranked candidates, why the first was chosen, and who was skipped.

    Ranking works on plain tuples in ``Candidate``'s field order (``rows``); a row becomes a ``Candidate``
    only when it is looked at, so a request that succeeds on its first candidate builds one, not fifty.
    """

    __slots__ = ("rows", "decision_reason", "skipped", "_candidates")

    def __init__(self, rows: tuple[tuple, ...], decision_reason: str, skipped: tuple[Skipped, ...] = ()) -> None:
        self.rows = rows
        self.decision_reason = decision_reason
        self.skipped = skipped
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

    @property
    def rate_limit_retry_after_seconds(self) -> float | None:
        waits = [s.wait_seconds for s in self.skipped if s.reason == "rate_limited"]
        return min(waits) if waits else None

    def __repr__(self) -> str:
        return f"RoutePlan({self.candidates!r}, {self.decision_reason!r}, {self.skipped!r})"


# Sort keys over the fields of a row, each an ``itemgetter`` (C, no Python call per row). Ties between
# equal choices go to the key used least in the last minute, then least recently. Flapping candidates go
# last: when none is flapping (nearly always) the key leaves that field out, so it starts with a number and
# the sort compares numbers directly.
_Row = tuple
_REASON = 13
_BY_COST = (itemgetter(12, 8, 9), itemgetter(6, 12, 8, 9))               # cheapest
_BY_PRIORITY = (itemgetter(11, 7, 8, 9), itemgetter(6, 11, 7, 8, 9))     # scenario order, then shortest wait
_BY_WAIT = (itemgetter(7, 8, 9), itemgetter(6, 7, 8, 9))                 # direct: shortest wait
_OUTSIDE_ESTIMATE = "outside_estimate"


def _by_speed(row: _Row) -> tuple:
    """Flapping last, then the soonest answer (waits + latency; rounded so float noise does not decide)."""
    return (row[6], round(row[10], 6), row[8], row[9])


def seed_state(entry: RouteEntry) -> LiveCandidate:
    """The state of a candidate nothing is known about: its config seed."""
    return entry.seed


def plan_route(request: RouteRequest, config: GatewayConfig,
               snapshot: Mapping[CandidateKey, CandidateState]) -> RoutePlan:
    """Rank the candidates for ``request`` over a snapshot of states (candidates it lacks: config seeds).
    Raises Unknown*/NoCandidates (404) for bad names."""
    def fill(entry: RouteEntry) -> LiveCandidate:
        state = snapshot.get(entry.key)
        return entry.seed if state is None else live_candidate(entry.key, state)

    return rank_candidates(request, config, {}, fill)


def rank_candidates(request: RouteRequest, config: GatewayConfig, known: Mapping[CandidateKey, LiveCandidate],
                    fill: Callable[[RouteEntry], LiveCandidate] = seed_state) -> RoutePlan:
    """``plan_route`` over states in ranking form: ``known`` holds those ready in advance, ``fill`` gives
    the others."""
    groups = config.route_table.groups_for(request)
    ranked: list[_Row] = []
    skipped: list[Skipped] = []
    decision_reason = ""
    for index, group in enumerate(groups):
        ordered, reason = _ranked_group(request, group, known, fill, skipped, fallback=index > 0)
        ranked.extend(ordered)
        decision_reason = decision_reason or (reason if ordered else "")
    if not ranked:
        panic = _panic_row(request, groups, known, fill)
        if panic is not None:
            return RoutePlan((panic,), "panic_mode", tuple(skipped))
    return RoutePlan(tuple(ranked), decision_reason or "no_candidate_available", tuple(skipped))


def _ranked_group(request: RouteRequest, group: tuple[RouteEntry, ...], known: Mapping[CandidateKey, LiveCandidate],
                  fill: Callable[[RouteEntry], LiveCandidate], skipped: list[Skipped], *,
                  fallback: bool) -> tuple[list[_Row], str]:
    """One preference group's usable candidates in order, and why; refusals go to ``skipped``."""
    method = request.method
    if method is RoutingMethod.SCENARIO:
        fits, _, has_flapping = _usable(request, group, known, fill, skipped, "scenario_priority", None)
        fits.sort(key=_BY_PRIORITY[has_flapping])
        return fits, "scenario_priority"
    if method is RoutingMethod.DIRECT:
        fits, _, has_flapping = _usable(request, group, known, fill, skipped, "direct", None)
        fits.sort(key=_BY_WAIT[has_flapping])
        return fits, "direct"
    suffix = "_higher_tier" if fallback else ""
    fastest = "fastest_available" + suffix
    if request.fast_mode:
        fits, _, _ = _usable(request, group, known, fill, skipped, fastest, None)
        fits.sort(key=_by_speed)
        return fits, fastest
    cheapest = "cheapest_within_estimate" + suffix
    fits, late, has_flapping = _usable(request, group, known, fill, skipped, cheapest, request.max_wait_seconds)
    late.sort(key=_by_speed)
    if not fits:   # nothing answers within the request's max wait: the soonest first
        return [row[:_REASON] + (fastest,) for row in late], fastest
    fits.sort(key=_BY_COST[has_flapping])
    return fits + late, cheapest


def _usable(request: RouteRequest, group: tuple[RouteEntry, ...], known: Mapping[CandidateKey, LiveCandidate],
            fill: Callable[[RouteEntry], LiveCandidate], skipped: list[Skipped], reason: str,
            deadline: float | None) -> tuple[list[_Row], list[_Row], bool]:
    """The group's usable candidates as rows, split into those whose estimate fits ``deadline`` (all when
    None) and the rest (reason "outside_estimate"), and whether any is flapping; refusals go to ``skipped``.

    The hot loop of routing: it runs once per candidate per request. A steady candidate (nearly all) costs a
    dict lookup and one tuple: its row's prefix plus (rank, cost, reason).
    """
    get = known.get
    fast_mode, max_wait = request.fast_mode, request.max_wait_seconds
    input_tokens, output_tokens = request.input_tokens_estimate, request.output_tokens_estimate
    fits: list[_Row] = []
    late: list[_Row] = []
    has_flapping = False
    for entry in group:
        key, _, _, _, input_price, output_price, _, rank = entry
        prefix, is_steady, state = get(key) or fill(entry)
        if not is_steady:
            (_, rate_limit_wait, queue_wait, _, _, is_closed, allows_request, _, _, is_flapping) = state
            wait = rate_limit_wait + queue_wait
            if not (allows_request and (is_closed or not fast_mode)
                    and (wait <= 0 or (max_wait is not None and wait <= max_wait))):
                skipped.append(_refusal(request, key, state))
                continue
            if is_flapping:
                has_flapping = True
        cost = (input_tokens * input_price + output_tokens * output_price) / 1000.0
        if deadline is not None and prefix[10] > deadline:
            late.append(prefix + (rank, cost, _OUTSIDE_ESTIMATE))
        else:
            fits.append(prefix + (rank, cost, reason))
    return fits, late, has_flapping


def _refusal(request: RouteRequest, key: CandidateKey, state: CandidateState) -> Skipped:
    if not state.allows_request:
        return Skipped(key.provider, key.model, key.key_id, "circuit_open")
    if request.fast_mode and not state.is_closed:
        return Skipped(key.provider, key.model, key.key_id, "circuit_not_closed")
    wait = state.rate_limit_wait_seconds + state.queue_wait_seconds
    return Skipped(key.provider, key.model, key.key_id, "rate_limited", wait)


def _panic_row(request: RouteRequest, groups: Sequence[tuple[RouteEntry, ...]],
               known: Mapping[CandidateKey, LiveCandidate], fill: Callable[[RouteEntry], LiveCandidate]) -> _Row | None:
    """Every candidate is open for server/timeout reasons: try the one whose backoff ends soonest."""
    pairs = [(entry, (known.get(entry.key) or fill(entry)).state) for group in groups for entry in group]
    if not pairs or any(s.allows_request or s.open_reason not in _PANIC_REASONS for _, s in pairs):
        return None
    entry, state = min(pairs, key=lambda pair: pair[1].open_until or 0.0)
    cost = (request.input_tokens_estimate * entry.input_price_per_1k
            + request.output_tokens_estimate * entry.output_price_per_1k) / 1000.0
    return live_candidate(entry.key, state).prefix + (entry.rank, cost, "panic_mode")
