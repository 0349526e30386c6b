"""Statistics per tenant (issue 19 §3): ``/statistics/summary?tenant=ID`` and the dashboard's tenant filter.

Each tenant gets its own daily statistics (``DailyStats``, one JSON file per tenant under
``LOG_DIR/tenant_stats/``, saved by one background task) and its own dashboard aggregate (``LiveStats``, in
memory), the same bounded structures as the whole gateway's. Tenant ids come from the operator's config and the
admin API, never from a client; still, past ``max_tenants`` tenants the rest share one ``other`` entry.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bkvy.clock import Clock
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.live_stats import LiveStats
from bkvy.utils.private_files import ensure_private_dir
from bkvy.utils.records import TransactionRecord
from bkvy.utils.top_counter import OTHER

__all__ = ["TenantRecords"]

log = logging.getLogger(__name__)

MAX_TENANTS = 100
_SAVE_INTERVAL_SECONDS = 5.0


@dataclass(slots=True)
class _TenantSinks:
    daily: DailyStats | None
    live: LiveStats | None


class TenantRecords:
    def __init__(
        self,
        directory: Path | None,
        clock: Clock,
        *,
        has_live: bool,
        max_keys_per_dimension: int,
        max_tenants: int = MAX_TENANTS,
    ) -> None:
        """``directory``: where the daily statistics go (None: none kept); ``has_live``: keep dashboard ones."""
        self._directory = directory
        self._clock = clock
        self._has_live = has_live
        self._max_keys = max_keys_per_dimension
        self._max_tenants = max_tenants
        self._sinks: dict[str, _TenantSinks] = {}
        self._dirty: set[str] = set()
        self._saver: asyncio.Task[None] | None = None

    def observe(self, rec: TransactionRecord) -> None:
        """A tenant's request: O(1); nothing for a request without a tenant."""
        if not rec.tenant:
            return
        name, sinks = self._sinks_for(rec.tenant)
        if sinks.daily is not None:
            sinks.daily.observe(rec)
            self._dirty.add(name)
        if sinks.live is not None:
            sinks.live.observe(rec)

    def warm_live(self, rec: TransactionRecord) -> None:
        """A logged record read back at start-up: the dashboard aggregate only (the daily files have it)."""
        if not rec.tenant:
            return
        _, sinks = self._sinks_for(rec.tenant)
        if sinks.live is not None:
            sinks.live.observe(rec)

    def daily(self, tenant_id: str) -> DailyStats | None:
        sinks = self._sinks.get(tenant_id)
        return None if sinks is None else sinks.daily

    def live(self, tenant_id: str) -> LiveStats | None:
        sinks = self._sinks.get(tenant_id)
        return None if sinks is None else sinks.live

    def empty_daily(self) -> DailyStats | None:
        """Daily statistics of a tenant without requests yet (never saved), or None when they are off."""
        if self._directory is None:
            return None
        return DailyStats(self._directory / "none.json", self._clock, max_keys_per_dimension=self._max_keys)

    def empty_live(self) -> LiveStats:
        return LiveStats(max_keys_per_dimension=self._max_keys)

    def _sinks_for(self, tenant_id: str) -> tuple[str, _TenantSinks]:
        name = tenant_id if tenant_id in self._sinks or len(self._sinks) < self._max_tenants else OTHER
        return name, self._sinks.get(name) or self._add(name)

    def _add(self, name: str) -> _TenantSinks:
        daily = None
        if self._directory is not None:
            daily = DailyStats(self._directory / f"{name}.json", self._clock, max_keys_per_dimension=self._max_keys)
        sinks = self._sinks[name] = _TenantSinks(
            daily, LiveStats(max_keys_per_dimension=self._max_keys) if self._has_live else None
        )
        return sinks

    async def start(self) -> None:
        """Load the tenants' saved statistics, then save the changed ones every few seconds."""
        if self._directory is None:
            return
        directory = self._directory  # made at the first save: no tenant, no folder
        paths = await asyncio.to_thread(lambda: sorted(directory.glob("*.json")))
        for path in paths[: self._max_tenants]:
            sinks = self._add(path.stem)
            if sinks.daily is not None:
                await sinks.daily.load()
        self._saver = asyncio.create_task(self._save_forever(), name="tenant-stats-saver")

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
            self._saver = None
        await self.save()

    async def save(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if dirty and self._directory is not None:
            await asyncio.to_thread(ensure_private_dir, self._directory)
        for name in sorted(dirty):
            daily = self._sinks[name].daily
            if daily is not None and not await daily.save():
                self._dirty.add(name)

    async def _save_forever(self) -> None:
        while True:
            await self._clock.sleep(_SAVE_INTERVAL_SECONDS)
            await self.save()
