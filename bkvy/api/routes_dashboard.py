"""``GET /dashboard`` (a Jinja page, autoescaped) and ``GET /dashboard/data`` (its JSON), SPEC §7.

The page runs only same-origin scripts (CSP ``script-src 'self'``); the script writes every value with
``textContent``. Chart.js is vendored under ``static/vendor`` so the page works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2
from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from bkvy.api.deps import services_of
from bkvy.api.observability import circuit_samples
from bkvy.api.shadow_state import shadow_dashboard_rows
from bkvy.api.tenant_views import tenant_budget_rows, tenant_dashboard
from bkvy.core.config.tenants import TENANT_ID_PATTERN
from bkvy.models.record_errors import DashboardDisabled
from bkvy.utils.dashboard_data import RANGES, dashboard_data, uses_daily_stats
from bkvy.utils.live_stats import LiveStats

_TEMPLATE_DIR = Path(__file__).parent / "templates"
REFRESH_SECONDS = (15, 30, 60, 300)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
RangeName = Literal["1h", "6h", "24h", "7d", "30d", "90d", "365d"]


def _environment(request: Request) -> jinja2.Environment:
    environment = getattr(request.app.state, "dashboard_templates", None)
    if environment is None:
        environment = request.app.state.dashboard_templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATE_DIR), autoescape=True
        )
    return environment


def _live(request: Request) -> LiveStats:
    services = services_of(request)
    records = services.records
    if not services.settings.dashboard_enabled or records is None or records.live is None:
        raise DashboardDisabled("the dashboard is off; set DASHBOARD_ENABLED=true to turn it on")
    return records.live


async def dashboard(request: Request) -> HTMLResponse:
    _live(request)
    page = (
        _environment(request)
        .get_template("dashboard.html")
        .render(
            ranges=list(RANGES),
            default_range="24h",
            refresh_seconds=REFRESH_SECONDS,
            default_refresh=30,
            static_url="/dashboard/static",
            data_url="/dashboard/data",
        )
    )
    return HTMLResponse(page, headers=SECURITY_HEADERS)


async def dashboard_json(
    request: Request,
    range_name: RangeName = Query(default="24h", alias="range"),
    tenant: str | None = Query(default=None, max_length=64, pattern=TENANT_ID_PATTERN),
) -> JSONResponse:
    live = _live(request)
    services = services_of(request)
    if tenant is not None:  # one tenant's requests (issue 19 §3)
        return JSONResponse(tenant_dashboard(services, range_name, tenant), headers=SECURITY_HEADERS)
    records = services.records
    assert records is not None  # _live refused the request otherwise
    circuits = getattr(services, "circuits", None)
    now_wall = services.clock.wall()
    daily_stats, live_others, fleet = records.daily_stats, [], None
    fleet_stats = getattr(services, "fleet_stats", None)
    if fleet_stats is not None:  # REDIS_URL: every process's figures (docs/SCALING.md)
        if uses_daily_stats(range_name, daily_stats):
            daily_stats, fleet = await fleet_stats.daily_view()
        else:
            range_seconds, point_seconds = RANGES[range_name]
            live_others, fleet = await fleet_stats.live_others(range_seconds, now_wall, point_seconds)
    body = dashboard_data(
        range_name,
        now_wall,
        live=live,
        daily_stats=daily_stats,
        circuits=circuit_samples(circuits) if circuits is not None else None,
        live_others=live_others,
    )
    if fleet is not None:
        body |= fleet.fields()
    if services.tenants is not None and services.tenants.tenants():
        body["tenants"] = tenant_budget_rows(services)
    body["shadow"] = shadow_dashboard_rows(services.shadow)  # issue 20 §2: primary vs each shadow model
    return JSONResponse(body, headers=SECURITY_HEADERS)
