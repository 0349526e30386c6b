"""What the sensitive-data detector costs on the hot path (issue 19 §1). Run by hand:

    python benchmarks/pii_detector.py

Prints p50/p99 (µs) of ``scan_request`` on one user message of 1 KB, 10 KB and 100 KB of mixed text
(benchmarks/pii_text.py), without and with findings, and of ``redact_request`` on the same; writes the table to
benchmarks/results/<date>-pii-detector.md. A second table times ``find_sensitive`` on adversarial text (each
pathological pattern repeated to 1 KB, 10 KB and 100 KB): every row must grow linearly (ms at 100 KB, not s).
The goal (issue 19): p99 on 10 KB under 1 ms. Timings are wall clock on whatever
machine runs it: say how busy it was next to any figure you quote.
"""

from __future__ import annotations

import datetime
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_text import prompt

from bkvy.core.policy.detector import find_sensitive, redact_request, scan_request
from bkvy.models.types import ChatMessage, GenerationOptions

SIZES = {"1 KB": (1024, 3000), "10 KB": (10 * 1024, 1500), "100 KB": (100 * 1024, 150)}  # bytes, runs


def _percentiles_us(call: Callable[[], object], runs: int) -> tuple[float, float, float]:
    for _ in range(min(runs, 50)):
        call()  # warm: compiled patterns, caches
    samples = []
    gc.disable()
    try:
        for _ in range(runs):
            started = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), _at(samples, 0.9), _at(samples, 0.99)


def _at(ordered: list[float], quantile: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]


# Repeated to size: each once made a pattern retry an unbounded run at every prefix (quadratic).
ADVERSARIAL = {
    "pass=": "pass=",
    "api_key=": "api_key=",
    "token=": "token=",
    "bearer": "bearer ",
    "sk-": "sk-",
    "eyJ": "eyJ",
    "eyJ…. ": "eyJaaaaaaaaaaaa.",
    "BEGIN PRIVATE KEY": "-----BEGIN PRIVATE KEY-----",
    "a@": "a@",
    "a.@": "a.@",
    "x@x.": "x@x.",
    "a:": "a:",
    "1::": "1::",
    "1.": "1.",
    "+1 ": "+1 ",
}


def adversarial_table() -> str:
    rows = ["| pattern | 1 KB ms | 10 KB ms | 100 KB ms |", "|---|---|---|---|"]
    for label, unit in ADVERSARIAL.items():
        cells = []
        for size in (1024, 10 * 1024, 100 * 1024):
            text = (unit * (size // len(unit) + 1))[:size]
            started = time.perf_counter_ns()
            find_sensitive(text)
            cells.append(f"{(time.perf_counter_ns() - started) / 1e6:.1f}")
        rows.append(f"| `{label}` × n | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    options = GenerationOptions()
    rows = [
        "| prompt | findings | count | scan p50 µs | scan p90 µs | scan p99 µs | redact p50 µs | redact p99 µs |",
        "|---" * 8 + "|",
    ]
    for label, (size, runs) in SIZES.items():
        for with_findings in (False, True):
            messages = (
                ChatMessage("system", "You are a careful assistant."),
                ChatMessage("user", prompt(size, with_findings=with_findings)),
            )
            scan = _percentiles_us(lambda m=messages: scan_request(m, options), runs)
            redact = _percentiles_us(lambda m=messages: redact_request(m, options), runs)
            count = scan_request(messages, options).count
            rows.append(
                f"| {label} | {'yes' if with_findings else 'no'} | {count} | {scan[0]:.0f} | {scan[1]:.0f} "
                f"| {scan[2]:.0f} | {redact[0]:.0f} | {redact[2]:.0f} |"
            )
    table = "\n".join(rows) + "\n\nAdversarial text (`find_sensitive`, one run each):\n\n" + adversarial_table()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(table + f"\n\nload average during the run: {load} on {os.cpu_count()} CPUs")
    results = Path(__file__).resolve().parent / "results" / f"{datetime.date.today()}-pii-detector.md"
    header = f"# pii detector ({sys.version.split()[0]}; `python benchmarks/pii_detector.py`)\n\n"
    results.write_text(header + table + f"\n\nload average at the end: {load} on {os.cpu_count()} CPUs\n")
    print(f"written to {results}")


if __name__ == "__main__":
    main()
