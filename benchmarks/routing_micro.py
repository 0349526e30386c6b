"""Micro-benchmark of the routing decision ``bkvy.core.routing.plan.plan_route`` (pure, in-process).

    python benchmarks/routing_micro.py [--quick] [--optimize cost|latency|quality|balanced]

Intelligence routing at tier ``low`` over N candidates (5 providers x models x keys, all ``low``, costs
all different), three ways:

- ``plan_route``: the pure decision over a snapshot that knows nothing (every candidate seeded from config);
- ``live``: the whole decision a request pays, ``Executor.plan`` over a real rate limiter (each lane with an
  rpm window holding 100 recent requests), latency tracker and circuit breaker registry. Between two timed
  calls (untimed) the chosen candidate takes a rate-limit slot and reports a latency sample, as a served
  request does: each plan re-reads the states that request changed and takes the rest from
  ``CandidateStates`` (bkvy/core/routing/candidate_states.py);
- ``live_cold``: the same, but before each call every lane reports a change (a zero-second provider block),
  so every state is read afresh: the worst case, a plan after every candidate changed.

``--optimize`` ranks by score (issue 18 §2, docs/ROUTING.md) instead of cost: what a request that asks for it pays.

Each call is timed on its own with ``time.perf_counter_ns``; p50/p99 in microseconds, each the median of
three rounds (like every other measurement here: this machine's noise moves a single p99 by tens of µs).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.clock import MonotonicClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.execution.executor import Executor
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RoutePlan, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.core.routing.scoring import Weights, weights_for
from bkvy.models.types import IntelligenceLevel, RoutingMethod

_PROVIDERS = 5
ROUTING_ROUNDS = 3
# candidates -> (models per provider, keys per provider)
_SHAPES = {5: (1, 1), 50: (5, 2), 500: (25, 4)}


@dataclass(frozen=True, slots=True)
class RoutingTiming:
    mode: str  # "plan_route", "live" or "live_cold"
    candidates: int
    iterations: int  # calls per round
    p50_us: float
    p99_us: float


def routing_config(candidates: int) -> GatewayConfig:
    models_per_provider, keys_per_provider = _SHAPES[candidates]
    providers_raw = {}
    for p in range(_PROVIDERS):
        models = {
            f"model-{m}": {
                "intelligence_tier": "low",
                "input_cost_per_1k": 0.0001 * (1 + p + 7 * m),
                "output_cost_per_1k": 0.0004 * (1 + p + 7 * m),
                "expected_latency_ms": 500 + m,
            }
            for m in range(models_per_provider)
        }
        keys = {f"key-{k}": {"api_key": f"sk-bench-{p}-{k}"} for k in range(keys_per_provider)}
        providers_raw[f"openai_compatible-{p}"] = {
            "type": "openai_compatible",
            "base_url": "http://127.0.0.1:9",
            "keys": keys,
            "models": models,
        }
    return build_config(providers_raw, {"scenarios": {}}, {})


def _live_executor(config: GatewayConfig) -> tuple[Executor, RateLimiter, LatencyTracker, list[LaneKey]]:
    clock = MonotonicClock()
    limiter = RateLimiter(clock)
    lanes = [
        LaneKey(provider_name, key_id, model_name)
        for provider_name, provider in config.providers.items()
        for key_id in provider.keys
        for model_name in provider.models
    ]
    for lane in lanes:
        limiter.configure(lane, rpm=100_000, rpd=None)
        for _ in range(100):
            limiter.try_acquire(lane)
    latency = LatencyTracker()
    executor = Executor(
        config=config,
        clock=clock,
        transport=None,
        limiter=limiter,  # type: ignore[arg-type]
        latency=latency,
        breaker=CircuitGuard(CircuitBreakerRegistry(CircuitSettings(), clock), RetryBudget(clock)),
    )
    return executor, limiter, latency, lanes


def _decider(
    mode: str, config: GatewayConfig, request: RouteRequest
) -> tuple[Callable[[], RoutePlan], Callable[[RoutePlan], None]]:
    """(the timed decision, what happens untimed between two decisions)."""
    if mode == "plan_route":
        table = RouteTable.compile(config)  # once per config, as the executor does: not part of a decision
        return lambda: plan_route(request, table, {}), _nothing
    executor, limiter, latency, lanes = _live_executor(config)

    def serve(plan: RoutePlan) -> None:  # what serving the plan's first candidate changes
        chosen = next(plan.iter_candidates())
        limiter.try_acquire(LaneKey(chosen.provider, chosen.key_id, chosen.model))
        latency.observe(chosen.provider, chosen.model, 0.5)
        if mode == "live_cold":
            for lane in lanes:
                limiter.block_until(lane, 0.0)

    return lambda: executor.plan(request), serve


def time_routing(mode: str, candidates: int, iterations: int, weights: Weights | None = None) -> RoutingTiming:
    config = routing_config(candidates)
    request = RouteRequest(
        RoutingMethod.INTELLIGENCE,
        level=IntelligenceLevel.LOW,
        max_wait_seconds=30.0,
        input_tokens_estimate=20,
        output_tokens_estimate=500,
        weights=weights,
    )
    decide, between = _decider(mode, config, request)
    plan = decide()
    assert len(plan.candidates) == candidates, (len(plan.candidates), candidates)
    for _ in range(min(iterations, 200)):  # warm-up
        between(decide())
    clock = time.perf_counter_ns
    p50s: list[float] = []
    p99s: list[float] = []
    for _ in range(ROUTING_ROUNDS):
        samples: list[int] = []
        gc.collect()
        for _ in range(iterations):
            started = clock()
            plan = decide()
            samples.append(clock() - started)
            between(plan)
        samples.sort()
        p50s.append(statistics.median(samples) / 1000.0)
        p99s.append(samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000.0)
    return RoutingTiming(mode, candidates, iterations, statistics.median(p50s), statistics.median(p99s))


def run_all(is_quick: bool, weights: Weights | None = None) -> list[RoutingTiming]:
    scale = 0.2 if is_quick else 1.0
    plan = {5: 20_000, 50: 5_000, 500: 1_000}
    return [
        time_routing(mode, n, max(200, int(iters * scale)), weights)
        for mode in ("plan_route", "live", "live_cold")
        for n, iters in plan.items()
    ]


def _nothing(_: RoutePlan) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--optimize", default="cost", choices=["cost", "latency", "quality", "balanced"])
    args = parser.parse_args()
    for timing in run_all(args.quick, weights_for(args.optimize)):
        print(
            f"{timing.mode:>10} {timing.candidates:>4} candidates: p50 {timing.p50_us:8.1f} us"
            f"  p99 {timing.p99_us:8.1f} us  ({ROUTING_ROUNDS} x {timing.iterations} calls)"
        )


if __name__ == "__main__":
    main()
