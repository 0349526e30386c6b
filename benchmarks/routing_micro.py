"""Micro-benchmark of the routing decision ``bkvy.core.routing.plan_route`` (pure, in-process).

    python benchmarks/routing_micro.py [--quick]

Intelligence routing at tier ``low`` over N candidates (5 providers x models x keys, all ``low``, costs
all different), two ways:

- ``plan_route``: the pure decision over a snapshot that knows nothing (every candidate seeded from config);
- ``live``: the whole decision a request pays, ``Executor.plan``: every candidate's live state read from a
  real rate limiter (each lane with an rpm window holding 100 recent requests), latency tracker and circuit
  breaker registry, then ``plan_route``.

Each call is timed on its own with ``time.perf_counter_ns``; p50/p99 in microseconds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.core.circuit_breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget  # noqa: E402
from bkvy.core.circuits import CircuitGuard  # noqa: E402
from bkvy.core.clock import MonotonicClock  # noqa: E402
from bkvy.core.config import GatewayConfig, build_config  # noqa: E402
from bkvy.core.executor import Executor  # noqa: E402
from bkvy.core.latency import LatencyTracker  # noqa: E402
from bkvy.core.rate_limits import LaneKey, RateLimiter  # noqa: E402
from bkvy.core.routing import RouteRequest, plan_route  # noqa: E402
from bkvy.models.types import IntelligenceLevel, RoutingMethod  # noqa: E402

_PROVIDERS = 5
# candidates -> (models per provider, keys per provider)
_SHAPES = {5: (1, 1), 50: (5, 2), 500: (25, 4)}


@dataclass(frozen=True, slots=True)
class RoutingTiming:
    mode: str             # "plan_route" or "live"
    candidates: int
    iterations: int
    p50_us: float
    p99_us: float


def routing_config(candidates: int) -> GatewayConfig:
    models_per_provider, keys_per_provider = _SHAPES[candidates]
    providers_raw = {}
    for p in range(_PROVIDERS):
        models = {f"model-{m}": {"intelligence_tier": "low", "input_cost_per_1k": 0.0001 * (1 + p + 7 * m),
                                 "output_cost_per_1k": 0.0004 * (1 + p + 7 * m), "expected_latency_ms": 500 + m}
                  for m in range(models_per_provider)}
        keys = {f"key-{k}": {"api_key": f"sk-bench-{p}-{k}"} for k in range(keys_per_provider)}
        providers_raw[f"openai_compatible-{p}"] = {"type": "openai_compatible", "base_url": "http://127.0.0.1:9",
                                                   "keys": keys, "models": models}
    return build_config(providers_raw, {"scenarios": {}}, {})


def _live_executor(config: GatewayConfig) -> Executor:
    clock = MonotonicClock()
    limiter = RateLimiter(clock)
    for provider_name, provider in config.providers.items():
        for key_id in provider.keys:
            for model_name in provider.models:
                lane = LaneKey(provider_name, key_id, model_name)
                limiter.configure(lane, rpm=100_000, rpd=None)
                for _ in range(100):
                    limiter.try_acquire(lane)
    guard = CircuitGuard(CircuitBreakerRegistry(CircuitSettings(), clock), RetryBudget(clock))
    return Executor(config=config, clock=clock, transport=None, limiter=limiter,  # type: ignore[arg-type]
                    latency=LatencyTracker(), breaker=guard)


def time_routing(mode: str, candidates: int, iterations: int) -> RoutingTiming:
    config = routing_config(candidates)
    request = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, max_wait_seconds=30.0,
                           input_tokens_estimate=20, output_tokens_estimate=500)
    if mode == "live":
        executor = _live_executor(config)

        def decide() -> object:
            return executor.plan(request)
    else:
        def decide() -> object:
            return plan_route(request, config, {})
    plan = decide()
    assert len(plan.candidates) == candidates, (len(plan.candidates), candidates)  # type: ignore[attr-defined]
    for _ in range(min(iterations, 200)):  # warm-up
        decide()
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(iterations):
        started = clock()
        decide()
        samples.append(clock() - started)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return RoutingTiming(mode, candidates, iterations, statistics.median(samples) / 1000.0, p99 / 1000.0)


def run_all(is_quick: bool) -> list[RoutingTiming]:
    scale = 0.2 if is_quick else 1.0
    plan = {5: 20_000, 50: 5_000, 500: 1_000}
    return [time_routing(mode, n, max(200, int(iters * scale))) for mode in ("plan_route", "live")
            for n, iters in plan.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for timing in run_all(args.quick):
        print(f"{timing.mode:>10} {timing.candidates:>4} candidates: p50 {timing.p50_us:8.1f} us  p99 {timing.p99_us:8.1f} us"
              f"  ({timing.iterations} calls)")


if __name__ == "__main__":
    main()
