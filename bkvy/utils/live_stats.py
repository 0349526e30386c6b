"""The dashboard's rolling aggregate: bounded time buckets fed one record at a time (SPEC §7).

A refresh never reads the transaction log: each record is added in O(1) to a minute bucket (the last 24 h),
an hour bucket (the last 30 days) and a day bucket (the last 366 days); a range view merges at most a few
thousand buckets. The last ``recent_limit`` records are kept for "latest transactions".

A bucket counts only what the dashboard shows (providers, models, key ids, error codes, routing methods:
names from the config and the code), each bounded to ``max_keys_per_dimension`` names plus ``other``; client
ids and scenarios, which a client chooses, are left to the daily statistics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from bkvy.utils.day_totals import DEFAULT_MAX_KEYS_PER_DIMENSION, DayTotals
from bkvy.utils.latency_histogram import LATENCY_BOUNDS_MS, estimate_percentile_ms
from bkvy.utils.records import TransactionRecord, parse_timestamp

MINUTE_SECONDS = 60.0
HOUR_SECONDS = 3600.0
DAY_SECONDS = 86_400.0
DASHBOARD_DIMENSIONS = ("by_routing_method", "by_provider", "by_model", "by_key_id", "errors_by_code")


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start_wall: float  # unix seconds of the point's first bucket
    requests: int
    failures: int
    cost_usd: float
    p95_ms: float | None


class _Buckets:
    """``capacity`` consecutive buckets of ``width_seconds``; older ones are dropped as new ones open."""

    def __init__(self, width_seconds: float, capacity: int, empty: DayTotals, letter: str) -> None:
        self.width_seconds = width_seconds
        self.letter = letter  # "m", "h", "d": a bucket's field name in Redis is f"{letter}:{index}"
        self._capacity = capacity
        self._empty = empty
        self._buckets: dict[int, DayTotals] = {}
        self._newest_index: int | None = None
        self.changed: set[int] | None = None  # with ``LiveStats.track_changes``: indexes changed since taken
        self.evicted: set[int] = set()

    def observe(self, stamp_wall: float, rec: TransactionRecord) -> None:
        index = int(stamp_wall // self.width_seconds)
        bucket = self._buckets.get(index)
        if bucket is None:
            if self._newest_index is not None and index <= self._newest_index - self._capacity:
                return  # older than anything we keep
            bucket = self._buckets[index] = self._empty.empty_like()
            if self._newest_index is None or index > self._newest_index:
                self._newest_index = index
                self._evict()
        bucket.observe(rec)
        if self.changed is not None:
            self.changed.add(index)

    def between(self, start_wall: float, end_wall: float) -> list[tuple[int, DayTotals]]:
        first, last = int(start_wall // self.width_seconds), int(end_wall // self.width_seconds)
        return sorted((i, b) for i, b in self._buckets.items() if first <= i <= last)

    def _evict(self) -> None:
        assert self._newest_index is not None
        oldest_kept = self._newest_index - self._capacity + 1
        for index in [i for i in self._buckets if i < oldest_kept]:
            del self._buckets[index]
            if self.changed is not None:
                self.changed.discard(index)
                self.evicted.add(index)

    def take_changes(self) -> tuple[dict[int, DayTotals], set[int]]:
        """Buckets changed and indexes evicted since the last call (change tracking on)."""
        changed, self.changed = self.changed or set(), set()
        evicted, self.evicted = self.evicted, set()
        return {i: self._buckets[i] for i in changed if i in self._buckets}, evicted

    def index_range(self, start_wall: float, end_wall: float) -> range:
        return range(int(start_wall // self.width_seconds), int(end_wall // self.width_seconds) + 1)


class LiveStats:
    def __init__(
        self, *, recent_limit: int = 100, max_keys_per_dimension: int = DEFAULT_MAX_KEYS_PER_DIMENSION
    ) -> None:
        self._empty = DayTotals(max_keys_per_dimension, DASHBOARD_DIMENSIONS)
        self._minutes = _Buckets(MINUTE_SECONDS, 24 * 60, self._empty, "m")
        self._hours = _Buckets(HOUR_SECONDS, 30 * 24, self._empty, "h")
        self._days = _Buckets(DAY_SECONDS, 366, self._empty, "d")
        self._recent: deque[TransactionRecord] = deque(maxlen=recent_limit)

    @property
    def max_keys(self) -> int:
        return self._empty.max_keys

    def track_changes(self) -> None:
        """From now on remember which buckets change, for ``take_changes`` (statistics shared by replicas)."""
        for buckets in (self._minutes, self._hours, self._days):
            buckets.changed = set()

    def take_changes(self) -> tuple[dict[str, DayTotals], list[str]]:
        """Buckets changed since the last call by field name (``"m:<index>"``...), and the names evicted."""
        changed: dict[str, DayTotals] = {}
        evicted: list[str] = []
        for buckets in (self._minutes, self._hours, self._days):
            fresh, gone = buckets.take_changes()
            changed.update((f"{buckets.letter}:{index}", bucket) for index, bucket in fresh.items())
            evicted.extend(f"{buckets.letter}:{index}" for index in gone)
        return changed, evicted

    def fields_for(self, range_seconds: float, now_wall: float, point_seconds: float) -> list[str]:
        """The field names of the buckets ``view`` reads for this range."""
        buckets = self._resolution_for(range_seconds, point_seconds)
        return [f"{buckets.letter}:{i}" for i in buckets.index_range(now_wall - range_seconds, now_wall)]

    def observe(self, rec: TransactionRecord) -> None:
        """Add one record: O(1)."""
        stamp = parse_timestamp(rec.timestamp)
        if stamp is not None:
            for buckets in (self._minutes, self._hours, self._days):
                buckets.observe(stamp, rec)
        self._recent.append(rec)

    def remember(self, rec: TransactionRecord) -> None:
        """Keep ``rec`` among the latest transactions without counting it."""
        self._recent.append(rec)

    def recent(self, limit: int) -> list[TransactionRecord]:
        """The latest records, newest first."""
        return list(reversed(self._recent))[:limit]

    def view(
        self,
        range_seconds: float,
        now_wall: float,
        point_seconds: float,
        *,
        others: Sequence[tuple[str, DayTotals]] = (),
    ) -> tuple[dict, list[SeriesPoint]]:
        """Totals (``DayTotals.report()`` shape) and a time series over the last ``range_seconds``; ``others``:
        other replicas' buckets by field name (``fields_for``), added in."""
        buckets = self._resolution_for(range_seconds, point_seconds)
        start_wall = now_wall - range_seconds
        window = buckets.between(start_wall, now_wall)
        if others:
            window = sorted(window + [(int(name[2:]), bucket) for name, bucket in others], key=_index_of)
        merged = self._empty.empty_like()
        for _, bucket in window:
            merged.merge(bucket)
        return merged.report(), _series(window, buckets.width_seconds, start_wall, now_wall, point_seconds)

    def _resolution_for(self, range_seconds: float, point_seconds: float) -> _Buckets:
        if range_seconds <= DAY_SECONDS and point_seconds >= MINUTE_SECONDS:
            return self._minutes
        if range_seconds <= 30 * DAY_SECONDS and point_seconds >= HOUR_SECONDS:
            return self._hours
        return self._days


def _index_of(pair: tuple[int, DayTotals]) -> int:
    return pair[0]


def _series(
    window: list[tuple[int, DayTotals]], width_seconds: float, start_wall: float, now_wall: float, point_seconds: float
) -> list[SeriesPoint]:
    point_seconds = max(point_seconds, width_seconds)
    first_point = int(start_wall // point_seconds)
    last_point = int(now_wall // point_seconds)
    grouped: dict[int, list[DayTotals]] = {p: [] for p in range(first_point, last_point + 1)}
    for index, bucket in window:
        point = int(index * width_seconds // point_seconds)
        if point in grouped:
            grouped[point].append(bucket)
    return [_point(p * point_seconds, buckets) for p, buckets in sorted(grouped.items())]


def _point(start_wall: float, buckets: list[DayTotals]) -> SeriesPoint:
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    lows = [b.min_latency_ms for b in buckets if b.min_latency_ms is not None]
    highs = [b.max_latency_ms for b in buckets if b.max_latency_ms is not None]
    for bucket in buckets:
        histogram = [a + b for a, b in zip(histogram, bucket.latency_histogram, strict=True)]
    p95 = estimate_percentile_ms(histogram, 0.95, min(lows, default=0.0), max(highs, default=0.0))
    return SeriesPoint(
        start_wall,
        sum(b.total for b in buckets),
        sum(b.failures for b in buckets),
        sum(b.total_cost for b in buckets),
        p95,
    )
