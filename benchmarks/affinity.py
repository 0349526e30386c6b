"""Prefix affinity against round robin: N simulated vLLM-like replicas (real aiohttp servers on loopback, each
with a prefix cache: a prompt's cached part answers its first token sooner) behind bkvy (served by uvicorn on
loopback), many multi-turn sessions sharing a few system prompts. Printed per balancing: time to first token
p50/p95, the warm-prefix hit rate (the share of prompt characters the replicas found cached, as vLLM's
prefix-cache hit rate counts tokens) and replica load (requests max/mean; in-flight peak max/mean).

    python benchmarks/affinity.py                      # 4 replicas, 48 sessions x 6 turns, 12 at a time
    python benchmarks/affinity.py --replicas 8 --sessions 96 --out benchmarks/results/affinity.md

Everything runs in one process (one event loop): absolute times include that contention; compare the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.api.app import create_app
from bkvy.clock import MonotonicClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import Executor
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import ChatMessage, RoutingMethod
from bkvy.sim import ModelKnobs, SimServer

MODEL = "llama"
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Workload:
    replicas: int
    sessions: int
    turns: int
    concurrency: int
    system_prompts: int
    cold_ms: float
    warm_ms: float
    cache_entries: int
    seed: int


@dataclass(frozen=True, slots=True)
class Row:
    balancing: str
    requests: int
    failures: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    hit_rate: float
    requests_max_over_mean: float
    inflight_max_over_mean: float


async def _start_replicas(work: Workload) -> list[SimServer]:
    servers = []
    for n in range(work.replicas):
        knobs = ModelKnobs(
            latency_ms=work.cold_ms,
            warm_latency_ms=work.warm_ms,
            prefix_cache_entries=work.cache_entries,
            tokens_per_reply=24,
        )
        server = SimServer("openai_compatible", seed=n, models={MODEL: knobs})
        await server.start(HOST)
        servers.append(server)
    return servers


async def _start_bkvy(servers: list[SimServer], balancing: str) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    model = {
        "intelligence_tier": "low",
        "cost_per_1k_tokens": 0.0,
        "endpoints": [s.base_url for s in servers],
        "balancing": balancing,
    }
    config = build_config({"vllm": {"type": "openai_compatible", "models": {MODEL: model}}}, {}, {})
    settings = load_settings({}, log_dir=Path(tempfile.mkdtemp(prefix="bkvy-affinity-")), hedging=False)
    app = create_app(settings, config, clock=MonotonicClock())
    sock_port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=sock_port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    return server, task, f"http://{HOST}:{sock_port}/v1/chat/completions"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa")) for _ in range(count))


async def _session(
    http: aiohttp.ClientSession, url: str, work: Workload, index: int, systems: list[str], ttfts: list[float]
) -> int:
    """One conversation, turn after turn; returns its failures."""
    rng = random.Random(f"{work.seed}:{index}")
    messages: list[dict[str, str]] = [{"role": "system", "content": systems[index % len(systems)]}]
    failures = 0
    for _ in range(work.turns):
        messages.append({"role": "user", "content": _words(rng, 120)})
        body = {"model": f"vllm/{MODEL}", "stream": True, "messages": messages}
        started = time.perf_counter()
        first: float | None = None
        text: list[str] = []
        async with http.post(url, json=body) as response:
            if response.status != 200:
                failures += 1
                await response.read()
                continue
            async for line in response.content:
                if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                    continue
                delta = (json.loads(line[5:]).get("choices") or [{}])[0].get("delta") or {}
                if delta.get("content"):
                    first = first or time.perf_counter()
                    text.append(delta["content"])
        if first is not None:
            ttfts.append((first - started) * 1000.0)
        messages.append({"role": "assistant", "content": "".join(text)})
    return failures


async def _sample_inflight(servers: list[SimServer], peaks: list[tuple[int, ...]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        running = tuple(s.gauges.running for s in servers)
        if sum(running):
            peaks.append(running)
        await asyncio.sleep(0.005)


async def run(work: Workload, balancing: str) -> Row:
    servers = await _start_replicas(work)
    server, task, url = await _start_bkvy(servers, balancing)
    rng = random.Random(work.seed)
    systems = [f"You are assistant #{n}. " + _words(rng, 400) for n in range(work.system_prompts)]
    ttfts: list[float] = []
    limit = asyncio.Semaphore(work.concurrency)
    stop, peaks = asyncio.Event(), []
    sampler = asyncio.create_task(_sample_inflight(servers, peaks, stop))

    async def one(index: int) -> int:
        async with limit:
            return await _session(http, url, work, index, systems, ttfts)

    try:
        async with aiohttp.ClientSession() as http:
            failures = sum(await asyncio.gather(*(one(i) for i in range(work.sessions))))
    finally:
        stop.set()
        await sampler
        server.should_exit = True
        await task
        for sim in servers:
            await sim.stop()
    cached = sum(s.gauges.cached_chars[MODEL] for s in servers)
    prompt = sum(s.gauges.prompt_chars[MODEL] for s in servers)
    calls = [s.calls_for(MODEL) for s in servers]
    inflight = [max(p[i] for p in peaks) if peaks else 0 for i in range(work.replicas)]
    quantiles = statistics.quantiles(ttfts, n=20)
    return Row(
        balancing,
        len(ttfts) + failures,
        failures,
        statistics.median(ttfts),
        quantiles[18],
        cached / prompt if prompt else 0.0,
        max(calls) / statistics.mean(calls),
        max(inflight) / statistics.mean(inflight) if sum(inflight) else 0.0,
    )


def plan_cost(replicas: int, prompt_chars: int, calls: int = 3000) -> list[tuple[str, float]]:
    """p50 µs of ``Executor.plan`` for a direct route to a replicated model: without the replica order (the same
    route to a plain model), with a session key, and with the prefix key of a ``prompt_chars`` opening."""
    endpoints = [f"http://10.0.0.{n}:8000" for n in range(replicas)]
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0}
    config = build_config(
        {
            "vllm": {"type": "openai_compatible", "models": {MODEL: {**model, "endpoints": endpoints}}},
            "plain": {"type": "openai_compatible", "base_url": endpoints[0], "models": {MODEL: model}},
        },
        {},
        {},
    )
    clock = MonotonicClock()
    executor = Executor(
        config=config, clock=clock, transport=None, limiter=RateLimiter(clock), latency=LatencyTracker()
    )  # type: ignore[arg-type]
    messages = (ChatMessage("system", "x" * prompt_chars), ChatMessage("user", "hello"))
    plain = RouteRequest(RoutingMethod.DIRECT, provider="plain", model=MODEL)
    replicated = RouteRequest(RoutingMethod.DIRECT, provider="vllm", model=MODEL)
    cases = [
        ("plain model (no endpoints)", lambda: executor.plan(plain, messages)),
        (f"{replicas} replicas, session_id", lambda: executor.plan(replicated._replace(affinity_key="s-1"), messages)),
        (f"{replicas} replicas, prefix of {prompt_chars} chars", lambda: executor.plan(replicated, messages)),
    ]
    results = []
    for label, call in cases:
        samples = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - started) / 1000.0)
        results.append((label, statistics.median(samples)))
    return results


def table(work: Workload, rows: list[Row]) -> str:
    lines = [
        f"replicas={work.replicas} sessions={work.sessions} turns={work.turns} concurrency={work.concurrency} "
        f"system_prompts={work.system_prompts} cold={work.cold_ms:g}ms warm={work.warm_ms:g}ms "
        f"cache_entries={work.cache_entries} seed={work.seed}",
        "",
        "| balancing | requests | failures | TTFT p50 ms | TTFT p95 ms | warm-prefix hit rate | requests max/mean "
        "| in-flight peak max/mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.balancing} | {r.requests} | {r.failures} | {r.ttft_p50_ms:.1f} | {r.ttft_p95_ms:.1f} "
            f"| {r.hit_rate:.1%} | {r.requests_max_over_mean:.2f} | {r.inflight_max_over_mean:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=48)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--system-prompts", type=int, default=3)
    parser.add_argument("--cold-ms", type=float, default=300.0)
    parser.add_argument("--warm-ms", type=float, default=30.0)
    parser.add_argument("--cache-entries", type=int, default=160, help="prefix chains each replica remembers")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Workload(
        args.replicas,
        args.sessions,
        args.turns,
        args.concurrency,
        args.system_prompts,
        args.cold_ms,
        args.warm_ms,
        args.cache_entries,
        args.seed,
    )
    rows = [asyncio.run(run(work, balancing)) for balancing in ("affinity", "round_robin")]
    costs = plan_cost(args.replicas, 40_000)
    output = table(work, rows) + "\n\n| Executor.plan | p50 µs |\n|---|---|\n"
    output += "\n".join(f"| {label} | {micros:.1f} |" for label, micros in costs)
    print(output)
    if args.out is not None:
        args.out.write_text(output + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
