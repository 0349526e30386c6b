"""``bkvy_tenant_budget_used_ratio{tenant}`` (issue 19 §3): each budgeted tenant's spend this month over its
monthly budget, read at scrape time. Tenants are few and named by the operator: a bounded label."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["TenantBudgetCollector"]


class TenantBudgetCollector(Collector):
    def __init__(self, used_ratios: Callable[[], Mapping[str, float]]) -> None:
        self._used_ratios = used_ratios

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "bkvy_tenant_budget_used_ratio", "A tenant's spend this month over its monthly budget", labels=["tenant"]
        )
        for tenant_id, ratio in sorted(self._used_ratios().items()):
            gauge.add_metric([tenant_id], ratio)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())
