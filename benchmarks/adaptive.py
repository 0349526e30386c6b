"""Adaptive routing (issue 18 §3) on the simulated fleet: how fast the bandit moves off a degraded candidate and
back to it once it recovers, and its regret against the best fixed choice of each phase.

Run by hand, never in the test suite:

    python benchmarks/adaptive.py                 # 4 phases x 250 requests, ~1 min
    python benchmarks/adaptive.py --per-phase 100 # quicker
    python benchmarks/adaptive.py --out benchmarks/results/2026-12-01-adaptive.md

In one process: the simulated fleet on 127.0.0.1 (real HTTP), the real app and executor (httpx's ASGI transport,
the monotonic clock), ``scenario:bench`` adaptive over three candidates on three sim servers: ``a`` (openai sim,
10 ms), ``b`` (anthropic sim, 25 ms), ``c`` (openai_compatible sim, 40 ms). Knobs: latency penalty 1.0 over a
100 ms scale, no cost penalty, so a success earns about 0.9 / 0.75 / 0.6 and ``a`` is the best fixed choice.
Phases of ``--per-phase`` requests each, sent one after the other: healthy; ``a`` fails every call (HTTP 500);
``a`` answers but slowly (150 ms: reward 0); ``a`` recovers. The circuit breaker is off (it would take the
failing ``a`` out by itself); the bandit alone moves the traffic.

Share: the candidate tried first. Shift: requests after the change until ``a``'s share over the last 20
requests falls below 10 % (degraded) or rises above 50 % (recovered). Regret: per phase, the sum over requests of
(best arm's mean reward - the chosen arm's mean reward), means measured per phase from every attempt; "fixed a"
is the same sum for always trying ``a`` first (today's scenario priority with ``a`` first).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.api.app import create_app
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.settings import load_settings
from bkvy.core.routing.reward import Penalties, attempt_reward
from bkvy.models.outcomes import Attempt, AttemptOutcome
from bkvy.sim import SimFleet

ARMS = {"a": ("openai", "gpt-4o-mini", 10.0), "b": ("anthropic", "claude-3-5-haiku-latest", 25.0),
        "c": ("openai_compatible", "llama-3.1-8b-instant", 40.0)}  # fmt: skip
KNOBS: dict[str, float] = {"discount": 0.98, "cost_penalty": 0.0, "latency_penalty": 1.0, "latency_scale_seconds": 0.1}
PENALTIES = Penalties(0.0, 1.0, 0.01, 0.1)
PHASES = ("healthy", "a errors", "a slow", "a recovered")
WINDOW, DROP_BELOW, REGAIN_ABOVE = 20, 0.10, 0.50
BODY = {"client_id": "bench", "scenario": "bench", "messages": [{"role": "user", "content": "hi"}], "debug": True}


def _config(fleet: SimFleet) -> GatewayConfig:
    providers = {
        name: {
            "type": wire,
            "base_url": fleet.base_url(wire),
            "keys": {"k": {"api_key": f"sk-sim-{name}"}},
            "models": {model: {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001, "expected_latency_ms": 20}},
        }
        for name, (wire, model, _) in ARMS.items()
    }
    scenario = [
        {"provider": name, "model": model, "priority": i} for i, (name, (_, model, _)) in enumerate(ARMS.items())
    ]
    routing = {"scenarios": {"bench": scenario}, "strategies": {"scenario:bench": "adaptive"}, "adaptive": KNOBS}
    return build_config(providers, routing, {})


def _set_phase(fleet: SimFleet, phase: str) -> None:
    for name, (wire, model, latency_ms) in ARMS.items():
        knobs = fleet.servers[wire].knobs(model)
        knobs.latency_ms, knobs.error_rates = latency_ms, {}
        if name == "a" and phase == "a errors":
            knobs.error_rates = {"server": 1.0}
        if name == "a" and phase == "a slow":
            knobs.latency_ms = 150.0


def _reward(row: dict[str, Any]) -> float | None:
    attempt = Attempt(row["provider"], row["model"], row["key_id"], AttemptOutcome(row["outcome"]), row["duration_ms"])
    return attempt_reward(attempt, PENALTIES, deadline_seconds=None)


async def _run(per_phase: int, seed: int) -> tuple[list[list[str]], list[dict[str, list[float]]]]:
    """The first choice of each request, per phase, and every attempt's reward per arm, per phase."""
    fleet = SimFleet(seed=seed, with_default_latency=False)
    await fleet.start("127.0.0.1")
    settings = load_settings(
        {}, log_dir=tempfile.mkdtemp(prefix="bkvy-bench-"), circuit_breaker_enabled=False, health_probe_enabled=False
    )
    app = create_app(settings, _config(fleet), rng=random.Random(seed))
    choices: list[list[str]] = []
    rewards: list[dict[str, list[float]]] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bkvy.bench", timeout=30) as client:
                for phase in PHASES:
                    _set_phase(fleet, phase)
                    firsts, per_arm = [], defaultdict(list)
                    for _ in range(per_phase):
                        attempts = (await client.post("/llm/scenario", json=BODY)).json()["metadata"]["attempts"]
                        firsts.append(attempts[0]["provider"])
                        for row in attempts:
                            reward = _reward(row)
                            if reward is not None:
                                per_arm[row["provider"]].append(reward)
                    choices.append(firsts)
                    rewards.append(dict(per_arm))
    finally:
        await fleet.stop()
    return choices, rewards


def _shift(firsts: list[str], *, below: float | None = None, above: float | None = None) -> int | None:
    """Requests until ``a``'s share over the last WINDOW first crosses the bound (None: never)."""
    for end in range(WINDOW, len(firsts) + 1):
        share = firsts[end - WINDOW : end].count("a") / WINDOW
        if (below is not None and share < below) or (above is not None and share > above):
            return end
    return None


def _table(choices: list[list[str]], rewards: list[dict[str, list[float]]], seconds: float) -> str:
    lines = [
        "| phase | share a / b / c | best fixed | regret (adaptive) | regret (fixed a) | shift |",
        "|---|---|---|---|---|---|",
    ]
    for phase, firsts, per_arm in zip(PHASES, choices, rewards, strict=True):
        means = {arm: sum(v) / len(v) for arm, v in per_arm.items() if v}
        best = max(means, key=means.__getitem__)
        regret = sum(means[best] - means.get(arm, 0.0) for arm in firsts)
        fixed_a = len(firsts) * (means[best] - means.get("a", 0.0))
        shares = " / ".join(f"{firsts.count(arm) / len(firsts):.0%}" for arm in ARMS)
        shift = ""
        if phase == "a errors":
            shift = f"a < {DROP_BELOW:.0%} after {_shift(firsts, below=DROP_BELOW)} requests"
        if phase == "a recovered":
            shift = f"a > {REGAIN_ABOVE:.0%} after {_shift(firsts, above=REGAIN_ABOVE)} requests"
        lines.append(f"| {phase} | {shares} | {best} ({means[best]:.2f}) | {regret:.1f} | {fixed_a:.1f} | {shift} |")
    total = sum(len(f) for f in choices)
    lines.append(f"\n{total} requests in {seconds:.1f} s (shared, busy 2-core machine: times are indicative only)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-phase", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--discount", type=float, default=KNOBS["discount"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    KNOBS["discount"] = args.discount
    started = time.perf_counter()
    choices, rewards = asyncio.run(_run(args.per_phase, args.seed))
    table = _table(choices, rewards, time.perf_counter() - started)
    command = (
        "python benchmarks/adaptive.py " + f"--per-phase {args.per_phase} --seed {args.seed} --discount {args.discount}"
    )
    header = f"`{command}`; knobs {KNOBS}\n\n"
    print(header + table)
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as out:  # one file, a section per run
            out.write(f"\n{header}{table}\n")


if __name__ == "__main__":
    main()
