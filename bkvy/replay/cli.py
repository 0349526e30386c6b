"""``python main.py replay LOG.csv [LOG.csv ...] --config DIR [--from DATE] [--to DATE] [--json]``.

Exit 0 with the comparison (a table, or ``--json``); 2 for bad arguments, an unreadable or foreign log file, or
no request in the window; 1 for an invalid config (main prints it). ``--write-demo-config DIR`` writes the
config of ``python main.py --demo`` to DIR (to edit, then replay against) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from bkvy.core.config.gateway import GatewayConfig, load_config
from bkvy.core.config.settings import Settings
from bkvy.replay.fitting import FleetFit, fit_fleet
from bkvy.replay.log_reader import ReplayInputError, parse_bound, read_logs
from bkvy.replay.runner import replay_records
from bkvy.replay.selection import select_replayable
from bkvy.replay.summary import comparison, render_table
from bkvy.utils.records import TransactionRecord


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own exit 2, with our prefix
        self.print_usage(sys.stderr)
        self.exit(2, f"bkvy replay: {message}\n")


def parse_replay_args(argv: list[str]) -> argparse.Namespace:
    """Exits 2 with a message for bad arguments."""
    parser = _Parser(prog="python main.py replay", description="replay the transaction log against a config")
    parser.add_argument("logs", nargs="*", type=Path, help="transaction log files (LOG_DIR/transactions*.csv)")
    parser.add_argument("--config", type=Path, help="the config directory to replay against (providers.json ...)")
    parser.add_argument("--from", dest="since", help="first day (YYYY-MM-DD) or ISO time replayed (inclusive)")
    parser.add_argument("--to", dest="until", help="last day (YYYY-MM-DD, inclusive) or ISO time (exclusive)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--seed", type=int, default=0, help="the simulated fleet's dice (default 0)")
    parser.add_argument("--write-demo-config", type=Path, metavar="DIR", help="write --demo's config to DIR, exit")
    args = parser.parse_args(argv)
    if args.write_demo_config is None and (not args.logs or args.config is None):
        parser.error("give LOG.csv files and --config DIR (or --write-demo-config DIR)")
    return args


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Print the comparison; 0, or 2 for a bad log or window. Raises ConfigError for a bad ``--config``."""
    if args.write_demo_config is not None:
        return _write_demo_config(args.write_demo_config)
    config = load_config(args.config)
    try:
        since = parse_bound(args.since, is_end=False) if args.since else None
        until = parse_bound(args.until, is_end=True) if args.until else None
        logged = read_logs(args.logs, since=since, until=until)
    except ReplayInputError as error:
        print(f"bkvy replay: {error}", file=sys.stderr)
        return 2
    # Left out of both sides, each counted: cache hits, embeddings requests, client-caused failures (selection.py).
    selection = select_replayable(logged, config)
    recorded = selection.replayable
    for count, why in (
        (selection.cache_hits, "cache hits left out (no upstream call)"),
        (selection.embeddings, "embeddings requests left out (a replay issues chat requests)"),
        (selection.client_failures, "client-caused failures left out (the client left, stalled or sent a bad request)"),
    ):
        if count:
            print(f"bkvy replay: {count} {why}", file=sys.stderr)
    if not recorded:
        print("bkvy replay: no request in these files and dates: nothing to replay", file=sys.stderr)
        return 2
    # Each replayed failure would log as a live one would: thousands of lines about calls never made.
    logging.getLogger("bkvy.core").setLevel(logging.ERROR)
    report = asyncio.run(replay_report(recorded, config, settings, seed=args.seed))
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0


async def replay_report(
    recorded: list[TransactionRecord], config: GatewayConfig, settings: Settings, *, seed: int = 0
) -> dict[str, Any]:
    """Fit, replay, compare: the report ``--json`` prints."""
    fit = fit_fleet(recorded)
    started = time.perf_counter()
    replayed, calls = await replay_records(recorded, config, settings, fit, seed=seed)
    seconds = time.perf_counter() - started
    return {
        "log": {"requests": len(recorded), "first": recorded[0].timestamp, "last": recorded[-1].timestamp},
        "replay": {"seconds": round(seconds, 3), "upstream_calls": calls, "seed": seed},
        "fit": _fit_json(fit),
        **comparison(recorded, replayed),
    }


def _fit_json(fit: FleetFit) -> dict[str, Any]:
    return {
        "latency": {
            name: {"samples": len(dist.sorted_ms), "p50_ms": dist.quantile(0.5), "p95_ms": dist.quantile(0.95)}
            for name, dist in sorted(fit.latency.items())
        },
        "episodes": [
            {
                "model": e.model,
                "error_class": e.error_class,
                "start": e.start_wall,
                "end": e.end_wall,
                "failures": e.failures,
                "failure_rate": round(e.failure_rate, 3),
            }
            for episodes in fit.episodes.values()
            for e in episodes
        ],
    }


def _table(report: dict[str, Any]) -> str:
    log, replay = report["log"], report["replay"]
    return "\n".join(
        [
            f"replayed {log['requests']} requests ({log['first']} .. {log['last']}) in {replay['seconds']:.1f}s, "
            f"{replay['upstream_calls']} upstream calls; fitted {len(report['fit']['latency'])} models' latency, "
            f"{len(report['fit']['episodes'])} error episodes",
            render_table(report),
        ]
    )


def _write_demo_config(directory: Path) -> int:
    from bkvy.demo import demo_policy, demo_providers_offline, demo_routing

    directory.mkdir(parents=True, exist_ok=True)
    for name, raw in (
        ("providers.json", demo_providers_offline()),
        ("routing.json", demo_routing()),
        ("policy.json", demo_policy()),
    ):
        (directory / name).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    print(f"wrote the demo's providers.json, routing.json and policy.json to {directory}")
    return 0
