"""Tenants shared by every replica through Redis (REDIS_URL; issue 19 §3, docs/POLICY.md "Tenants").

- ``<prefix>tn:all``: a hash, tenant id -> config (JSON), the tenants created through ``/admin/tenants``; each
  change is published on the bus (channel ``tenants``) in the same transaction, and read again on resync.
- ``{<prefix>tn:<id>}:rpm|spend|use|off``: a tenant's rpm window, spend by month and use counts, admitted by the
  client keys' script (``key_layout.ADMIT_SCRIPT``): rpm and budget across every key of the tenant, on every
  replica, in one atomic step. ``off`` is never set (a disabled tenant is refused before, from its config).

Spend is queued and added with HINCRBYFLOAT by a flusher woken at once. Redis down: each replica admits on its
own (``TenantMeter``) and adds the spend when Redis returns. tpm is counted by each replica for its own requests.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

from redis.asyncio import Redis

from bkvy.clock import Clock
from bkvy.core.config.tenants import TenantConfig
from bkvy.core.limits.client_keys import month_of
from bkvy.core.limits.tenant_meter import over_budget
from bkvy.core.limits.tenants import TenantStore
from bkvy.core.shared.bus import SharedBus
from bkvy.core.shared.key_layout import ADMIT_SCRIPT
from bkvy.core.shared.spend_queue import SpendQueue
from bkvy.core.shared.state import SharedState, SharedStateDown
from bkvy.models.errors import SharedStateUnavailable, TenantExists, TenantRateLimited

__all__ = ["TENANTS_CHANNEL", "SharedTenants"]

log = logging.getLogger(__name__)

TENANTS_CHANNEL = "tenants"
# Create: store the tenant only if its id is free, and announce it in the same atomic step (1: created, 0: taken).
_CREATE_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""


class SharedTenants:
    def __init__(self, state: SharedState, store: TenantStore, clock: Clock, *, bus: SharedBus | None = None) -> None:
        self._state = state
        self._store = store
        self._clock = clock
        self._bus = bus
        self._all = f"{state.prefix}tn:all"
        self._admit = state.client.register_script(ADMIT_SCRIPT)
        self._create = state.client.register_script(_CREATE_SCRIPT)
        self._members = itertools.count()
        self._spend = SpendQueue(state, self._write_spend, task_name="bkvy-shared-tenant-spend")

    def _tag(self, tenant_id: str) -> str:
        return "{" + f"{self._state.prefix}tn:{tenant_id}" + "}"

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.resync()
        except SharedStateDown:
            pass
        if self._bus is not None:
            self._bus.subscribe(TENANTS_CHANNEL, self._on_event)
            self._bus.on_resync(self.resync)
        self._spend.start()

    async def stop(self) -> None:
        await self._spend.stop()

    # -- hot path ---------------------------------------------------------------------------------------
    async def admit(self, tenant_id: str, tenant: TenantConfig) -> None:
        """Count one request of the tenant across the fleet. Raises TenantRateLimited (429), BudgetExceeded (402)."""
        if tenant.rpm is None and tenant.monthly_budget_usd is None:
            return
        month = month_of(self._clock.wall())
        budget = -1.0 if tenant.monthly_budget_usd is None else tenant.monthly_budget_usd
        member = f"{self._state.replica_id}:{next(self._members)}"
        args = (repr(self._clock.wall()), tenant.rpm or 0, repr(budget), month, member)
        tag = self._tag(tenant_id)
        keys = [f"{tag}:rpm", f"{tag}:spend", f"{tag}:use", f"{tag}:off"]
        try:
            verdict, detail = await self._state.call(lambda client: self._admit(keys=keys, args=args, client=client))
        except SharedStateDown:
            self._store.meter.admit(tenant_id, tenant)  # on this replica's own counts
            return
        verdict_text, detail_text = _text(verdict), _text(detail)
        if verdict_text == "rpm":
            raise TenantRateLimited(
                f"tenant {tenant_id!r} is over its {tenant.rpm} requests per minute",
                retry_after_seconds=float(detail_text),
            )
        self._store.meter.set_spend(tenant_id, float(detail_text) + self._spend.pending((tenant_id, month)))
        self._store.meter.check_alert(tenant_id, tenant)
        if verdict_text == "budget":
            raise over_budget(tenant_id, tenant)

    def record_spend(self, tenant_id: str, cost_usd: float) -> None:
        """Queue a request's cost (US dollars) for Redis; the flusher adds it at once."""
        if cost_usd <= 0:
            return
        self._spend.add((tenant_id, month_of(self._clock.wall())), cost_usd)

    async def flush(self) -> None:
        """Add the queued spend to Redis now (``SpendQueue.flush``)."""
        await self._spend.flush()

    def _write_spend(self, pipe: Any, tenant_id: str, month: str, usd: float) -> None:
        pipe.hincrbyfloat(f"{self._tag(tenant_id)}:spend", month, usd)

    # -- admin, events, resync ----------------------------------------------------------------------------
    async def create(self, tenant_id: str, tenant: TenantConfig) -> None:
        """Store and announce a new API tenant (HSETNX: of two replicas creating one id, one wins), then keep it
        here. Raises TenantExists (409) when Redis already holds the id, SharedStateUnavailable (503)."""
        record = json.dumps(tenant.model_dump(mode="json", exclude_defaults=True), separators=(",", ":"))
        channel, envelope = "", ""
        if self._bus is not None:
            channel = self._bus.channel_name(TENANTS_CHANNEL)
            envelope = self._bus.envelope({"id": tenant_id, "tenant": json.loads(record)})
        args = (tenant_id, record, channel, envelope)
        try:
            created = await self._state.call(lambda client: self._create(keys=[self._all], args=args, client=client))
        except SharedStateDown:
            raise SharedStateUnavailable(
                "tenants are shared through Redis, which is unreachable: try again when it is back"
            ) from None
        if not int(created):
            raise TenantExists(f"tenant {tenant_id!r} exists: change it with PATCH /admin/tenants/{tenant_id}")
        await self._store.save(tenant_id, tenant)

    async def save(self, tenant_id: str, tenant: TenantConfig) -> None:
        """Store and announce an API tenant, then keep it here. Raises SharedStateUnavailable (503)."""
        record = tenant.model_dump(mode="json", exclude_defaults=True)

        async def write(client: Redis) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(self._all, tenant_id, json.dumps(record, separators=(",", ":")))
                if self._bus is not None:  # in the same transaction: a stored tenant is announced
                    envelope = self._bus.envelope({"id": tenant_id, "tenant": record})
                    pipe.publish(self._bus.channel_name(TENANTS_CHANNEL), envelope)
                await pipe.execute()

        try:
            await self._state.call(write)
        except SharedStateDown:
            raise SharedStateUnavailable(
                "tenants are shared through Redis, which is unreachable: try again when it is back"
            ) from None
        await self._store.save(tenant_id, tenant)

    async def resync(self) -> None:
        """Read every shared tenant again. Raises SharedStateDown."""
        records = await self._state.call(lambda client: client.hgetall(self._all))
        for raw_id, raw in records.items():
            self._adopt(_text(raw_id), json.loads(raw))

    def _on_event(self, data: dict[str, Any]) -> None:
        self._adopt(str(data.get("id")), data.get("tenant"))

    def _adopt(self, tenant_id: str, fields: Any) -> None:
        try:
            self._store.adopt(tenant_id, TenantConfig.model_validate(fields))
        except ValueError:  # pydantic's ValidationError is one: a record of another version
            log.warning("tenant_event_malformed", extra={"tenant": tenant_id})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
