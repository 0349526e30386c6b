"""Running, mergeable totals of one day, of a range of days, or of one of the dashboard's time buckets.

Each dimension (client id, scenario, provider...) counts names in a ``TopCounter``: at most
``max_keys`` names per dimension, the rest in ``other``, so no client can grow the statistics without bound
(issue 16). A scenario the config does not know (the request was a 404) is counted as ``unknown``: the
text a client sent never becomes a key.

Latency is kept as counts in fixed log-spaced buckets (``LATENCY_BOUNDS_MS``), not as samples: histograms
of different days, or of before and after a restart, add up bucket by bucket, so percentiles over any
range are estimated from all of its requests. An estimate lies in the bucket of the true value (bucket
edges are ~25% apart) and is interpolated inside it, then clamped to the observed min and max.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from bkvy.models.errors import UnknownScenario
from bkvy.utils.latency_histogram import LATENCY_BOUNDS_MS, estimate_percentile_ms
from bkvy.utils.records import TransactionRecord
from bkvy.utils.top_counter import UNKNOWN, TopCounter

DEFAULT_MAX_KEYS_PER_DIMENSION = 200
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
DIMENSION_NAMES: tuple[str, ...] = tuple(name for name, _ in _DIMENSIONS)
_UNKNOWN_NAME_ERRORS = {"scenario": UnknownScenario.code}  # the field's value is a name the config lacks


@dataclass(slots=True)
class DayTotals:
    """Running, mergeable totals of one day (or of a merged range of days, or of a time bucket).

    ``dimensions``: which of ``DIMENSION_NAMES`` to count (the dashboard's buckets skip client ids and
    scenarios); ``max_keys``: names kept per dimension, the rest counted in ``other``."""

    max_keys: int = DEFAULT_MAX_KEYS_PER_DIMENSION
    dimensions: tuple[str, ...] = DIMENSION_NAMES

    total: int = 0
    successes: int = 0
    failures: int = 0
    retried: int = 0  # requests with an upstream call beyond the first (not counting hedges)
    hedged: int = 0  # requests a hedge raced
    cache_hits: int = 0  # requests answered from the response cache (issue 20 §1)
    cache_saved_usd: float = 0.0  # what those requests' original calls cost
    counts: dict[str, TopCounter] = field(init=False)
    _observed: tuple[tuple[TopCounter, str, bool], ...] = field(init=False, repr=False)
    total_cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    total_latency_ms: float = 0.0
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    total_queue_wait_ms: float = 0.0
    total_rate_limit_wait_ms: float = 0.0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def __post_init__(self) -> None:
        self.counts = {name: TopCounter(self.max_keys) for name in self.dimensions}
        self._observed = tuple(
            (self.counts[name], attribute, name == "errors_by_code")
            for name, attribute in _DIMENSIONS
            if name in self.counts
        )

    def empty_like(self) -> DayTotals:
        """Empty totals with these dimensions and bound."""
        return DayTotals(self.max_keys, self.dimensions)

    def observe(self, rec: TransactionRecord) -> None:
        self.total += 1
        self.successes += 1 if rec.success else 0
        self.failures += 0 if rec.success else 1
        self.retried += 1 if rec.fallback_attempts > 0 else 0
        self.hedged += 1 if rec.hedged else 0
        if rec.cache_hit:
            self.cache_hits += 1
            self.cache_saved_usd += rec.cache_saved_usd or 0.0
        for counter, attribute, is_error in self._observed:
            value = getattr(rec, attribute)
            if value and (not is_error or not rec.success):
                if rec.error_type and rec.error_type == _UNKNOWN_NAME_ERRORS.get(attribute):
                    value = UNKNOWN
                counter.add(value)
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

    def merge(self, other: DayTotals) -> None:
        for name in (
            "total",
            "successes",
            "failures",
            "retried",
            "hedged",
            "cache_hits",
            "cache_saved_usd",
            "total_cost",
            "input_tokens",
            "output_tokens",
            "total_latency_ms",
            "total_queue_wait_ms",
            "total_rate_limit_wait_ms",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, counter in other.counts.items():
            if name in self.counts:
                self.counts[name].merge(counter)
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
            "cache_hits": self.cache_hits,
            "cache_hit_rate": self.cache_hits / self.total if self.total else None,
            "cache_saved_usd": self.cache_saved_usd,
            **{name: counter.top() for name, counter in self.counts.items()},
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
        document["counts"] = {name: counter.top() for name, counter in self.counts.items()}
        document["latency_histogram"] = list(self.latency_histogram)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any], *, has_same_bounds: bool, max_keys: int) -> DayTotals:
        """Raises ValueError, TypeError, KeyError or AttributeError on a malformed document."""
        totals = cls(max_keys)
        for name, kind in _SCALARS.items():
            value = document.get(name, 0) if name in _ADDED_SCALARS else document[name]
            setattr(totals, name, None if value is None and name in _OPTIONAL_SCALARS else kind(value))
        for name, counter in document["counts"].items():
            if name in totals.counts:
                totals.counts[name].merge(TopCounter.from_mapping(counter, max_keys))
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
    "cache_hits": int,
    "cache_saved_usd": float,
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
# absent from files written before issue 13 (retried, hedged) or issue 20 (cache_*): read as 0
_ADDED_SCALARS = frozenset({"retried", "hedged", "cache_hits", "cache_saved_usd"})
