"""What ``/dashboard/data`` returns: totals, a time series, shares, errors and the latest transactions.

Ranges up to 24 h come from the rolling in-memory aggregate (``LiveStats``); longer ranges from the daily
statistics when they are on (they persist across restarts), else from the aggregate's hour/day buckets.
Nothing here reads the transaction log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.day_totals import DayTotals
from bkvy.utils.live_stats import DAY_SECONDS, LiveStats, SeriesPoint
from bkvy.utils.metrics import CircuitSample
from bkvy.utils.records import TransactionRecord, utc_day, utc_timestamp

# range name -> (range seconds, seconds per series point)
RANGES: dict[str, tuple[float, float]] = {
    "1h": (3600.0, 60.0),
    "6h": (6 * 3600.0, 300.0),
    "24h": (DAY_SECONDS, 900.0),
    "7d": (7 * DAY_SECONDS, 3600.0),
    "30d": (30 * DAY_SECONDS, 6 * 3600.0),
    "90d": (90 * DAY_SECONDS, DAY_SECONDS),
    "365d": (365 * DAY_SECONDS, DAY_SECONDS),
}
RECENT_COLUMNS = (
    "timestamp",
    "request_id",
    "client_id",
    "routing_method",
    "provider_used",
    "model_used",
    "api_key_used",
    "success",
    "hedged",
    "total_time_ms",
    "cost_estimate",
    "error_type",
    "error_message",
)
_RECENT_LIMIT = 25


def uses_daily_stats(range_name: str, daily_stats: DailyStats | None) -> bool:
    """Whether this range comes from the daily statistics (else from the live aggregate)."""
    return RANGES[range_name][0] > DAY_SECONDS and daily_stats is not None


def dashboard_data(
    range_name: str,
    now_wall: float,
    *,
    live: LiveStats,
    daily_stats: DailyStats | None,
    circuits: list[CircuitSample] | None,
    live_others: Sequence[tuple[str, DayTotals]] = (),
) -> dict[str, Any]:
    """``live_others``: other processes' live buckets for this range (``LiveStats.fields_for``), merged in."""
    range_seconds, point_seconds = RANGES[range_name]
    if uses_daily_stats(range_name, daily_stats):
        assert daily_stats is not None
        source = "daily_stats"
        report, series = _from_daily(daily_stats, now_wall, range_seconds)
    else:
        source = "live"
        report, series = live.view(range_seconds, now_wall, point_seconds, others=live_others)
    return {
        "range": range_name,
        "source": source,
        "generated_at": utc_timestamp(now_wall),
        "summary": {
            name: report.get(name)
            for name in (
                "total",
                "successes",
                "failures",
                "success_rate",
                "retry_rate",  # requests with an upstream call beyond the first (a fallback or a switch)
                "hedge_rate",  # requests a hedge raced
                "cache_hits",  # answered from the response cache (issue 20 §1)
                "cache_hit_rate",
                "cache_saved_usd",  # what the hits' original calls cost
                "total_cost",
                "input_tokens",
                "output_tokens",
                "average_ms",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "average_queue_wait_ms",
                "average_rate_limit_wait_ms",
            )
        },
        "series": [
            {
                "start": utc_timestamp(p.start_wall),
                "requests": p.requests,
                "failures": p.failures,
                "cost_usd": p.cost_usd,
                "p95_ms": p.p95_ms,
            }
            for p in series
        ],
        "providers": report.get("by_provider", {}),
        "models": report.get("by_model", {}),
        "keys": report.get("by_key_id", {}),
        "errors": report.get("errors_by_code", {}),
        "routing_methods": report.get("by_routing_method", {}),
        "circuits": None if circuits is None else [asdict(c) for c in circuits],
        "recent": [_recent_row(rec) for rec in live.recent(_RECENT_LIMIT)],
    }


def _from_daily(daily_stats: DailyStats, now_wall: float, range_seconds: float) -> tuple[dict, list[SeriesPoint]]:
    first_day = date.fromisoformat(utc_day(now_wall - range_seconds + DAY_SECONDS))
    last_day = date.fromisoformat(utc_day(now_wall))
    report = daily_stats.aggregate(first_day.isoformat(), last_day.isoformat())
    series = []
    day = first_day
    while day <= last_day:
        totals = daily_stats.day(day.isoformat()) or {}
        start_wall = (day - date(1970, 1, 1)).days * DAY_SECONDS
        series.append(
            SeriesPoint(
                start_wall,
                totals.get("total", 0),
                totals.get("failures", 0),
                totals.get("total_cost", 0.0),
                totals.get("p95_ms"),
            )
        )
        day += timedelta(days=1)
    return report, series


def _recent_row(rec: TransactionRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in RECENT_COLUMNS}
