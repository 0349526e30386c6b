"""Load from ``wrk`` (with post.lua) and the one-line result its done() hook prints."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

_POST_LUA = Path(__file__).resolve().parent / "post.lua"
_MARKER = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect + read + write + timeout
    status_errors: int  # responses with status > 399

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk (see benchmarks/README.md)")
    return path


def run_wrk(
    url: str,
    body: str,
    *,
    connections: int,
    duration_seconds: float,
    cpus: frozenset[int] | None = None,
    timeout_seconds: float = 5.0,
) -> WrkResult:
    """One wrk run; all numbers from the Lua done() hook. Bounded: duration plus a margin."""
    argv = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{duration_seconds:g}s",
        "--timeout",
        f"{timeout_seconds:g}s",
        "-s",
        str(_POST_LUA),
        url,
    ]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_seconds + timeout_seconds + 30,
        env={**os.environ, "BENCH_BODY": body},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(_MARKER):
            raw = json.loads(line[len(_MARKER) :])
            return WrkResult(
                requests=raw["requests"],
                requests_per_second=raw["requests"] / max(raw["duration_us"] / 1e6, 1e-9),
                p50_ms=raw["p50_us"] / 1000.0,
                p99_ms=raw["p99_us"] / 1000.0,
                socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
                status_errors=raw["status_errors"],
            )
    raise RuntimeError(f"wrk printed no result for {url}: {completed.stdout[-500:]} {completed.stderr[-500:]}")


def median_result(results: list[WrkResult]) -> WrkResult:
    """Per-field median of repeated runs (requests and errors: the sum, so one bad run is never hidden)."""
    return WrkResult(
        requests=sum(r.requests for r in results),
        requests_per_second=statistics.median(r.requests_per_second for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        status_errors=sum(r.status_errors for r in results),
    )
