"""How long ``python main.py replay`` takes for N requests: a synthetic week of the demo's traffic (mixed
strategies, a heavy latency tail, a 429 episode and a server-error episode per day), replayed in process
against the demo's config on virtual time. Prints a table; run by hand:

    python benchmarks/replay.py                 # 1,000 / 10,000 / 50,000 requests
    python benchmarks/replay.py --sizes 2000    # one size
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_providers_offline, demo_routing
from bkvy.replay.cli import replay_report
from bkvy.utils.records import TransactionRecord, utc_timestamp

_WEEK_SECONDS = 7 * 86400.0
_START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
_KINDS = (
    ("intelligence", "low", "", "ollama", "llama3.2"),
    ("intelligence", "high", "", "openai", "o3-mini"),
    ("scenario", "", "research", "gemini", "gemini-2.5-pro"),
    ("scenario", "", "customer_support", "anthropic", "claude-3-5-haiku-latest"),
)


def synthetic_week(count: int, rng: random.Random) -> list[TransactionRecord]:
    records = []
    for index in range(count):
        at = _START + _WEEK_SECONDS * index / count
        method, level, scenario, provider, model = rng.choice(_KINDS)
        ms = rng.lognormvariate(5.5, 0.5)
        in_episode = (at % 86400.0) < 600.0  # the first ten minutes of each day: haiku is rate limited
        tried = "anthropic/claude-3-5-haiku-latest/anthropic_key_1" if in_episode and scenario else ""
        records.append(
            TransactionRecord(
                utc_timestamp(at),
                f"b{index}",
                "bench",
                method,
                level,
                scenario,
                success=True,
                provider_used=provider,
                model_used=model,
                total_time_ms=ms,
                input_tokens=rng.randint(50, 2000),
                output_tokens=rng.randint(10, 500),
                cost_estimate=0.001,
                fallback_attempts=1 if tried else 0,
                alternatives_tried=tried,
                alternatives_outcomes="rate_limited" if tried else "",
            )
        )
    return records


async def measure(count: int) -> tuple[int, float, int]:
    config = build_config(demo_providers_offline(), demo_routing(), {})
    records = synthetic_week(count, random.Random(count))
    started = time.perf_counter()
    report = await replay_report(records, config, load_settings({}))
    return count, time.perf_counter() - started, report["replay"]["upstream_calls"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    args = parser.parse_args()
    logging.getLogger("bkvy.core").setLevel(logging.ERROR)
    gc.set_threshold(20_000, 50, 100)  # as main.py sets it, so this measures what the CLI does
    print(f"{'requests':>9} {'seconds':>8} {'requests/s':>11} {'upstream calls':>15}")
    for size in args.sizes:
        count, seconds, calls = asyncio.run(measure(size))
        print(f"{count:>9} {seconds:>8.2f} {count / seconds:>11.0f} {calls:>15}")


if __name__ == "__main__":
    main()
