"""Cost of the records on the request path: requests/s with the transaction log, daily stats and dashboard
aggregate on vs off, in one run, in-process (httpx ASGI transport) against the simulated fleet (no latency).

    python benchmarks/logging_overhead.py [--requests 2000] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bkvy.api.app import create_app
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet


async def _run(fleet: SimFleet, *, records_on: bool, requests: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as log_dir:
        settings = load_settings(
            {},
            log_dir=Path(log_dir),
            transaction_logging=records_on,
            summary_stats=records_on,
            dashboard_enabled=records_on,
            circuit_breaker_enabled=False,
        )
        app = create_app(settings, demo_config(fleet))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bkvy.bench") as client:
                body = {
                    "client_id": "bench",
                    "provider": "ollama",
                    "model": "llama3.2",
                    "messages": [{"role": "user", "content": "ping"}],
                }
                semaphore = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with semaphore:
                        response = await client.post("/llm/direct", json=body)
                        assert response.status_code == 200, response.text

                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(requests)))
                elapsed = time.perf_counter() - started
            if records_on:
                records = app.state.services.records
                await records.transaction_log.flush()
                assert records.transaction_log.written_count == requests
    return requests / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fleet = SimFleet(seed=1, with_default_latency=False)
    await fleet.start("127.0.0.1")
    try:
        await _run(fleet, records_on=False, requests=200, concurrency=args.concurrency)  # warm-up
        results: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for records_on in (False, True):  # interleaved
                results[records_on].append(
                    await _run(fleet, records_on=records_on, requests=args.requests, concurrency=args.concurrency)
                )
    finally:
        await fleet.stop()
    off, on = statistics.median(results[False]), statistics.median(results[True])
    print(f"records off: {off:8.1f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in results[False])})")
    print(f"records on : {on:8.1f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in results[True])})")
    print(
        f"overhead   : {100 * (off - on) / off:+.1f} %  ({args.requests} requests x {args.rounds} rounds, "
        f"concurrency {args.concurrency})"
    )


if __name__ == "__main__":
    asyncio.run(main())
