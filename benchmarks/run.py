"""bkvy benchmark suite: ``python benchmarks/run.py [--quick]`` (see benchmarks/README.md).

Starts a fast OpenAI-format upstream, two reference forwarders, bkvy with logging off and on (and LiteLLM's
proxy when installed), all on 127.0.0.1, loads them with wrk, prints one markdown table and writes it to
benchmarks/results/<date>[-quick].md. Every process it started is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import BenchFleet, Target
from loadgen import require_wrk
from procs import REPO_ROOT, cpu_plan
from report import render_report
from routing_micro import run_all as time_routing
from rows import Measurements, build_rows
from scenarios import load_scenario, profile, settle, soak, ttft_scenario

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Budget:
    """How long each part runs; the full budget stays near 15 min on 2 cores (20 with LiteLLM)."""

    c1_seconds: float
    load_seconds: float
    repeats: int
    ttft_requests: int
    soak_requests: int
    soak_segment_seconds: float
    soak_max_seconds: float
    profile_seconds: float


FULL = Budget(
    c1_seconds=10,
    load_seconds=10,
    repeats=3,
    ttft_requests=200,
    soak_requests=100_000,
    soak_segment_seconds=5,
    soak_max_seconds=200,
    profile_seconds=10,
)
QUICK = Budget(
    c1_seconds=2,
    load_seconds=2,
    repeats=3,
    ttft_requests=40,
    soak_requests=10_000,
    soak_segment_seconds=2,
    soak_max_seconds=30,
    profile_seconds=5,
)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~3 minutes: 2 s runs, 10k-request soak")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway to its own CPU")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even when installed")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of bkvy")
    parser.add_argument("--only", default="", help="comma list of target labels' substrings to keep")
    return parser.parse_args()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _context(fleet: BenchFleet, budget: Budget, is_quick: bool) -> list[str]:
    commit = (
        subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return [
        f"mode: {'quick' if is_quick else 'full'}; c=1 runs {budget.c1_seconds:g} s, load runs "
        f"{budget.load_seconds:g} s, median of {budget.repeats} interleaved rounds; "
        f"soak {budget.soak_requests} requests",
        f"machine: {os.cpu_count()} CPUs ({cpu_model}); {fleet.cpus.describe()}; Python {platform.python_version()}",
        f"bkvy {commit}; upstream: benchmarks/fast_upstream.py (raw asyncio + uvloop, canned replies)",
        "bkvy /v1/chat/completions: " + (f"model {fleet.chat_model!r}" if fleet.chat_model else "not available (n/a)"),
        f"LiteLLM: {'measured' if 'litellm' in fleet.servers else 'not installed, skipped (see README)'}",
    ]


def _measure(
    fleet: BenchFleet, targets: list[Target], budget: Budget, args: argparse.Namespace, stem: str
) -> Measurements:
    load_cpus = fleet.cpus.load
    found = Measurements()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    say("[6/6 first, on an idle machine] routing decision micro-benchmark")
    found.routing = time_routing(args.quick)
    fleet.set_upstream_delay(0)
    say("[1] c=1 latency")
    found.c1 = load_scenario(
        "c=1", targets, connections=1, duration_seconds=budget.c1_seconds, repeats=budget.repeats, cpus=load_cpus
    )
    say("[2] c=64 throughput, upstream 0 ms")
    found.c64 = load_scenario(
        "c=64", targets, connections=64, duration_seconds=budget.load_seconds, repeats=budget.repeats, cpus=load_cpus
    )
    say("[3] c=256, upstream 100 ms")
    fleet.set_upstream_delay(100)
    found.c256 = load_scenario(
        "c=256", targets, connections=256, duration_seconds=budget.load_seconds, repeats=budget.repeats, cpus=load_cpus
    )
    fleet.set_upstream_delay(0)
    settle(targets)
    say("[4] time to first token")
    found.ttft = ttft_scenario(fleet, budget.ttft_requests)
    settle(targets)
    say("[5] soak")
    for role in ("bkvy", "bkvy_log"):
        soak_targets = [t for t in targets if t.role == role]
        if soak_targets:
            found.soak[role] = soak(
                soak_targets,
                budget.soak_requests,
                segment_seconds=budget.soak_segment_seconds,
                max_seconds=budget.soak_max_seconds,
                cpus=load_cpus,
            )
    found.peak_kib = {name: server.memory_kib()[1] for name, server in fleet.servers.items() if name != "upstream"}
    bkvy_target = next((t for t in targets if t.role == "bkvy"), None)
    if not args.no_profile and bkvy_target is not None:
        say("[profile] py-spy on bkvy under c=64")
        found.profile = profile(bkvy_target, RESULTS_DIR, stem, budget.profile_seconds, load_cpus)
    return found


def _stem(is_quick: bool) -> str:
    """``<date>[-quick]``; a later run the same day gets ``.2``, ``.3``...: results are kept, never overwritten."""
    base = datetime.date.today().isoformat() + ("-quick" if is_quick else "")
    stem, number = base, 1
    while (RESULTS_DIR / f"{stem}.md").exists():
        number += 1
        stem = f"{base}.{number}"
    return stem


def main() -> int:
    args = _parse_args()
    require_wrk()
    budget = QUICK if args.quick else FULL
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a backgrounded shell job starts with it ignored
        signal.signal(signum, _raise_interrupt)
    fleet = BenchFleet(cpu_plan(not args.no_pin))
    if fleet.cpus.load:
        os.sched_setaffinity(0, fleet.cpus.load)  # the runner's own clients (TTFT) stay off the gateway's CPU
    started = time.monotonic()
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = _stem(args.quick)
    try:
        print(f"starting servers (logs in {fleet.work_dir})", file=sys.stderr, flush=True)
        fleet.start(with_litellm=not args.no_litellm)
        targets = fleet.targets()
        if args.only:
            wanted = [word.strip() for word in args.only.split(",") if word.strip()]
            targets = [t for t in targets if t.role in ("direct", "ref_aiohttp") or any(w in t.label for w in wanted)]
        found = _measure(fleet, targets, budget, args, stem)
    except KeyboardInterrupt:
        print("interrupted: stopping every server", file=sys.stderr)
        return 130
    finally:
        fleet.stop()
    rows, notes = build_rows(targets, found, has_chat=fleet.chat_model is not None)
    elapsed = f"run took {time.monotonic() - started:.0f} s"
    report = render_report(
        f"bkvy benchmarks {datetime.date.today().isoformat()}",
        _context(fleet, budget, args.quick) + [elapsed],
        rows,
        has_litellm="litellm" in fleet.servers,
        notes=notes,
    )
    if found.profile:
        report += "\n## Profile of bkvy under load\n\n```\n" + found.profile + "\n```\n"
    out_path = RESULTS_DIR / f"{stem}.md"
    out_path.write_text(report)
    print(report)
    print(f"written to {out_path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
