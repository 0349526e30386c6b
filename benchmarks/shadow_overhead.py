"""Shadow traffic (issue 20 §2): the client's reply time with shadows on (two shadow models) and off, on the same
gateway and fleet. Shadow calls start after the reply is sent, so the difference should be noise;
what they can still cost a client is event-loop time shared with the next requests, which this measures.

Run by hand, never in the test suite:

    python benchmarks/shadow_overhead.py                     # 3 rounds x 300 requests per mode, c=8
    python benchmarks/shadow_overhead.py --requests 100 --rounds 1
    python benchmarks/shadow_overhead.py --concurrency 1 --think-ms 20   # a client that pauses between requests
    python benchmarks/shadow_overhead.py --out benchmarks/results/2026-12-01-shadow-overhead.md   # appends

The simulated fleet with its default latencies runs in a process of its own on 127.0.0.1 (so the extra upstream
replies do not share the gateway's CPU); the real app under uvicorn on a loopback port and the httpx clients share
another. Requests: ``/llm/intelligence`` level ``low`` (the demo's providers, rate limits removed so no shadow is
skipped for a busy lane). "on": routing.json ``"shadow": {"low": {"models": ["gemini/gemini-2.5-flash",
"openai/gpt-4o"], "sample_percent": P}}`` (``--percent``, default 100) with SHADOW_MAX_CONCURRENCY 64 and a budget
that never runs out; "off": no ``shadow``. Modes alternate per round (off, on, off, on...) so a busy
moment of the shared machine hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.api.app import create_app
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_providers, demo_routing
from bkvy.sim import SimFleet

SHADOW_MODELS = ["gemini/gemini-2.5-flash", "openai/gpt-4o"]
BODY = {"client_id": "bench", "intelligence_level": "low", "messages": [{"role": "user", "content": "hello there"}]}


class _RemoteFleet:
    """A SimFleet's URLs, its servers in another process (``_serve_fleet``) on ports from ``port_base``."""

    def __init__(self, port_base: int) -> None:
        from bkvy.sim.fleet import WIRE_FORMATS

        self._urls = {wire: f"http://127.0.0.1:{port_base + index}" for index, wire in enumerate(WIRE_FORMATS)}

    def base_url(self, wire_format: str) -> str:
        return self._urls[wire_format]


def _serve_fleet(port_base: int) -> None:
    async def serve() -> None:
        fleet = SimFleet(seed=1)
        await fleet.start("127.0.0.1", port_base=port_base)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _providers(fleet: Any) -> dict[str, Any]:
    providers = demo_providers(fleet)
    for provider in providers.values():
        for key in provider.get("keys", {}).values():
            key.pop("rate_limits", None)
    return providers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _one_round(
    fleet: Any, *, shadow_on: bool, requests: int, concurrency: int, think_seconds: float = 0.0, percent: float = 100.0
) -> dict[str, float]:
    shadow = {"low": {"models": SHADOW_MODELS, "sample_percent": percent}}
    routing = demo_routing() | ({"shadow": shadow} if shadow_on else {})
    settings = load_settings(
        {}, log_dir=tempfile.mkdtemp(prefix="bkvy-bench-"), shadow_max_concurrency=64, shadow_daily_budget_usd=1e6
    )
    app = create_app(settings, build_config(_providers(fleet), routing, {}))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):  # ≤ 20 s
        if server.started:
            break
        await asyncio.sleep(0.05)
    times: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            queue = list(range(requests))

            async def worker() -> None:
                while queue:
                    queue.pop()
                    started = time.perf_counter()
                    response = await client.post("/llm/intelligence", json=BODY)
                    times.append((time.perf_counter() - started) * 1000.0)
                    assert response.status_code == 200, response.text
                    if think_seconds:
                        await asyncio.sleep(think_seconds)  # a client between two requests

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        runner = app.state.services.shadow
        await runner.drain(60.0)
        summary = runner.book.summary()["routes"].get("low", {})
        shadow_calls = sum(row["calls"] for name, row in summary.items() if name != "primary")
    finally:
        server.should_exit = True
        await task
    ordered = sorted(times)
    return {
        "mean": statistics.fmean(times),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[int(len(ordered) * 0.95) - 1],
        "shadow_calls": shadow_calls,
    }


async def _wait_for(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):  # ≤ 20 s
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"the simulated fleet did not start at {url}")


async def _main(args: argparse.Namespace) -> str:
    port_base = _free_port() + 10  # assumed free, like the next few ports
    process = multiprocessing.get_context("spawn").Process(target=_serve_fleet, args=(port_base,), daemon=True)
    process.start()
    fleet = _RemoteFleet(port_base)
    await _wait_for(fleet.base_url("openai"))
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    try:
        await _one_round(fleet, shadow_on=False, requests=50, concurrency=args.concurrency)  # warm-up
        for _ in range(args.rounds):
            for shadow_on in (False, True):
                results[shadow_on].append(
                    await _one_round(
                        fleet,
                        shadow_on=shadow_on,
                        requests=args.requests,
                        concurrency=args.concurrency,
                        think_seconds=args.think_ms / 1000.0,
                        percent=args.percent,
                    )
                )
    finally:
        process.terminate()
        process.join(timeout=10)
    lines = [
        f"Client reply time, /llm/intelligence low, c={args.concurrency}, think {args.think_ms:g} ms, "
        f"{args.rounds} rounds x {args.requests} requests per mode (ms; shared busy 2-core machine)",
        "",
        "| shadows | mean ms | p50 ms | p95 ms | shadow calls |",
        "|---|---|---|---|---|",
    ]
    for shadow_on, rounds in results.items():
        mean = statistics.fmean(r["mean"] for r in rounds)
        p50 = statistics.median(r["p50"] for r in rounds)
        p95 = statistics.median(r["p95"] for r in rounds)
        calls = int(sum(r["shadow_calls"] for r in rounds))
        mode = f"on ({args.percent:g} %, 2 models)" if shadow_on else "off"
        lines.append(f"| {mode} | {mean:.2f} | {p50:.2f} | {p95:.2f} | {calls} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--percent", type=float, default=100.0, help="sample_percent of the shadow route")
    parser.add_argument("--think-ms", type=float, default=0.0, help="each client's pause between requests")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = asyncio.run(_main(args))
    print(table)
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as out:  # one table per run: runs of several settings add up
            out.write(f"$ python benchmarks/shadow_overhead.py {' '.join(sys.argv[1:])}\n\n{table}\n")


if __name__ == "__main__":
    main()
