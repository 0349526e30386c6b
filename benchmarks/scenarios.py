"""The measurements: interleaved wrk runs (median of N), TTFT, the soak, and a py-spy profile."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fleet import BenchFleet, Target
from loadgen import WrkResult, median_result, run_wrk
from ttft import STREAM_BODY, TtftResult, measure_ttft


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_SETTLE_POLL_SECONDS = 0.2
_SETTLE_IDLE_CPU_SECONDS = 0.01  # less CPU than this in one poll: the process is idle
_SETTLE_MAX_SECONDS = 20.0
_WARM_UP_SECONDS = 1  # wrk's shortest run


def settle(targets: list[Target]) -> None:
    """Wait until every gateway under test is idle. A gateway that queued requests it could not serve (the
    httpx reference at c=256) goes on working them after wrk hangs up; on a shared core that would be
    charged to whichever target is measured next."""
    servers = {id(t.server): t.server for t in targets if t.server is not None}.values()
    deadline = time.monotonic() + _SETTLE_MAX_SECONDS
    previous = {id(server): server.cpu_seconds() for server in servers}
    while time.monotonic() < deadline:
        time.sleep(_SETTLE_POLL_SECONDS)
        current = {id(server): server.cpu_seconds() for server in servers}
        if all(current[key] - previous[key] < _SETTLE_IDLE_CPU_SECONDS for key in current):
            return
        previous = current


def load_scenario(
    name: str,
    targets: list[Target],
    *,
    connections: int,
    duration_seconds: float,
    repeats: int,
    cpus: frozenset[int] | None,
) -> dict[str, WrkResult]:
    """`repeats` rounds; each round visits every target, in a rotated order. Every measured run follows a
    short unmeasured one at the same concurrency, and starts only when every gateway is idle again: a
    forwarder's upstream pool closes connections idle for 15 s (aiohttp's default), which the other
    targets' runs always exceed, so without it each measured run would open a pool's worth of upstream
    connections in its first wave and that wave would set its p99."""
    runs: dict[str, list[WrkResult]] = {t.label: [] for t in targets}
    for round_index in range(repeats):
        shift = round_index % len(targets)
        for target in targets[shift:] + targets[:shift]:
            settle(targets)
            run_wrk(target.url, target.body, connections=connections, duration_seconds=_WARM_UP_SECONDS, cpus=cpus)
            settle(targets)
            result = run_wrk(
                target.url, target.body, connections=connections, duration_seconds=duration_seconds, cpus=cpus
            )
            runs[target.label].append(result)
            _say(
                f"  [{name}] round {round_index + 1}/{repeats} {target.label:<42} {result.requests_per_second:9.0f}"
                f" req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}"
            )
    return {label: median_result(results) for label, results in runs.items()}


def ttft_scenario(fleet: BenchFleet, requests: int) -> dict[str, TtftResult | None]:
    """Streaming targets: direct, the references, bkvy's /v1/chat/completions (None when it has none), LiteLLM."""
    chat = "/v1/chat/completions"
    endpoints: dict[str, tuple[str, dict] | None] = {
        "direct (upstream)": (fleet.servers["upstream"].base_url + chat, STREAM_BODY)
    }
    for role, label in (("ref_aiohttp", "ref aiohttp"), ("ref_httpx", "ref httpx")):
        endpoints[label] = (fleet.servers[role].base_url + chat, STREAM_BODY)
    for role, suffix in (("bkvy", "log off"), ("bkvy_log", "log on")):
        body = {**STREAM_BODY, "model": fleet.chat_model} if fleet.chat_model else None
        endpoints[f"bkvy {chat} ({suffix})"] = (fleet.servers[role].base_url + chat, body) if body else None
    if "litellm" in fleet.servers:
        endpoints["LiteLLM proxy"] = (fleet.servers["litellm"].base_url + chat, STREAM_BODY)
    results: dict[str, TtftResult | None] = {}
    for label, endpoint in endpoints.items():
        results[label] = asyncio.run(measure_ttft(endpoint[0], requests, endpoint[1])) if endpoint else None
        _say(f"  [ttft] {label:<42} {results[label]}")
    return results


@dataclass(frozen=True, slots=True)
class SoakResult:
    requests: int
    errors: int
    rss_start_kib: int
    rss_end_kib: int
    peak_kib: int  # VmHWM: the process's peak over the whole run, not just the soak

    @property
    def growth_percent(self) -> float:
        return 100.0 * (self.rss_end_kib - self.rss_start_kib) / self.rss_start_kib


def soak(
    targets: list[Target],
    total_requests: int,
    *,
    segment_seconds: float,
    max_seconds: float,
    cpus: frozenset[int] | None,
) -> SoakResult:
    """Back-to-back wrk segments at c=64 until `total_requests` (or `max_seconds`), cycling over one server's
    endpoints."""
    server = targets[0].server
    assert server is not None
    rss_start_kib, _ = server.memory_kib()
    done = errors = segment = 0
    deadline = time.monotonic() + max_seconds
    while done < total_requests and time.monotonic() < deadline:
        target = targets[segment % len(targets)]
        result = run_wrk(target.url, target.body, connections=64, duration_seconds=segment_seconds, cpus=cpus)
        done, errors, segment = done + result.requests, errors + result.errors, segment + 1
        if result.requests == 0:
            break
    rss_end_kib, peak_kib = server.memory_kib()
    _say(f"  [soak] {server.name}: {done} requests, RSS {rss_start_kib} -> {rss_end_kib} KiB, peak {peak_kib} KiB")
    return SoakResult(done, errors, rss_start_kib, rss_end_kib, peak_kib)


def profile(target: Target, out_dir: Path, stem: str, seconds: float, cpus: frozenset[int] | None) -> str:
    """py-spy (raw collapsed stacks) on the target's server during a c=64 wrk run; a text summary."""
    py_spy = shutil.which("py-spy")
    if py_spy is None or target.server is None:
        return "py-spy not installed (pip install py-spy): no profile."
    raw_path = out_dir / f"{stem}-profile.txt"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "-d",
            f"{seconds:g}",
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(raw_path),
            "--pid",
            str(target.server.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = run_wrk(target.url, target.body, connections=64, duration_seconds=seconds + 1, cpus=cpus)
    _, spy_errors = spy.communicate(timeout=seconds + 30)
    if spy.returncode != 0 or not raw_path.exists():
        return f"py-spy failed ({spy.returncode}): {spy_errors.strip()[-300:]}"
    summary = summarise_collapsed(raw_path.read_text(), top=15)
    return (
        f"py-spy on {target.label} at c=64 for {seconds:g} s ({result.requests_per_second:.0f} req/s); "
        f"raw stacks: {raw_path.name}\n\n{summary}"
    )


# Leaf frames of threads parked in a blocking wait, which py-spy can count as active: left out.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "wait (threading.py", "get (queue.py")


def summarise_collapsed(collapsed: str, top: int) -> str:
    """Self time (leaf frame) and inclusive time per function from py-spy's collapsed stacks, idle threads
    (a thread-pool worker waiting for work) left out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if frames[-1].startswith(_IDLE_LEAVES):
            idle += count
            continue
        total += count
        own[frames[-1]] += count
        for function in {frame.rsplit(":", 1)[0] + ")" for frame in frames}:  # per function, not per line
            inclusive[function] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} busy samples ({idle} idle thread-pool samples left out). Self time (where the CPU was):"]
    lines += [f"  {100.0 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines.append("Inclusive time (bkvy/app frames, incl. callees):")
    ours = [(f, n) for f, n in inclusive.most_common() if "bkvy/" in f or "reference_forw" in f]
    lines += [f"  {100.0 * n / total:5.1f} %  {frame}" for frame, n in ours[:top]]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py:12)'."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where}" if where else name


def as_json(value: object) -> str:
    return json.dumps(value, default=lambda o: {k: getattr(o, k) for k in getattr(o, "__slots__", ())})
