"""Live candidate states for routing, kept between plans and dropped when what they were read from changes.

A candidate's state (``CandidateState``) comes from its rate-limit lane, its model's learned latency and its
circuit. Reading all three for every candidate on every request costs more than the rest of the routing
decision, yet between two requests almost nothing changes. So a state is computed when a plan first needs
it and kept until one of these says it is stale:

- its lane reports a change (a start counted, a provider block, the queue moved) or its window moves on
  (``Lane.steady_until``); a lane that is blocked, full or queued is never kept, its waits change by the moment;
- its model's latency gets a new sample, or its oldest attempt in flight changes; a state also holds only
  until that oldest attempt grows older than the model's p95 (``LatencyTracker.routing_latency``), and one
  judged by such an attempt's age is never kept, it grows by the moment;
- its circuit changes state (the registry's ``on_change``); only steady closed circuits are kept, so the
  time-driven changes of an open or flapping one (backoff over, flapping cleared) never meet a kept state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from bkvy.clock import Clock
from bkvy.core.circuits.breaker import STEADY_CLOSED_FIELDS
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.circuits.types import CircuitKey, CircuitSnapshot
from bkvy.core.limits.rate_limits import Lane, LaneKey, RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import CandidateKey, CandidateState, LiveCandidate, live_candidate
from bkvy.core.routing.route_table import RouteEntry, RouteTable

# Builds a NamedTuple from a tuple of its fields in order, without its Python-level ``__new__``: 0.07 µs against
# 0.43 µs by keyword, once per state read (``live_cold`` in benchmarks/routing_micro.py reads every state).
_new_tuple = tuple.__new__


class CandidateStates:
    """Each candidate's live state, computed at most once between changes (see the module docstring)."""

    def __init__(
        self,
        *,
        route_table: RouteTable,
        clock: Clock,
        limiter: RateLimiter,
        latency: LatencyTracker,
        breaker: CircuitGuard | None = None,
    ) -> None:
        self._clock = clock
        self._limiter = limiter
        self._latency = latency
        self._breaker = breaker
        self._seeds = {
            entry.key: entry.seed.state.expected_latency_seconds
            for entries in route_table.models.values()
            for entry in entries
        }
        self._keys_of_model = {
            model_key: tuple(entry.key for entry in entries) for model_key, entries in route_table.models.items()
        }
        self._key_of_lane = {LaneKey(key.provider, key.key_id, key.model): key for key in self._seeds}
        self._handles: dict[CandidateKey, tuple[Lane, CircuitKey, tuple[str, str], float]] = {}
        self.kept: dict[CandidateKey, LiveCandidate] = {}  # the states still valid, in ranking form
        self._kept_until: dict[CandidateKey, float] = {}
        self._soonest_expiry = math.inf
        limiter.on_change(self._lane_changed)
        latency.on_change(self._latency_changed)
        latency.on_in_flight_change(self._in_flight_changed)
        if breaker is not None:
            breaker.registry.on_change(self._circuit_changed)

    def refresh(self) -> Callable[[RouteEntry], LiveCandidate]:
        """Drop what went stale with time; returns the ``fill`` that reads (and keeps) the missing states.
        Once per plan: ``rank_candidates(request, config, states.kept, states.refresh())``."""
        now = self._clock.now()
        if now >= self._soonest_expiry:
            self._expire(now)
        return lambda entry: self._fill(entry.key, now)

    def state(self, key: CandidateKey) -> CandidateState:
        """The live state of one candidate now (read afresh)."""
        return self._read(key, self._clock.now())[0].state

    def _fill(self, key: CandidateKey, now: float) -> LiveCandidate:
        live, until = self._read(key, now)
        if until > now:
            self.kept[key] = live
            self._kept_until[key] = until
            if until < self._soonest_expiry:
                self._soonest_expiry = until
        return live

    def _read(self, key: CandidateKey, now: float) -> tuple[LiveCandidate, float]:
        """The state and until when it holds unless a change is reported (``now``: it changes by the moment)."""
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = self._handle(key)
        lane, circuit_key, model_key, seed_seconds = handle
        view = lane.view(now)
        expected, latency_holds_until = self._latency.routing_latency(model_key, seed_seconds, now)
        circuit = STEADY_CLOSED_FIELDS if self._breaker is None else self._breaker.route_view(circuit_key)
        # In CandidateState's order: its last five fields are the circuit's route view.
        state = _new_tuple(
            CandidateState,
            (
                expected,
                view.rate_limit_wait_seconds,
                view.queue_wait_seconds,
                view.used_in_minute,
                view.last_used,
                *circuit,
            ),
        )
        if circuit != STEADY_CLOSED_FIELDS:
            return live_candidate(key, state), now
        until = lane.steady_until(now, view)
        return live_candidate(key, state), (until if until < latency_holds_until else latency_holds_until)

    def _handle(self, key: CandidateKey) -> tuple[Lane, CircuitKey, tuple[str, str], float]:
        """The lane, circuit key and seed latency of a candidate, looked up once for the process's life
        (candidates come from the config, so this is bounded)."""
        return (
            self._limiter.lane(LaneKey(key.provider, key.key_id, key.model)),
            CircuitKey(key.provider, key.model, key.key_id),
            (key.provider, key.model),
            self._seeds[key],
        )

    def _expire(self, now: float) -> None:
        for key in [key for key, until in self._kept_until.items() if until <= now]:
            del self.kept[key], self._kept_until[key]
        self._soonest_expiry = min(self._kept_until.values(), default=math.inf)

    def _drop(self, key: CandidateKey) -> None:
        if self.kept.pop(key, None) is not None:
            del self._kept_until[key]

    def _lane_changed(self, lane: LaneKey) -> None:
        key = self._key_of_lane.get(lane)
        if key is not None:
            self._drop(key)

    def _circuit_changed(self, snapshot: CircuitSnapshot) -> None:
        circuit = snapshot.key
        self._drop(CandidateKey(circuit.provider, circuit.model, circuit.key_id))

    def _latency_changed(self, model_key: tuple[str, str]) -> None:
        for key in self._keys_of_model.get(model_key, ()):
            self._drop(key)

    def _in_flight_changed(self, model_key: tuple[str, str]) -> None:
        """A kept state was read with no attempt of its model slow yet, so its value still holds: it only
        has to expire once the oldest attempt in flight passes the latency it was judged by. (Dropping it
        instead, on every start and end, cost two state reads per request: 8 µs of 80 in hot_path_micro.)"""
        oldest = self._latency.oldest_in_flight_started(model_key)
        if oldest is None:
            return
        now = self._clock.now()
        for key in self._keys_of_model.get(model_key, ()):
            live = self.kept.get(key)
            if live is None:
                continue
            slow_from = oldest + live.state.expected_latency_seconds
            if slow_from <= now:
                self._drop(key)
            elif slow_from < self._kept_until[key]:
                self._kept_until[key] = slow_from
                if slow_from < self._soonest_expiry:
                    self._soonest_expiry = slow_from
