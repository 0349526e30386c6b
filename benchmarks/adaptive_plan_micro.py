"""What an adaptive plan costs against a cost plan (issue 18 §3): ``Executor.plan`` at level low, in-process.

    python benchmarks/adaptive_plan_micro.py

The candidates of ``routing_micro.routing_config``; "adaptive" makes level low adaptive, so each plan draws one
Beta sample per (provider, model) arm (``random.betavariate``) before ranking. p50 of 5,000 calls, median of 3.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routing_micro import routing_config

from bkvy.clock import MonotonicClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.execution.executor import Executor
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import IntelligenceLevel, RoutingMethod


def _executor(config: GatewayConfig, adaptive: AdaptiveRouting) -> Executor:
    clock = MonotonicClock()
    limiter, latency = RateLimiter(clock), LatencyTracker()
    return Executor(config=config, clock=clock, transport=None, limiter=limiter, latency=latency, adaptive=adaptive)  # type: ignore[arg-type]


ROUTE = RouteRequest(
    RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, max_wait_seconds=30, input_tokens_estimate=100
)


def main() -> None:
    for n in (5, 50):
        base = routing_config(n)
        raw_p = {name: p.model_dump(mode="json") for name, p in base.providers.items()}
        for p in raw_p.values():
            p["keys"] = {k: {"api_key": v["api_key"]} for k, v in p["keys"].items()}
        for label, strategies in (("cost", {}), ("adaptive", {"low": "adaptive"})):
            config = build_config(raw_p, {"strategies": strategies}, {})
            ex = _executor(config, AdaptiveRouting(config, rng=random.Random(1)))
            rounds = []
            for _ in range(3):
                times = []
                for _ in range(5000):
                    t = time.perf_counter_ns()
                    ex.plan(ROUTE)
                    times.append(time.perf_counter_ns() - t)
                rounds.append(statistics.median(times) / 1000)
            print(f"{label:9s} {n:3d} candidates: p50 {statistics.median(rounds):6.1f} us")


if __name__ == "__main__":
    main()
