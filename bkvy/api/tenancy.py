"""Tenants at the edge (issue 19 §3): a keyed request's tenant is admitted (403 disabled, 429 over its rpm or tpm,
402 over its budget) before any upstream call, and its ``PolicySubject`` (the key's scope and the tenant's rules)
rides on the ``ExecutionRequest``; when the request ends its cost and tokens count against the tenant.

No tenant config and no key with a tenant: nothing here runs beyond one attribute test per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bkvy.core.execution.records import RequestOutcome
from bkvy.core.limits.client_keys import ClientKey, month_of
from bkvy.core.limits.key_scope import NO_SCOPE
from bkvy.core.limits.tenant_meter import TenantMeter
from bkvy.core.limits.tenants import ADMIN_TENANTS_FILE, TenantStore
from bkvy.core.shared.tenants import SharedTenants
from bkvy.models.errors import TenantDisabled
from bkvy.models.policy import PolicySubject
from bkvy.utils.tenant_metrics import TenantBudgetCollector

__all__ = ["admit_tenant", "start_tenants", "subject_of", "tenant_observer"]


async def admit_tenant(services: Any, key: ClientKey) -> None:
    """Count one request of the key's tenant. Raises TenantDisabled (403; also a tenant no longer configured),
    TenantRateLimited (429) or BudgetExceeded (402)."""
    tenant_id = key.scope.tenant
    store: TenantStore | None = services.tenants
    if tenant_id is None or store is None:
        return
    tenant = store.get(tenant_id)
    if tenant is None:
        raise TenantDisabled(f"client key {key.name!r} belongs to tenant {tenant_id!r}, which no longer exists")
    shared = services.shared_tenants
    store.meter.admit(tenant_id, tenant.config, is_shared=shared is not None)
    if shared is not None:  # REDIS_URL: rpm and budget across every replica, one script
        await shared.admit(tenant_id, tenant.config)


def subject_of(services: Any, key: ClientKey | None) -> PolicySubject | None:
    """Who sent the request, as policy sees it; None without a client key."""
    if key is None:
        return None
    scope = key.scope
    if scope is NO_SCOPE:
        return PolicySubject(client_key=key.name)
    store: TenantStore | None = services.tenants
    tenant = store.get(scope.tenant) if store is not None and scope.tenant is not None else None
    return PolicySubject(
        client_key=key.name,
        tenant=None if tenant is None else tenant.rules,
        data_class=scope.data_class or (None if tenant is None else tenant.rules.data_class),
        allowed_regions=None if scope.allowed_regions is None else frozenset(scope.allowed_regions),
        may_set_source_region=scope.allow_source_region,
    )


def tenant_observer(services: Any) -> Callable[[RequestOutcome], None]:
    """Executor observer: a tenant's request adds its cost (every attempt billed) and its tokens to the tenant."""

    def observe(outcome: RequestOutcome) -> None:
        subject = outcome.request.subject
        if subject is None or subject.tenant is None or services.tenants is None:
            return
        tenant_id = subject.tenant.tenant_id
        cost_usd = sum(a.cost_usd for a in outcome.attempts)
        tokens = 0 if outcome.result is None else outcome.result.completion.usage.total_tokens
        tenant = services.tenants.get(tenant_id)
        if services.shared_tenants is not None:
            services.shared_tenants.record_spend(tenant_id, cost_usd)
        services.tenants.meter.record(
            tenant_id, None if tenant is None else tenant.config, cost_usd=cost_usd, tokens=tokens
        )

    return observe


async def start_tenants(services: Any) -> None:
    """Build the tenant store (config/tenants.json and LOG_DIR/admin_tenants.json), seed each tenant's spend this
    month from its keys', share it through Redis when REDIS_URL is set, observe the executor, export the gauge.
    Sets ``services.tenants`` (and ``shared_tenants``) once started."""
    store = TenantStore(services.settings.log_dir / ADMIN_TENANTS_FILE, TenantMeter(services.clock))
    await store.start(services.config.tenants)
    month = month_of(services.clock.wall())
    if services.client_keys is not None:
        for tenant_id, usd in services.client_keys.spend_by_tenant(month).items():
            store.meter.add_spend(tenant_id, month, usd)
    services.tenants = store
    if services.shared is not None:
        bus = services.sharing.bus if services.sharing is not None else None
        shared = SharedTenants(services.shared, store, services.clock, bus=bus)
        await shared.start()
        services.shared_tenants = shared
    services.executor.add_observer(tenant_observer(services))
    if services.records is not None:
        services.records.metrics.registry.register(TenantBudgetCollector(store.used_ratios))
