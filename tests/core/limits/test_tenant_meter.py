"""A tenant's rpm, tpm, budget and alert across its keys (issue 19 §3), on a fake clock."""

from __future__ import annotations

import logging

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.tenants import TenantConfig
from bkvy.core.limits.tenant_meter import TenantMeter
from bkvy.models.errors import BudgetExceeded, TenantDisabled, TenantRateLimited


def test_rpm_refuses_the_third_request_then_frees_after_a_minute() -> None:
    clock = FakeClock()
    meter, tenant = TenantMeter(clock), TenantConfig(rpm=2)
    meter.admit("acme", tenant)
    clock.advance(10)
    meter.admit("acme", tenant)
    with pytest.raises(TenantRateLimited) as refused:
        meter.admit("acme", tenant)
    assert refused.value.retry_after_seconds == pytest.approx(50.0)
    clock.advance(50)
    meter.admit("acme", tenant)


def test_tpm_waits_until_enough_tokens_leave_the_window() -> None:
    clock = FakeClock()
    meter, tenant = TenantMeter(clock), TenantConfig(tpm=100)
    meter.record("acme", tenant, cost_usd=0.0, tokens=60)
    clock.advance(20)
    meter.record("acme", tenant, cost_usd=0.0, tokens=60)
    with pytest.raises(TenantRateLimited) as refused:
        meter.admit("acme", tenant)
    assert refused.value.retry_after_seconds == pytest.approx(40.0)  # the first 60 leave: 60 < 100
    clock.advance(40)
    meter.admit("acme", tenant)


def test_budget_stops_at_100_percent_and_alerts_once_a_month(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = FakeClock()
    meter, tenant = TenantMeter(clock), TenantConfig(monthly_budget_usd=1.0, alert_threshold_percent=50)
    meter.record("acme", tenant, cost_usd=0.4, tokens=0)
    assert not [r for r in caplog.records if r.getMessage() == "tenant_budget_alert"]
    meter.record("acme", tenant, cost_usd=0.2, tokens=0)
    meter.record("acme", tenant, cost_usd=0.2, tokens=0)
    assert len([r for r in caplog.records if r.getMessage() == "tenant_budget_alert"]) == 1
    assert meter.used_ratio("acme", tenant) == pytest.approx(0.8)
    meter.admit("acme", tenant)
    meter.record("acme", tenant, cost_usd=0.2, tokens=0)
    with pytest.raises(BudgetExceeded):
        meter.admit("acme", tenant)
    clock.advance(40 * 86400)  # the next month: a fresh budget, and one more alert when it is reached again
    meter.admit("acme", tenant)
    meter.record("acme", tenant, cost_usd=0.6, tokens=0)
    assert len([r for r in caplog.records if r.getMessage() == "tenant_budget_alert"]) == 2


def test_a_disabled_tenant_is_refused() -> None:
    with pytest.raises(TenantDisabled):
        TenantMeter(FakeClock()).admit("acme", TenantConfig(disabled=True))
