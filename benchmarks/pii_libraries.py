"""The libraries considered for the detector (issue 19 §1 asks for a maintained one if it is fast enough),
timed on the same mixed text as benchmarks/pii_detector.py. Run by hand, in a throwaway virtualenv so none of
them enters bkvy's requirements:

    python -m venv /tmp/libvenv && /tmp/libvenv/bin/pip install phonenumbers detect-secrets scrubadub
    /tmp/libvenv/bin/python benchmarks/pii_libraries.py

Prints p50/p99 (µs) per library on 1 KB and 10 KB (with findings), and bkvy's ``find_sensitive`` beside them.
A library that is not installed is skipped.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_text import prompt

from bkvy.core.policy.detector import find_sensitive

RUNS = {1024: 300, 10 * 1024: 60}


def _percentiles_us(call: Callable[[], object], runs: int) -> tuple[float, float]:
    call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def _phonenumbers() -> Callable[[str], object] | None:
    try:
        import phonenumbers
    except ImportError:
        return None
    return lambda text: list(phonenumbers.PhoneNumberMatcher(text, "US"))


def _detect_secrets() -> Callable[[str], object] | None:
    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings
    except ImportError:
        return None

    def scan(text: str) -> object:
        with default_settings():
            return [list(scan_line(line)) for line in text.splitlines()]

    return scan


def _scrubadub() -> Callable[[str], object] | None:
    try:
        import scrubadub
    except ImportError:
        return None
    scrubber = scrubadub.Scrubber()
    return lambda text: list(scrubber.iter_filth(text))


def main() -> None:
    candidates = {
        "bkvy find_sensitive": lambda text: find_sensitive(text),
        "phonenumbers PhoneNumberMatcher (US)": _phonenumbers(),
        "detect-secrets scan_line (default plugins)": _detect_secrets(),
        "scrubadub Scrubber.iter_filth": _scrubadub(),
    }
    print("| library | 1 KB p50 µs | 1 KB p99 µs | 10 KB p50 µs | 10 KB p99 µs |")
    print("|---|---|---|---|---|")
    for label, scan in candidates.items():
        if scan is None:
            print(f"| {label} | not installed | | | |")
            continue
        cells = []
        for size, runs in RUNS.items():
            text = prompt(size, with_findings=True)
            p50, p99 = _percentiles_us(lambda s=scan, t=text: s(t), runs)
            cells += [f"{p50:.0f}", f"{p99:.0f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
