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
from bkvy.models.record_errors import DashboardDisabled
from bkvy.utils.dashboard_data import RANGES, dashboard_data
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


async def dashboard_json(request: Request, range_name: RangeName = Query(default="24h", alias="range")) -> JSONResponse:
    live = _live(request)
    services = services_of(request)
    records = services.records
    assert records is not None  # _live refused the request otherwise
    circuits = getattr(services, "circuits", None)
    body = dashboard_data(
        range_name,
        services.clock.wall(),
        live=live,
        daily_stats=records.daily_stats,
        circuits=circuit_samples(circuits) if circuits is not None else None,
    )
    return JSONResponse(body, headers=SECURITY_HEADERS)
