"""Statistics endpoints and ``/metrics`` (SPEC §4, §7)."""

from __future__ import annotations

import re
from datetime import date

from fastapi import Query, Request, Response

from bkvy.api.deps import services_of
from bkvy.api.tenant_views import tenant_summary
from bkvy.core.config.tenants import TENANT_ID_PATTERN
from bkvy.models.errors import ValidationFailed
from bkvy.models.record_errors import NoData, StatisticsDisabled
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.metrics import CONTENT_TYPE

_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _daily_stats(request: Request) -> DailyStats:
    records = services_of(request).records
    stats = records.daily_stats if records is not None else None
    if stats is None:
        raise StatisticsDisabled("daily statistics are off; set SUMMARY_STATS=true to collect them")
    return stats


async def _fleet_daily_stats(request: Request) -> tuple[DailyStats, dict[str, object]]:
    """The daily statistics to answer from: with REDIS_URL every process's merged, and the response's
    ``replicas`` and ``partial`` fields (docs/SCALING.md); else this process's, with no extra field."""
    stats = _daily_stats(request)
    fleet_stats = services_of(request).fleet_stats
    if fleet_stats is None:
        return stats, {}
    merged, fleet = await fleet_stats.daily_view()
    return merged, fleet.fields()


def _day(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        if not _DAY_PATTERN.match(value):
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValidationFailed(f"{name}: {value[:20]!r} is not a date; use YYYY-MM-DD") from None


async def statistics_status(request: Request) -> dict:
    services = services_of(request)
    records = services.records
    stats = records.daily_stats if records is not None else None
    log = records.transaction_log if records is not None else None
    return {
        "summary_stats": stats is not None,
        "transaction_logging": log is not None,
        "dashboard_enabled": services.settings.dashboard_enabled,
        "days_recorded": len(stats.days()) if stats is not None else 0,
        "transaction_log": None
        if log is None
        else {
            "file": log.current_path.name,
            "written": log.written_count,
            "queued": log.queued_count,
            "dropped": log.dropped_count,
        },
        "message": None if stats is not None else "daily statistics are off; set SUMMARY_STATS=true",
    }


async def statistics_summary(
    request: Request, tenant: str | None = Query(default=None, max_length=64, pattern=TENANT_ID_PATTERN)
) -> dict:
    """``?tenant=ID``: that tenant's requests only (issue 19 §3; 404 unknown_tenant)."""
    if tenant is not None:
        return tenant_summary(services_of(request), tenant)
    stats, fleet = await _fleet_daily_stats(request)
    return stats.summary() | fleet


async def statistics_aggregate(
    request: Request,
    start: str | None = Query(default=None, max_length=32),
    end: str | None = Query(default=None, max_length=32),
) -> dict:
    _daily_stats(request)  # off: 404 before the dates are looked at, as before
    start_day, end_day = _day(start, "start"), _day(end, "end")
    if start_day and end_day and start_day > end_day:
        raise ValidationFailed("start: comes after end")
    stats, fleet = await _fleet_daily_stats(request)
    return stats.aggregate(start_day, end_day) | fleet


async def statistics_days(request: Request) -> dict:
    stats, fleet = await _fleet_daily_stats(request)
    return {"days": stats.days()} | fleet


async def statistics_day(request: Request, day: str) -> dict:
    checked = _day(day, "day")
    stats, fleet = await _fleet_daily_stats(request)
    report = stats.day(checked or "")
    if report is None:
        raise NoData(f"no statistics recorded for {checked}")
    return report | fleet


async def metrics(request: Request) -> Response:
    records = services_of(request).records
    body = records.metrics.render() if records is not None else b""
    return Response(body, media_type=CONTENT_TYPE)
