"""Errors of the records endpoints (statistics, dashboard): part of the one ``BkvyError`` tree."""

from __future__ import annotations

from bkvy.models.errors import BkvyError


class StatisticsDisabled(BkvyError):
    code = "statistics_disabled"
    status = 404


class NoData(BkvyError):
    code = "no_data"
    status = 404


class DashboardDisabled(BkvyError):
    code = "dashboard_disabled"
    status = 404
