"""Micro-benchmark of policy's per-request cost (issue 19), pure and in-process.

    python benchmarks/policy_micro.py

- ``idle``: ``PolicyEngine.is_idle_for`` with no policy.json and no subject: what every request pays on a
  gateway without policy (the gate then returns the request unchanged);
- ``decide``: ``PolicyEngine.decide`` with the demo's six rules and one residency rule over the demo's 16
  models, for a clean request and for one whose scan found an e-mail (require_private narrows the models);
- ``residency``: ``decide`` for a request from eu-west-1.

The scan itself is the detector's (benchmarks of its own). Each call timed alone with perf_counter_ns;
p50/p99 in microseconds, the median of three rounds. The machine is shared and busy: read the figures as
orders of magnitude.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.core.config.gateway import build_config
from bkvy.core.policy.detector import RequestScan
from bkvy.core.policy.engine import PolicyEngine
from bkvy.core.policy.rules import PolicyInputs
from bkvy.demo import demo_config, demo_providers, demo_routing
from bkvy.models.policy import PiiKind
from bkvy.sim import SimFleet

_CALLS = 20_000


def _percentiles(call: Callable[[], object]) -> tuple[float, float]:
    rounds = []
    for _ in range(3):
        samples = []
        for _ in range(_CALLS):
            start = time.perf_counter_ns()
            call()
            samples.append(time.perf_counter_ns() - start)
        samples.sort()
        rounds.append((samples[len(samples) // 2] / 1000.0, samples[int(len(samples) * 0.99)] / 1000.0))
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


async def _engines() -> tuple[PolicyEngine, PolicyEngine]:
    fleet = SimFleet()  # never started: only its (empty) base URLs are read
    for server in fleet.servers.values():
        server.base_url = "http://127.0.0.1:1"
    plain = build_config(demo_providers(fleet), demo_routing(), {})
    return PolicyEngine.compile(plain), PolicyEngine.compile(demo_config(fleet))


def main() -> None:
    idle, demo = asyncio.run(_engines())
    clean = PolicyInputs(RequestScan())
    email = PolicyInputs(RequestScan(frozenset({PiiKind.EMAIL}), 1))
    eu = PolicyInputs(RequestScan(), source_region="eu-west-1")
    rows = [
        ("idle (no policy.json)", lambda: idle.is_idle_for(None)),
        ("decide, clean", lambda: demo.decide(clean)),
        ("decide, e-mail found", lambda: demo.decide(email)),
        ("decide, from eu-west-1", lambda: demo.decide(eu)),
    ]
    print(f"{'case':<26} {'p50 µs':>8} {'p99 µs':>8}")
    for name, call in rows:
        p50, p99 = _percentiles(call)
        print(f"{name:<26} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
