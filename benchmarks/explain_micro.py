"""What one explain costs next to the routing decision it explains (issue 18 §5), in-process.

    python benchmarks/explain_micro.py [--quick]

Over the configs of ``routing_micro.py`` (intelligence routing at ``low``, 5 / 50 / 500 candidates), times
``plan_route`` (the pure decision) and ``explain_route`` (the same plan, every candidate listed with its reasons)
over a snapshot that knows nothing, and ``Executor.explain`` (live states read afresh, the input check per
candidate: what ``POST /llm/explain`` pays). Explain is off the request path: a request that is not an explain
never runs it. p50 in microseconds, the median of three rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.routing_micro import _live_executor, routing_config
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.routing.explain import explain_route
from bkvy.core.routing.plan import RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel, RoutingMethod

_ROUNDS = 3


def _p50_us(call: Callable[[], object], iterations: int) -> float:
    rounds = []
    for _ in range(_ROUNDS):
        samples = []
        for _ in range(iterations):
            started = time.perf_counter_ns()
            call()
            samples.append(time.perf_counter_ns() - started)
        rounds.append(statistics.median(samples) / 1000.0)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    iterations = 200 if parser.parse_args().quick else 2000
    route = RouteRequest(
        RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, max_wait_seconds=30.0, input_tokens_estimate=20
    )
    request = ExecutionRequest("bench", "bench", route, (ChatMessage("user", "hi"),), GenerationOptions())
    print(f"{'candidates':>10} {'plan_route µs':>14} {'explain_route µs':>17} {'Executor.explain µs':>20}")
    for candidates in (5, 50, 500):
        config = routing_config(candidates)
        table = RouteTable.compile(config)
        executor = _live_executor(config)[0]
        plan_us = _p50_us(lambda table=table: plan_route(route, table, {}), iterations)
        explain_us = _p50_us(lambda table=table: explain_route(route, table, {}, now=0.0), iterations)
        live_us = _p50_us(lambda executor=executor: executor.explain(request), max(20, iterations // 10))
        print(f"{candidates:>10} {plan_us:>14.1f} {explain_us:>17.1f} {live_us:>20.1f}")


if __name__ == "__main__":
    main()
