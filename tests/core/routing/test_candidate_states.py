"""CandidateStates keeps live states between plans: a kept state must never differ from a fresh read.

Every test compares ``Executor.plan`` (kept states) with ``plan_route`` over states read afresh, after the
changes routing must see: slots taken, provider blocks, queued waiters, window expiry, latency samples,
circuits opening and closing. Time is a FakeClock.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.gateway import build_config
from bkvy.core.execution.executor import Executor
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import CandidateKey, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod

CONFIG = build_config(
    {
        f"p{p}": {
            "type": "openai_compatible",
            "base_url": "http://127.0.0.1:9",
            "keys": {
                f"k{k}": {"api_key": f"sk-{p}-{k}", "rate_limits": {"*": {"rpm": 3, "rpd": 50}}} for k in range(2)
            },
            "models": {
                f"m{m}": {
                    "intelligence_tier": "low",
                    "cost_per_1k_tokens": 0.1 * (1 + m + 3 * p),
                    "expected_latency_ms": 400 + 100 * m,
                }
                for m in range(2)
            },
        }
        for p in range(2)
    },
    {"scenarios": {}},
    {},
)
LOW = RouteRequest(
    RoutingMethod.INTELLIGENCE,
    level=IntelligenceLevel.LOW,
    max_wait_seconds=30.0,
    input_tokens_estimate=10,
    output_tokens_estimate=100,
)
KEYS = [
    CandidateKey(p, m, k)
    for p in CONFIG.providers
    for m in CONFIG.providers[p].models
    for k in CONFIG.providers[p].keys
]


class Gateway:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.limiter = RateLimiter(self.clock)
        for key in KEYS:
            limits = CONFIG.providers[key.provider].keys[key.key_id].limits_for(key.model)
            self.limiter.configure(self.lane(key), rpm=limits.rpm, rpd=limits.rpd)
        self.latency = LatencyTracker()
        self.registry = CircuitBreakerRegistry(CircuitSettings(failure_threshold=2), self.clock, random.Random(7))
        self.executor = Executor(
            config=CONFIG,
            clock=self.clock,
            transport=None,  # type: ignore[arg-type]
            limiter=self.limiter,
            latency=self.latency,
            breaker=CircuitGuard(self.registry, RetryBudget(self.clock)),
        )

    @staticmethod
    def lane(key: CandidateKey) -> LaneKey:
        return LaneKey(key.provider, key.key_id, key.model)

    def assert_plan_is_fresh(self, request: RouteRequest = LOW) -> None:
        kept = self.executor.plan(request)
        fresh = plan_route(
            request, RouteTable.compile(CONFIG), {key: self.executor.candidate_state(key) for key in KEYS}
        )
        assert kept.candidates == fresh.candidates
        assert kept.skipped == fresh.skipped and kept.decision_reason == fresh.decision_reason


def test_a_taken_slot_shows_in_the_next_plan():
    gateway = Gateway()
    gateway.assert_plan_is_fresh()
    first = gateway.executor.plan(LOW).candidates[0]
    assert gateway.limiter.try_acquire(gateway.lane(CandidateKey(first.provider, first.model, first.key_id)))
    plan = gateway.executor.plan(LOW)
    taken = next(c for c in plan.candidates if (c.provider, c.model, c.key_id) == first[:3])
    assert taken.used_in_minute == 1 and taken.last_used == gateway.clock.now()
    assert plan.candidates[0].key_id != first.key_id  # the sibling key, used less, goes first now
    gateway.assert_plan_is_fresh()


def test_window_expiry_shows_without_any_event():
    gateway = Gateway()
    key = KEYS[0]
    for _ in range(3):
        assert gateway.limiter.try_acquire(gateway.lane(key))
    gateway.assert_plan_is_fresh()
    full = next(s for s in gateway.executor.plan(LOW).skipped if s[:3] == (key.provider, key.model, key.key_id))
    assert full.reason == "rate_limited" and full.wait_seconds == pytest.approx(60.0)
    gateway.clock.advance(30)
    gateway.assert_plan_is_fresh()  # the wait shrinks by the moment: never kept
    gateway.clock.advance(31)
    gateway.assert_plan_is_fresh()  # the starts left the minute window
    again = next(c for c in gateway.executor.plan(LOW).candidates if c[:3] == (key.provider, key.model, key.key_id))
    assert again.used_in_minute == 0 and again.rate_limit_wait_seconds == 0


def test_a_new_latency_sample_shows():
    gateway = Gateway()
    gateway.assert_plan_is_fresh()
    gateway.latency.observe("p0", "m0", 9.0)
    plan = gateway.executor.plan(LOW)
    assert {c.expected_latency_seconds for c in plan.candidates if c.model == "m0" and c.provider == "p0"} == {9.0}
    gateway.assert_plan_is_fresh()


def test_circuits_opening_and_closing_show():
    gateway = Gateway()
    gateway.assert_plan_is_fresh()
    circuit = CircuitKey(KEYS[0].provider, KEYS[0].model, KEYS[0].key_id)
    for _ in range(2):
        gateway.registry.record_failure(circuit, ErrorClass.SERVER)
    assert "circuit_open" in {s.reason for s in gateway.executor.plan(LOW).skipped}
    gateway.assert_plan_is_fresh()
    gateway.clock.advance(3600)  # backoff over: the circuit allows a trial, by the moment
    gateway.assert_plan_is_fresh()
    assert gateway.registry.allow_request(circuit)  # the trial: HALF_OPEN
    gateway.assert_plan_is_fresh()
    gateway.registry.record_success(circuit)  # CLOSED again
    assert "circuit_open" not in {s.reason for s in gateway.executor.plan(LOW).skipped}
    gateway.assert_plan_is_fresh()


def test_auth_block_of_a_key_shows_on_every_model_of_it():
    gateway = Gateway()
    gateway.assert_plan_is_fresh()
    gateway.registry.record_failure(CircuitKey("p0", "m0", "k0"), ErrorClass.AUTH)
    skipped = {(s.provider, s.model, s.key_id) for s in gateway.executor.plan(LOW).skipped}
    assert {("p0", "m0", "k0"), ("p0", "m1", "k0")} <= skipped
    gateway.assert_plan_is_fresh()


async def test_queued_waiters_and_provider_blocks_show():
    gateway = Gateway()
    key = KEYS[1]
    lane = gateway.lane(key)
    for _ in range(3):
        assert gateway.limiter.try_acquire(lane)
    waiter = asyncio.ensure_future(gateway.limiter.acquire(lane, gateway.clock.now() + 120))
    await asyncio.sleep(0)
    assert gateway.limiter.view(lane).queue_depth == 1
    gateway.assert_plan_is_fresh()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    gateway.assert_plan_is_fresh()
    gateway.limiter.block_until(gateway.lane(KEYS[2]), 10.0)
    gateway.assert_plan_is_fresh()
    gateway.clock.advance(11)
    gateway.assert_plan_is_fresh()


def test_random_operations_never_leave_a_stale_state():
    """Fuzz: slots, blocks, latency samples, attempts in flight, failures, successes and time, in a seeded
    random order."""
    gateway = Gateway()
    rng = random.Random(2026)
    registry = gateway.registry
    in_flight: list[tuple[tuple[str, str], float]] = []
    for _ in range(600):
        key = rng.choice(KEYS)
        action = rng.randrange(8)
        if action == 0:
            gateway.limiter.try_acquire(gateway.lane(key))
        elif action == 1:
            gateway.limiter.block_until(gateway.lane(key), rng.uniform(0.1, 20))
        elif action == 2:
            gateway.latency.observe(key.provider, key.model, rng.uniform(0.05, 3))  # p95 after 20 (min_observations)
        elif action == 3:
            registry.record_failure(
                CircuitKey(*key),
                rng.choice([ErrorClass.SERVER, ErrorClass.TIMEOUT, ErrorClass.RATE_LIMITED]),
                rng.choice([None, 5.0]),
            )
        elif action == 4:
            if registry.allow_request(CircuitKey(*key)):
                registry.record_success(CircuitKey(*key))
        elif action == 5:
            in_flight.append(((key.provider, key.model), gateway.clock.now()))
            gateway.latency.attempt_started(*in_flight[-1])
        elif action == 6 and in_flight:
            gateway.latency.attempt_ended(*in_flight.pop(rng.randrange(len(in_flight))))
        else:
            gateway.clock.advance(rng.choice([0.1, 0.5, 5, 20, 61]))
        gateway.assert_plan_is_fresh()


# --- Judged by the tail, and by a hang as it happens ---

FASTEST = LOW._replace(fast_mode=True)  # ranked by estimate alone


def _learn(gateway: Gateway, model: tuple[str, str], values: list[float]) -> None:
    for seconds in values:
        gateway.latency.observe(*model, seconds)


def _first_model(gateway: Gateway, request: RouteRequest) -> tuple[str, str]:
    first = gateway.executor.plan(request).candidates[0]
    return first.provider, first.model


def test_max_wait_is_judged_by_p95_not_the_mean():
    gateway = Gateway()
    request = LOW._replace(max_wait_seconds=5.0)
    for model in {(key.provider, key.model) for key in KEYS} - {("p0", "m0")}:
        _learn(gateway, model, [1.0] * 30)
    _learn(gateway, ("p0", "m0"), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 6.0] * 1)  # the cheapest
    assert _first_model(gateway, request) == ("p0", "m0")  # 10 samples: judged by its mean (~2 s), fits
    _learn(gateway, ("p0", "m0"), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 6.0] * 3)
    assert gateway.latency.expected_seconds(("p0", "m0"), 9.0) < 5.0  # on average it fits...
    plan = gateway.executor.plan(request)
    late = next(c for c in plan.candidates if (c.provider, c.model) == ("p0", "m0"))
    assert late.reason == "outside_estimate" and late.expected_latency_seconds > 5.0  # ...its p95 does not
    assert _first_model(gateway, request) == ("p0", "m1")
    gateway.assert_plan_is_fresh(request)


def test_a_hang_ranks_after_a_healthy_candidate_once_older_than_its_p95_and_until_it_ends():
    gateway = Gateway()
    hung = ("p0", "m0")
    for model in {(key.provider, key.model) for key in KEYS}:
        _learn(gateway, model, [0.5 if model == hung else 1.0] * 30)
    p95 = gateway.latency.quantile_seconds(hung, 0.95)
    assert p95 is not None and p95 < 0.6
    assert _first_model(gateway, FASTEST) == hung
    started_at = gateway.clock.now()
    gateway.latency.attempt_started(hung, started_at)  # sent, and never answers
    gateway.assert_plan_is_fresh(FASTEST)
    gateway.clock.advance(p95 * 0.9)
    assert _first_model(gateway, FASTEST) == hung  # not yet older than its p95: as fast as ever
    gateway.assert_plan_is_fresh(FASTEST)
    gateway.clock.advance(p95 * 0.2)
    gateway.assert_plan_is_fresh(FASTEST)  # the kept states expired when the attempt crossed its p95
    gateway.clock.advance(1.0)
    plan = gateway.executor.plan(FASTEST)
    assert [(c.provider, c.model) for c in plan.candidates][-2:] == [hung, hung]  # both keys, last
    assert plan.candidates[-1].expected_latency_seconds == pytest.approx(p95 * 1.1 + 1.0)  # as slow as it is
    gateway.assert_plan_is_fresh(FASTEST)
    gateway.clock.advance(3.0)
    assert gateway.executor.plan(FASTEST).candidates[-1].expected_latency_seconds == pytest.approx(p95 * 1.1 + 4.0)
    gateway.latency.attempt_ended(hung, started_at)  # cancelled at last
    assert _first_model(gateway, FASTEST) == hung
    gateway.assert_plan_is_fresh(FASTEST)


def test_a_hang_outside_max_wait_gives_way_to_the_next_cheapest():
    gateway = Gateway()
    request = LOW._replace(max_wait_seconds=2.0)
    for model in {(key.provider, key.model) for key in KEYS}:
        _learn(gateway, model, [0.5] * 30)
    assert _first_model(gateway, request) == ("p0", "m0")
    gateway.latency.attempt_started(("p0", "m0"), gateway.clock.now())
    gateway.clock.advance(1.9)
    assert _first_model(gateway, request) == ("p0", "m0")  # slow, yet within max wait: still the cheapest
    gateway.clock.advance(0.2)
    assert _first_model(gateway, request) == ("p0", "m1")
    gateway.assert_plan_is_fresh(request)
