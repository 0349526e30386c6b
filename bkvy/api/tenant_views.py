"""Statistics and dashboard filtered by tenant (issue 19 §3): ``/statistics/summary?tenant=ID`` and
``/dashboard/data?tenant=ID`` answer from the tenant's own statistics (``utils.tenant_records``), and the
dashboard lists every tenant's budget use. With REDIS_URL a tenant's figures are this process's only."""

from __future__ import annotations

from typing import Any

from bkvy.api.observability import circuit_samples
from bkvy.models.errors import UnknownTenant
from bkvy.models.record_errors import StatisticsDisabled
from bkvy.utils.dashboard_data import dashboard_data
from bkvy.utils.live_stats import LiveStats
from bkvy.utils.tenant_records import TenantRecords

__all__ = ["tenant_budget_rows", "tenant_dashboard", "tenant_summary"]


def _records_of(services: Any, tenant_id: str) -> TenantRecords | None:
    records = services.records
    tenant_records: TenantRecords | None = None if records is None else records.tenant_records
    has_tenant = services.tenants is not None and services.tenants.get(tenant_id) is not None
    if not has_tenant and (tenant_records is None or tenant_records.daily(tenant_id) is None):
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return tenant_records


def tenant_summary(services: Any, tenant_id: str) -> dict[str, Any]:
    """``/statistics/summary`` of one tenant's requests. Raises StatisticsDisabled (404), UnknownTenant (404)."""
    tenant_records = _records_of(services, tenant_id)
    daily = None if tenant_records is None else tenant_records.daily(tenant_id) or tenant_records.empty_daily()
    if daily is None:
        raise StatisticsDisabled("daily statistics are off; set SUMMARY_STATS=true to collect them")
    return {"tenant": tenant_id, **daily.summary()}


def tenant_dashboard(services: Any, range_name: str, tenant_id: str) -> dict[str, Any]:
    """``/dashboard/data`` of one tenant's requests. Raises UnknownTenant (404)."""
    tenant_records = _records_of(services, tenant_id)
    live: LiveStats | None = None if tenant_records is None else tenant_records.live(tenant_id)
    if live is None:
        live = LiveStats(max_keys_per_dimension=services.settings.stats_max_keys_per_dimension)
    body = dashboard_data(
        range_name,
        services.clock.wall(),
        live=live,
        daily_stats=None if tenant_records is None else tenant_records.daily(tenant_id),
        circuits=circuit_samples(getattr(services, "circuits", None)),
    )
    return body | {"tenant": tenant_id, "tenants": tenant_budget_rows(services)}


def tenant_budget_rows(services: Any) -> list[dict[str, Any]]:
    """Every tenant with its budget use this month, for the dashboard's tenant panel and filter."""
    store = services.tenants
    if store is None:
        return []
    rows = []
    for tenant in store.tenants():
        described = store.described(tenant)
        rows.append(
            {
                "id": tenant.tenant_id,
                "name": tenant.config.name,
                "disabled": tenant.config.disabled,
                "monthly_budget_usd": tenant.config.monthly_budget_usd,
                "spend_usd_this_month": described["spend_usd_this_month"],
                "budget_used_ratio": described["budget_used_ratio"],
            }
        )
    return rows
