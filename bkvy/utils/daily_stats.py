"""Per-UTC-day request statistics (SPEC §7), kept in memory and saved to one JSON file.

A day's totals are a ``DayTotals`` (latency histogram, counts per dimension bounded to the top names plus
``other``). The file holds every day; a save serialises only the days that changed since the last one (a
day's text is kept between saves), in a thread, and writes the file atomically: its size is bounded by
days x dimensions x (``max_keys_per_dimension`` + 1) names of at most 128 characters.

Only ids and numbers are kept: client ids, key ids, provider and model names, error codes. Never message
content, never key values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from bkvy.clock import Clock
from bkvy.utils.atomic_files import write_text_atomic
from bkvy.utils.day_totals import DEFAULT_MAX_KEYS_PER_DIMENSION, DayTotals
from bkvy.utils.latency_histogram import LATENCY_BOUNDS_MS
from bkvy.utils.records import TransactionRecord, parse_timestamp, utc_day

__all__ = ["LATENCY_BOUNDS_MS", "DailyStats", "DayTotals"]

log = logging.getLogger(__name__)

_FILE_VERSION = 1
_FILE_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)  # ValueError covers bad JSON
_FILE_TAIL = f',"latency_bounds_ms":{json.dumps(list(LATENCY_BOUNDS_MS))},"version":{_FILE_VERSION}}}'


class DailyStats:
    """Statistics per UTC day ("YYYY-MM-DD", the day of each record's timestamp), saved as JSON.

    ``observe`` is O(1) and in memory; a background task saves at most once per ``debounce_seconds``
    (temp file + ``os.replace`` in a thread); ``stop`` saves whatever is left.
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        *,
        debounce_seconds: float = 2.0,
        max_keys_per_dimension: int = DEFAULT_MAX_KEYS_PER_DIMENSION,
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._debounce_seconds = debounce_seconds
        self._max_keys = max_keys_per_dimension
        self._days: dict[str, DayTotals] = {}
        self._day_versions: dict[str, int] = {}  # bumped by each change to a day
        self._day_texts: dict[str, tuple[int, str]] = {}  # each day's JSON as last saved, with its version
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
            totals = self._days[day] = DayTotals(self._max_keys)
        totals.observe(rec)
        self._day_versions[day] = self._day_versions.get(day, 0) + 1
        self.schedule_save()

    def day(self, date_str: str) -> dict[str, Any] | None:
        totals = self._days.get(date_str)
        return None if totals is None else {"date": date_str, **totals.report()}

    def days(self) -> list[str]:
        return sorted(self._days)

    @property
    def max_keys(self) -> int:
        return self._max_keys

    def changed_days(self, known_versions: dict[str, int]) -> dict[str, tuple[int, DayTotals]]:
        """Each day whose version is not the one in ``known_versions`` (day -> version), with its version."""
        return {
            day: (version, self._days[day])
            for day, version in self._day_versions.items()
            if known_versions.get(day) != version
        }

    def with_others(self, others: dict[str, list[DayTotals]]) -> DailyStats:
        """A read-only view: these days plus other replicas' totals (day -> totals), merged. Never saved."""
        view = DailyStats(self._path, self._clock, max_keys_per_dimension=self._max_keys)
        view._days = dict(self._days)  # shared, not copied: a view only reads, and merges into fresh totals
        for day, totals_list in others.items():
            merged = DayTotals(self._max_keys)
            if day in self._days:
                merged.merge(self._days[day])
            for totals in totals_list:
                merged.merge(totals)
            view._days[day] = merged
        return view

    def aggregate(self, start_date: str | None = None, end_date: str | None = None) -> dict[str, Any]:
        """All days from ``start_date`` to ``end_date`` (inclusive, "YYYY-MM-DD", None = open) merged."""
        merged = DayTotals(self._max_keys)
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
            "today": self.day(today) or {"date": today, **DayTotals(self._max_keys).report()},
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
            self._days.setdefault(day, DayTotals(self._max_keys)).merge(totals)
            self._day_versions[day] = self._day_versions.get(day, 0) + 1

    async def save(self) -> bool:
        """Write the file atomically; False (and a warning) if the disk refused. Only the days changed since
        the last save are copied here and serialised in the thread; the others reuse their saved text."""
        self._is_dirty = False
        self._generation += 1
        changed = {
            day: (version, self._days[day].to_json())
            for day, version in self._day_versions.items()
            if self._day_texts.get(day, (None,))[0] != version
        }
        kept = {day: text for day, (_, text) in self._day_texts.items() if day not in changed}
        try:
            texts = await asyncio.to_thread(self._write_file, changed, kept, self._generation)
        except (OSError, TypeError, ValueError) as exc:
            self._is_dirty = True
            log.warning("daily_stats_save_failed", extra={"file": str(self._path), "error": type(exc).__name__})
            return False
        for day, (version, text) in texts.items():
            if self._day_texts.get(day, (-1,))[0] < version:
                self._day_texts[day] = (version, text)
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

    def _read_file(self) -> dict[str, DayTotals]:
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
            str(day): DayTotals.from_json(totals, has_same_bounds=has_same_bounds, max_keys=self._max_keys)
            for day, totals in document["days"].items()
        }

    def _write_file(
        self, changed: dict[str, tuple[int, dict[str, Any]]], kept: dict[str, str], generation: int
    ) -> dict[str, tuple[int, str]]:
        """The file from each day's text (``kept``, or ``changed`` serialised here); the new texts."""
        texts = {
            day: (version, json.dumps(document, separators=(",", ":"), sort_keys=True))
            for day, (version, document) in changed.items()
        }
        every_day = kept | {day: text for day, (_, text) in texts.items()}
        days = ",".join(f"{json.dumps(day)}:{every_day[day]}" for day in sorted(every_day))
        with self._file_lock:
            if generation > self._written_generation:
                write_text_atomic(self._path, f'{{"days":{{{days}}}{_FILE_TAIL}')
                self._written_generation = generation
        return texts

    def _set_aside_corrupt_file(self) -> None:
        try:
            os.replace(self._path, self._path.with_name(self._path.name + ".corrupt"))
        except OSError:
            pass
