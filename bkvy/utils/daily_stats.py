"""Per-UTC-day request statistics (SPEC §7), kept in memory and saved to one JSON file.

Latency is kept as counts in fixed log-spaced buckets (``LATENCY_BOUNDS_MS``), not as samples: histograms
of different days, or of before and after a restart, add up bucket by bucket, so percentiles over any
range are estimated from all of its requests. An estimate lies in the bucket of the true value (bucket
edges are ~25% apart) and is interpolated inside it, then clamped to the observed min and max.

Only ids and numbers are kept: client ids, key ids, provider and model names, error codes. Never message
content, never key values.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bkvy.clock import Clock
from bkvy.utils.atomic_files import write_text_atomic
from bkvy.utils.latency_histogram import LATENCY_BOUNDS_MS, estimate_percentile_ms
from bkvy.utils.records import TransactionRecord, parse_timestamp, utc_day

log = logging.getLogger(__name__)

_FILE_VERSION = 1
# (name in the report, TransactionRecord field); empty values are not counted.
_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("by_routing_method", "routing_method"),
    ("by_intelligence_level", "intelligence_level"),
    ("by_scenario", "scenario"),
    ("by_provider", "provider_used"),
    ("by_model", "model_used"),
    ("by_client_id", "client_id"),
    ("by_key_id", "api_key_used"),
    ("errors_by_code", "error_type"),
)
_FILE_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)  # ValueError covers bad JSON


@dataclass(slots=True)
class _DayTotals:
    """Running, mergeable totals of one day (or of a merged range of days)."""

    total: int = 0
    successes: int = 0
    failures: int = 0
    retried: int = 0  # requests with an upstream call beyond the first (not counting hedges)
    hedged: int = 0  # requests a hedge raced
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {name: Counter() for name, _ in _DIMENSIONS})
    total_cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    total_latency_ms: float = 0.0
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    total_queue_wait_ms: float = 0.0
    total_rate_limit_wait_ms: float = 0.0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def observe(self, rec: TransactionRecord) -> None:
        self.total += 1
        self.successes += 1 if rec.success else 0
        self.failures += 0 if rec.success else 1
        self.retried += 1 if rec.fallback_attempts > 0 else 0
        self.hedged += 1 if rec.hedged else 0
        for name, attribute in _DIMENSIONS:
            value = getattr(rec, attribute)
            if value and (name != "errors_by_code" or not rec.success):
                self.counts[name][value] += 1
        self.total_cost += rec.cost_estimate or 0.0
        self.input_tokens += rec.input_tokens or 0
        self.output_tokens += rec.output_tokens or 0
        self.total_queue_wait_ms += rec.queue_wait_ms or 0.0
        self.total_rate_limit_wait_ms += rec.rate_limit_wait_ms or 0.0
        if rec.total_time_ms is not None and rec.total_time_ms >= 0:
            self._observe_latency(rec.total_time_ms)

    def _observe_latency(self, latency_ms: float) -> None:
        self.total_latency_ms += latency_ms
        self.latency_histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        self.min_latency_ms = latency_ms if self.min_latency_ms is None else min(self.min_latency_ms, latency_ms)
        self.max_latency_ms = latency_ms if self.max_latency_ms is None else max(self.max_latency_ms, latency_ms)

    def merge(self, other: _DayTotals) -> None:
        for name in (
            "total",
            "successes",
            "failures",
            "retried",
            "hedged",
            "total_cost",
            "input_tokens",
            "output_tokens",
            "total_latency_ms",
            "total_queue_wait_ms",
            "total_rate_limit_wait_ms",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, counter in other.counts.items():
            self.counts[name].update(counter)
        self.latency_histogram = [a + b for a, b in zip(self.latency_histogram, other.latency_histogram, strict=True)]
        lows = [v for v in (self.min_latency_ms, other.min_latency_ms) if v is not None]
        highs = [v for v in (self.max_latency_ms, other.max_latency_ms) if v is not None]
        self.min_latency_ms, self.max_latency_ms = min(lows, default=None), max(highs, default=None)

    def report(self) -> dict[str, Any]:
        """Plain JSON-ready numbers, with averages, success rate and p50/p95/p99 computed."""
        timed = sum(self.latency_histogram)
        low, high = self.min_latency_ms or 0.0, self.max_latency_ms or 0.0
        return {
            "total": self.total,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": self.successes / self.total if self.total else None,
            "retried": self.retried,
            "retry_rate": self.retried / self.total if self.total else None,
            "hedged": self.hedged,
            "hedge_rate": self.hedged / self.total if self.total else None,
            **{name: dict(counter.most_common()) for name, counter in self.counts.items()},
            "total_cost": self.total_cost,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_latency_ms": self.total_latency_ms,
            "average_ms": self.total_latency_ms / timed if timed else None,
            "min_ms": self.min_latency_ms,
            "max_ms": self.max_latency_ms,
            **{f"p{q}_ms": estimate_percentile_ms(self.latency_histogram, q / 100, low, high) for q in (50, 95, 99)},
            "average_queue_wait_ms": self.total_queue_wait_ms / self.total if self.total else None,
            "average_rate_limit_wait_ms": self.total_rate_limit_wait_ms / self.total if self.total else None,
        }

    def to_json(self) -> dict[str, Any]:
        document = {name: getattr(self, name) for name in _SCALARS}
        document["counts"] = {name: dict(counter) for name, counter in self.counts.items()}
        document["latency_histogram"] = list(self.latency_histogram)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any], *, has_same_bounds: bool) -> _DayTotals:
        """Raises ValueError, TypeError, KeyError or AttributeError on a malformed document."""
        totals = cls()
        for name, kind in _SCALARS.items():
            value = document.get(name, 0) if name in _ADDED_SCALARS else document[name]
            setattr(totals, name, None if value is None and name in _OPTIONAL_SCALARS else kind(value))
        for name, counter in document["counts"].items():
            if name in totals.counts:
                totals.counts[name] = Counter({str(k): int(v) for k, v in counter.items()})
        histogram = [int(count) for count in document["latency_histogram"]]
        if has_same_bounds and len(histogram) != len(totals.latency_histogram):
            raise ValueError("latency_histogram has the wrong length")
        if has_same_bounds:
            totals.latency_histogram = histogram
        else:  # buckets of another layout: latency starts afresh
            totals.total_latency_ms, totals.min_latency_ms, totals.max_latency_ms = 0.0, None, None
        return totals


_SCALARS: dict[str, type] = {
    "total": int,
    "successes": int,
    "failures": int,
    "retried": int,
    "hedged": int,
    "total_cost": float,
    "input_tokens": int,
    "output_tokens": int,
    "total_latency_ms": float,
    "min_latency_ms": float,
    "max_latency_ms": float,
    "total_queue_wait_ms": float,
    "total_rate_limit_wait_ms": float,
}
_OPTIONAL_SCALARS = frozenset({"min_latency_ms", "max_latency_ms"})
_ADDED_SCALARS = frozenset({"retried", "hedged"})  # absent from files written before issue 13: read as 0


class DailyStats:
    """Statistics per UTC day ("YYYY-MM-DD", the day of each record's timestamp), saved as JSON.

    ``observe`` is O(1) and in memory; a background task saves at most once per ``debounce_seconds``
    (temp file + ``os.replace`` in a thread); ``stop`` saves whatever is left.
    """

    def __init__(self, path: Path, clock: Clock, *, debounce_seconds: float = 2.0) -> None:
        self._path = Path(path)
        self._clock = clock
        self._debounce_seconds = debounce_seconds
        self._days: dict[str, _DayTotals] = {}
        self._save_requested = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self._is_dirty = False
        self._generation = 0  # snapshots are numbered so a late, stale write never wins
        self._written_generation = 0
        self._file_lock = threading.Lock()

    # --- in memory -----------------------------------------------------------------------------------

    def observe(self, rec: TransactionRecord) -> None:
        stamp = parse_timestamp(rec.timestamp)
        day = utc_day(stamp if stamp is not None else self._clock.wall())
        totals = self._days.get(day)
        if totals is None:
            totals = self._days[day] = _DayTotals()
        totals.observe(rec)
        self.schedule_save()

    def day(self, date_str: str) -> dict[str, Any] | None:
        totals = self._days.get(date_str)
        return None if totals is None else {"date": date_str, **totals.report()}

    def days(self) -> list[str]:
        return sorted(self._days)

    def aggregate(self, start_date: str | None = None, end_date: str | None = None) -> dict[str, Any]:
        """All days from ``start_date`` to ``end_date`` (inclusive, "YYYY-MM-DD", None = open) merged."""
        merged = _DayTotals()
        included = [d for d in self.days() if (start_date or d) <= d <= (end_date or d)]
        for day in included:
            merged.merge(self._days[day])
        return {"start_date": start_date, "end_date": end_date, "day_count": len(included), **merged.report()}

    def summary(self) -> dict[str, Any]:
        """Today in full, and a brief all-time view."""
        today = utc_day(self._clock.wall())
        everything = self.aggregate()
        brief = ("total", "successes", "failures", "success_rate", "total_cost", "average_ms", "p95_ms")
        return {
            "today": self.day(today) or {"date": today, **_DayTotals().report()},
            "all_time": {"day_count": everything["day_count"], **{k: everything[k] for k in brief}},
        }

    # --- persistence ---------------------------------------------------------------------------------

    def schedule_save(self) -> None:
        self._is_dirty = True
        self._save_requested.set()

    async def load(self) -> None:
        """Merge the saved file into memory. A missing file is normal; a corrupt one is set aside with a
        warning and statistics start empty. Never raises."""
        try:
            loaded = await asyncio.to_thread(self._read_file)
        except _FILE_ERRORS as exc:
            log.warning("daily_stats_unreadable", extra={"file": str(self._path), "error": type(exc).__name__})
            await asyncio.to_thread(self._set_aside_corrupt_file)
            return
        for day, totals in loaded.items():
            self._days.setdefault(day, _DayTotals()).merge(totals)

    async def save(self) -> bool:
        """Write the file atomically; False (and a warning) if the disk refused."""
        self._is_dirty = False
        self._generation += 1
        document = {
            "version": _FILE_VERSION,
            "latency_bounds_ms": list(LATENCY_BOUNDS_MS),
            "days": {day: totals.to_json() for day, totals in self._days.items()},
        }
        try:
            await asyncio.to_thread(self._write_file, document, self._generation)
        except (OSError, TypeError, ValueError) as exc:
            self._is_dirty = True
            log.warning("daily_stats_save_failed", extra={"file": str(self._path), "error": type(exc).__name__})
            return False
        return True

    async def start(self) -> None:
        if self._saver is None:
            self._saver = asyncio.create_task(self._save_loop(), name="daily-stats-saver")

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            try:
                await self._saver
            except asyncio.CancelledError:
                pass
            self._saver = None
        if self._is_dirty:
            await self.save()

    async def _save_loop(self) -> None:
        while True:
            await self._save_requested.wait()
            await self._clock.sleep(self._debounce_seconds)
            self._save_requested.clear()
            await self.save()

    def _read_file(self) -> dict[str, _DayTotals]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        document = json.loads(text)
        if document.get("version") != _FILE_VERSION:
            raise ValueError("unknown daily stats version")
        has_same_bounds = [float(b) for b in document["latency_bounds_ms"]] == list(LATENCY_BOUNDS_MS)
        if not has_same_bounds:
            log.warning("daily_stats_histogram_layout_changed", extra={"file": str(self._path)})
        return {
            str(day): _DayTotals.from_json(totals, has_same_bounds=has_same_bounds)
            for day, totals in document["days"].items()
        }

    def _write_file(self, document: dict[str, Any], generation: int) -> None:
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        with self._file_lock:
            if generation <= self._written_generation:
                return
            write_text_atomic(self._path, text)
            self._written_generation = generation

    def _set_aside_corrupt_file(self) -> None:
        try:
            os.replace(self._path, self._path.with_name(self._path.name + ".corrupt"))
        except OSError:
            pass


# Mergeable totals with latency histogram; the dashboard's rolling buckets reuse them (bkvy.utils.live_stats).
DayTotals = _DayTotals
