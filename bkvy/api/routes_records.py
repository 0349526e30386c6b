"""Statistics endpoints and ``/metrics`` (SPEC §4, §7), and the wiring of every records route."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.staticfiles import StaticFiles

from bkvy.api import routes_dashboard
from bkvy.api.allowlist import IpAllowlistMiddleware, parse_networks
from bkvy.api.deps import services_of
from bkvy.api.http_metrics import HttpMetricsMiddleware
from bkvy.core.config.settings import Settings
from bkvy.models.errors import ValidationFailed
from bkvy.models.record_errors import NoData, StatisticsDisabled
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.metrics import CONTENT_TYPE

router = APIRouter()
_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GUARDED_PREFIXES = ("/dashboard", "/statistics")
STATIC_DIR = Path(__file__).parent / "static"


def install_records_routes(app: FastAPI, settings: Settings) -> None:
    """Statistics, dashboard and metrics routes; the allowlist in front of the operator's views."""
    app.include_router(router)
    app.include_router(routes_dashboard.router)
    if settings.dashboard_enabled:
        app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard_static")
    app.add_middleware(IpAllowlistMiddleware,
                       allowed=parse_networks(settings.dashboard_allowed_ips, "DASHBOARD_ALLOWED_IPS"),
                       trusted_proxies=parse_networks(settings.trusted_proxies, "TRUSTED_PROXIES"),
                       guarded_prefixes=GUARDED_PREFIXES)
    app.add_middleware(HttpMetricsMiddleware)


def _daily_stats(request: Request) -> DailyStats:
    records = services_of(request).records
    stats = records.daily_stats if records is not None else None
    if stats is None:
        raise StatisticsDisabled("daily statistics are off; set SUMMARY_STATS=true to collect them")
    return stats


def _day(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        if not _DAY_PATTERN.match(value):
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValidationFailed(f"{name}: {value[:20]!r} is not a date; use YYYY-MM-DD") from None


@router.get("/statistics/status")
async def statistics_status(request: Request) -> dict:
    services = services_of(request)
    records = services.records
    stats = records.daily_stats if records is not None else None
    log = records.transaction_log if records is not None else None
    return {
        "summary_stats": stats is not None, "transaction_logging": log is not None,
        "dashboard_enabled": services.settings.dashboard_enabled,
        "days_recorded": len(stats.days()) if stats is not None else 0,
        "transaction_log": None if log is None else {"file": log.current_path.name, "written": log.written_count,
                                                     "queued": log.queued_count, "dropped": log.dropped_count},
        "message": None if stats is not None else "daily statistics are off; set SUMMARY_STATS=true",
    }


@router.get("/statistics/summary")
async def statistics_summary(request: Request) -> dict:
    return _daily_stats(request).summary()


@router.get("/statistics/aggregate")
async def statistics_aggregate(request: Request, start: str | None = Query(default=None, max_length=32),
                               end: str | None = Query(default=None, max_length=32)) -> dict:
    stats = _daily_stats(request)
    start_day, end_day = _day(start, "start"), _day(end, "end")
    if start_day and end_day and start_day > end_day:
        raise ValidationFailed("start: comes after end")
    return stats.aggregate(start_day, end_day)


@router.get("/statistics/daily")
async def statistics_days(request: Request) -> dict:
    return {"days": _daily_stats(request).days()}


@router.get("/statistics/daily/{day}")
async def statistics_day(request: Request, day: str) -> dict:
    checked = _day(day, "day")
    stats = _daily_stats(request)
    report = stats.day(checked or "")
    if report is None:
        raise NoData(f"no statistics recorded for {checked}")
    return report


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    records = services_of(request).records
    body = records.metrics.render() if records is not None else b""
    return Response(body, media_type=CONTENT_TYPE)
