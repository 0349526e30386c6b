"""The records of one gateway (SPEC §7): each request's ``TransactionRecord`` goes to every enabled sink.

``Records`` hands each record, in memory and in O(1), to the transaction log, the daily statistics and the
dashboard's rolling aggregate; it also holds the Prometheus metrics. Disk work happens in their own background
tasks, never on the request path. (Building a record from a request's outcome is the wiring's job:
``api.observability``.)

Only ids, routing facts, numbers and error codes/messages are recorded: never message content, never a key
value (the key *id* only).
"""

from __future__ import annotations

import asyncio
import logging

from bkvy.clock import Clock
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.live_stats import LiveStats
from bkvy.utils.metrics import GatewayMetrics
from bkvy.utils.records import COLUMN_TYPES, TransactionRecord, parse_timestamp
from bkvy.utils.scrubber import Scrubber
from bkvy.utils.tenant_records import TenantRecords
from bkvy.utils.transaction_log import TransactionLog, restore_cell

log = logging.getLogger(__name__)

_BACKFILL_ROWS = 50_000  # rows read once at start to warm the dashboard
_BACKFILL_SECONDS = 24 * 3600.0
_TEXT_INDEXES = tuple(i for i, kind in enumerate(COLUMN_TYPES.values()) if kind == "str")


def record_from_row(row: dict[str, str]) -> TransactionRecord | None:
    """A CSV row (as ``TransactionLog`` reads it) back to a record; None when it is not one of ours."""
    values: dict[str, object] = {}
    try:
        for name, annotation in COLUMN_TYPES.items():
            values[name] = _typed_cell(restore_cell(row.get(name) or ""), annotation)
    except ValueError:
        return None
    if not values["timestamp"] or parse_timestamp(str(values["timestamp"])) is None:
        return None
    return TransactionRecord(**values)  # type: ignore[arg-type]


def _typed_cell(cell: str, annotation: str) -> object:
    if annotation == "bool":
        return cell == "true"
    if annotation.startswith("float"):
        return float(cell) if cell else None
    if annotation.startswith("int"):
        return int(cell) if cell else (0 if annotation == "int" else None)
    return cell


class Records:
    """Every record goes to each enabled sink."""

    def __init__(
        self,
        *,
        clock: Clock,
        metrics: GatewayMetrics,
        transaction_log: TransactionLog | None = None,
        daily_stats: DailyStats | None = None,
        live: LiveStats | None = None,
        scrubber: Scrubber | None = None,
        tenant_records: TenantRecords | None = None,
    ) -> None:
        self._clock = clock
        self._scrubber = scrubber or Scrubber()
        self.metrics = metrics
        self.transaction_log = transaction_log
        self.daily_stats = daily_stats
        self.live = live
        self.tenant_records = tenant_records  # statistics per tenant (issue 19 §3)

    @property
    def has_sink(self) -> bool:
        """Whether any sink takes records: with none, no record needs to be built."""
        return self.transaction_log is not None or self.daily_stats is not None or self.live is not None

    def observe_record(self, rec: TransactionRecord) -> None:
        rec = self._without_secrets(rec)
        if self.transaction_log is not None:
            self.transaction_log.record(rec)
        if self.daily_stats is not None:
            self.daily_stats.observe(rec)
        if self.live is not None:
            self.live.observe(rec)
        if self.tenant_records is not None:
            self.tenant_records.observe(rec)

    def _without_secrets(self, rec: TransactionRecord) -> TransactionRecord:
        """``rec`` with every configured secret masked in its text cells, before any sink sees it (one search
        over the joined cells: ~0.3 µs)."""
        scrubber = self._scrubber
        text_cells: list[str] = [rec[i] for i in _TEXT_INDEXES]  # type: ignore[misc]  # the "str" columns
        if scrubber.is_empty or not scrubber.has_secret_text("\n".join(text_cells)):
            return rec
        cells: list[object] = list(rec)
        for index in _TEXT_INDEXES:
            cells[index] = scrubber.scrub_text(str(cells[index]))
        return TransactionRecord(*cells)  # type: ignore[arg-type]

    async def start(self) -> None:
        if self.transaction_log is not None:
            await self.transaction_log.start()
        if self.daily_stats is not None:
            await self.daily_stats.load()
            await self.daily_stats.start()
        if self.tenant_records is not None:
            await self.tenant_records.start()
        if self.live is not None and self.transaction_log is not None:
            await self._warm_live(self.live, self.transaction_log)

    async def stop(self) -> None:
        """Write every queued row and the statistics (a clean shutdown loses nothing)."""
        if self.transaction_log is not None:
            await self.transaction_log.stop()
        if self.daily_stats is not None:
            await self.daily_stats.stop()
        if self.tenant_records is not None:
            await self.tenant_records.stop()

    async def _warm_live(self, live: LiveStats, transaction_log: TransactionLog) -> None:
        # The last day of rows, read once at start in a thread, so a restart does not blank the dashboard.
        since_wall = self._clock.wall() - _BACKFILL_SECONDS
        rows = await asyncio.to_thread(transaction_log.read_recent, _BACKFILL_ROWS)
        records = [rec for rec in map(record_from_row, reversed(rows)) if rec is not None]
        for rec in records:
            stamp = parse_timestamp(rec.timestamp)
            if stamp is not None and stamp >= since_wall:
                live.observe(rec)
                if self.tenant_records is not None:
                    self.tenant_records.warm_live(rec)
        log.info("dashboard_warmed", extra={"rows": len(records)})
