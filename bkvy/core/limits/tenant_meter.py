"""A tenant's limits across all its client keys (issue 19 §3): rpm and tpm over the last minute, and the monthly
budget with its alert threshold. Hot path only: no I/O; the clock is injected.

tpm counts the tokens of the requests that ended in the last minute (their usage as the upstream reported it):
a tenant is refused once that minute's tokens reach its tpm, until enough of them leave the window. Spend is the
sum of its keys' costs (``record``); the alert is logged once per tenant and month in each process.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from bkvy.clock import Clock
from bkvy.core.config.tenants import TenantConfig
from bkvy.core.limits.client_keys import month_of
from bkvy.models.errors import BudgetExceeded, TenantDisabled, TenantRateLimited

__all__ = ["TenantMeter", "over_budget"]

log = logging.getLogger(__name__)

_MINUTE_SECONDS = 60.0


@dataclass(slots=True)
class _TenantUse:
    starts: deque[float] = field(default_factory=deque)  # monotonic admit times in the last minute
    tokens: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic end, tokens) in the last minute
    tokens_in_window: int = 0
    spend_by_month: dict[str, float] = field(default_factory=dict)
    alerted_months: set[str] = field(default_factory=set)


class TenantMeter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._use: dict[str, _TenantUse] = {}

    def admit(self, tenant_id: str, tenant: TenantConfig, *, is_shared: bool = False) -> None:
        """Count one request of the tenant. ``is_shared``: rpm and budget are admitted across the fleet (Redis,
        ``core.shared.tenants``), only the rest here. Raises TenantDisabled (403), TenantRateLimited (429, with
        Retry-After) or BudgetExceeded (402)."""
        if tenant.disabled:
            raise TenantDisabled(f"tenant {tenant_id!r} is disabled")
        use = self._use.setdefault(tenant_id, _TenantUse())
        now = self._clock.now()
        if not is_shared:
            self._check_rpm(tenant_id, tenant, use, now)
        self._check_tpm(tenant_id, tenant, use, now)
        if is_shared:
            return
        if tenant.monthly_budget_usd is not None:
            self.check_alert(tenant_id, tenant)  # a threshold lowered below the spend alerts at the next request
            if self.spent_usd(tenant_id) >= tenant.monthly_budget_usd:
                raise over_budget(tenant_id, tenant)
        if tenant.rpm is not None:
            use.starts.append(now)

    def _check_rpm(self, tenant_id: str, tenant: TenantConfig, use: _TenantUse, now: float) -> None:
        while use.starts and now - use.starts[0] >= _MINUTE_SECONDS:
            use.starts.popleft()
        if tenant.rpm is not None and len(use.starts) >= tenant.rpm:
            raise TenantRateLimited(
                f"tenant {tenant_id!r} is over its {tenant.rpm} requests per minute",
                retry_after_seconds=_MINUTE_SECONDS - (now - use.starts[0]),
            )

    def _check_tpm(self, tenant_id: str, tenant: TenantConfig, use: _TenantUse, now: float) -> None:
        while use.tokens and now - use.tokens[0][0] >= _MINUTE_SECONDS:
            use.tokens_in_window -= use.tokens.popleft()[1]
        if tenant.tpm is None or use.tokens_in_window < tenant.tpm:
            return
        freed, wait_seconds = use.tokens_in_window, 0.0
        for ended, tokens in use.tokens:  # until enough tokens leave the window to fall under tpm
            freed -= tokens
            wait_seconds = _MINUTE_SECONDS - (now - ended)
            if freed < tenant.tpm:
                break
        raise TenantRateLimited(
            f"tenant {tenant_id!r} is over its {tenant.tpm} tokens per minute", retry_after_seconds=wait_seconds
        )

    def record(self, tenant_id: str, tenant: TenantConfig | None, *, cost_usd: float, tokens: int) -> None:
        """A request of the tenant ended: its cost (US dollars) and tokens count; the alert fires at the threshold."""
        use = self._use.setdefault(tenant_id, _TenantUse())
        if tokens > 0:
            use.tokens.append((self._clock.now(), tokens))
            use.tokens_in_window += tokens
        if cost_usd > 0:
            month = self._month()
            use.spend_by_month[month] = use.spend_by_month.get(month, 0.0) + cost_usd
        if tenant is not None:
            self.check_alert(tenant_id, tenant)

    def add_spend(self, tenant_id: str, month: str, cost_usd: float) -> None:
        """Spend known from elsewhere (the keys' spend at start-up, or Redis)."""
        use = self._use.setdefault(tenant_id, _TenantUse())
        use.spend_by_month[month] = use.spend_by_month.get(month, 0.0) + cost_usd

    def set_spend(self, tenant_id: str, cost_usd: float) -> None:
        """This month's spend as the fleet sees it (Redis)."""
        self._use.setdefault(tenant_id, _TenantUse()).spend_by_month[self._month()] = cost_usd

    def spent_usd(self, tenant_id: str) -> float:
        use = self._use.get(tenant_id)
        return 0.0 if use is None else use.spend_by_month.get(self._month(), 0.0)

    def used_ratio(self, tenant_id: str, tenant: TenantConfig) -> float | None:
        """This month's spend over the budget (1.0 = spent), or None without a budget."""
        if tenant.monthly_budget_usd is None:
            return None
        if tenant.monthly_budget_usd == 0:
            return 1.0
        return self.spent_usd(tenant_id) / tenant.monthly_budget_usd

    def check_alert(self, tenant_id: str, tenant: TenantConfig) -> None:
        """Log ``tenant_budget_alert`` once per month when the spend reaches ``alert_threshold_percent``."""
        ratio = self.used_ratio(tenant_id, tenant)
        if ratio is None or tenant.alert_threshold_percent is None or ratio * 100 < tenant.alert_threshold_percent:
            return
        use = self._use.setdefault(tenant_id, _TenantUse())
        month = self._month()
        if month in use.alerted_months:
            return
        use.alerted_months.add(month)
        log.warning(
            "tenant_budget_alert",
            extra={
                "tenant": tenant_id,
                "month": month,
                "used_ratio": round(ratio, 4),
                "threshold_percent": tenant.alert_threshold_percent,
            },
        )

    def _month(self) -> str:
        return month_of(self._clock.wall())


def over_budget(tenant_id: str, tenant: TenantConfig) -> BudgetExceeded:
    return BudgetExceeded(f"tenant {tenant_id!r} has spent its monthly budget of ${tenant.monthly_budget_usd:g}")
