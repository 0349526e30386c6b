"""Time to first token: N sequential streaming requests, clock stopped at the first ``data:`` chunk that
carries content (a role-only opening chunk is not a token: bkvy holds its first byte until real content
arrives, so that it can still fail over invisibly, SPEC/issue 6).

    python benchmarks/ttft.py http://127.0.0.1:PORT/v1/chat/completions --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import aiohttp

STREAM_BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@dataclass(frozen=True, slots=True)
class TtftResult:
    samples: int
    p50_ms: float
    p99_ms: float
    failures: int


def _has_content(line: bytes) -> bool:
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    try:
        choices = json.loads(payload).get("choices") or []
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in choices)


async def _one(session: aiohttp.ClientSession, url: str, body: dict) -> float | None:
    started = time.perf_counter()
    async with session.post(url, json=body) as response:
        if response.status != 200:
            await response.read()
            return None
        first_ms: float | None = None
        async for line in response.content:  # lines; keep reading so the connection is reusable
            if first_ms is None and line.startswith(b"data:") and _has_content(line):
                first_ms = (time.perf_counter() - started) * 1000.0
        return first_ms


async def measure_ttft(url: str, requests: int, body: dict | None = None, warmup: int = 5) -> TtftResult:
    payload = body or STREAM_BODY
    timings: list[float] = []
    failures = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for index in range(warmup + requests):
            try:
                first_ms = await _one(session, url, payload)
            except (TimeoutError, aiohttp.ClientError):
                first_ms = None
            if index < warmup:
                continue
            if first_ms is None:
                failures += 1
            else:
                timings.append(first_ms)
    if not timings:
        return TtftResult(0, float("nan"), float("nan"), failures)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return TtftResult(len(timings), statistics.median(timings), p99, failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model", default="m")
    args = parser.parse_args()
    result = asyncio.run(measure_ttft(args.url, args.requests, {**STREAM_BODY, "model": args.model}))
    print(
        json.dumps(
            result.__dict__
            if hasattr(result, "__dict__")
            else {name: getattr(result, name) for name in TtftResult.__slots__}
        )
    )


if __name__ == "__main__":
    main()
