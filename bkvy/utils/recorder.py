"""From what a request did to its records (SPEC §7): one ``TransactionRecord`` per ``RequestOutcome``.

``Records`` is the executor's observer: it turns each outcome into a record and hands it, in memory and in
O(1), to the transaction log, the daily statistics, the dashboard's rolling aggregate and the Prometheus
metrics. Disk work happens in their own background tasks, never on the request path.

Only ids, routing facts, numbers and error codes/messages are recorded: never message content, never a key
value (the key *id* only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.live_stats import LiveStats
from bkvy.utils.metrics import GatewayMetrics
from bkvy.utils.records import COLUMN_TYPES, TransactionRecord, parse_timestamp, utc_timestamp
from bkvy.utils.transaction_log import TransactionLog, restore_cell

if TYPE_CHECKING:
    from bkvy.clock import Clock
    from bkvy.core.execution.executor import RequestOutcome
    from bkvy.core.config.settings import Settings

log = logging.getLogger(__name__)

_MAX_ERROR_MESSAGE_CHARS = 300
_BACKFILL_ROWS = 50_000                               # rows read once at start to warm the dashboard
_BACKFILL_SECONDS = 24 * 3600.0


def record_of(outcome: RequestOutcome) -> TransactionRecord:
    """The transaction record of one request outcome."""
    route = outcome.request.route
    result, error = outcome.result, outcome.error
    tried = [a for a in outcome.attempts if not a.outcome.startswith("skipped_")]
    alternatives = ";".join(f"{a.provider}/{a.model}/{a.key_id}" for a in tried if a.outcome != "success")
    provider = model = key_id = finish_reason = error_type = error_message = ""
    input_tokens = output_tokens = cost = None
    if result is not None:
        candidate, completion = result.candidate, result.completion
        provider, model, key_id = candidate.provider, candidate.model, candidate.key_id
        decision = candidate.reason.value
        input_tokens, output_tokens = completion.usage.input_tokens, completion.usage.output_tokens
        cost, finish_reason = result.cost_usd, completion.finish_reason.value
    elif error is not None:
        decision = outcome.plan.decision_reason.value if outcome.plan is not None else ""
        error_type, error_message = error.code, error.message[:_MAX_ERROR_MESSAGE_CHARS]
    else:
        decision = ""
    return TransactionRecord(
        utc_timestamp(outcome.started_wall), outcome.request.request_id, outcome.request.client_id,
        route.method.value, route.level.value if route.level is not None else "", route.scenario or "",
        route.provider or "", route.model or "", route.max_wait_seconds, result is not None, provider, model,
        key_id, round(outcome.total_ms, 3), round(outcome.queue_wait_ms, 3), round(outcome.rate_limit_wait_ms, 3),
        input_tokens, output_tokens, cost, finish_reason, decision, error_type, error_message,
        max(len(tried) - 1, 0), alternatives)


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
    """The executor's observer: every outcome goes, as a record, to each enabled sink."""

    def __init__(self, *, clock: Clock, metrics: GatewayMetrics, transaction_log: TransactionLog | None = None,
                 daily_stats: DailyStats | None = None, live: LiveStats | None = None) -> None:
        self._clock = clock
        self.metrics = metrics
        self.transaction_log = transaction_log
        self.daily_stats = daily_stats
        self.live = live

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock, metrics: GatewayMetrics) -> Records:
        log_dir = settings.log_dir
        transaction_log = None
        if settings.transaction_logging:
            transaction_log = TransactionLog(log_dir, clock, max_bytes=settings.transaction_log_max_bytes,
                                             retention_days=settings.transaction_log_retention_days)
        daily_stats = DailyStats(log_dir / "daily_stats.json", clock) if settings.summary_stats else None
        live = LiveStats() if settings.dashboard_enabled else None
        return cls(clock=clock, metrics=metrics, transaction_log=transaction_log, daily_stats=daily_stats, live=live)

    def observe(self, outcome: RequestOutcome) -> None:
        """Observer for ``Executor.add_observer``: O(1), in memory, never raises into the request."""
        if self.transaction_log is not None or self.daily_stats is not None or self.live is not None:
            self.observe_record(record_of(outcome))   # no sink, no record to build
        self.metrics.observe(outcome)

    def observe_record(self, rec: TransactionRecord) -> None:
        if self.transaction_log is not None:
            self.transaction_log.record(rec)
        if self.daily_stats is not None:
            self.daily_stats.observe(rec)
        if self.live is not None:
            self.live.observe(rec)

    async def start(self) -> None:
        if self.transaction_log is not None:
            await self.transaction_log.start()
        if self.daily_stats is not None:
            await self.daily_stats.load()
            await self.daily_stats.start()
        if self.live is not None and self.transaction_log is not None:
            await self._warm_live(self.live, self.transaction_log)

    async def stop(self) -> None:
        """Write every queued row and the statistics (a clean shutdown loses nothing)."""
        if self.transaction_log is not None:
            await self.transaction_log.stop()
        if self.daily_stats is not None:
            await self.daily_stats.stop()

    async def _warm_live(self, live: LiveStats, transaction_log: TransactionLog) -> None:
        # The last day of rows, read once at start in a thread, so a restart does not blank the dashboard.
        since_wall = self._clock.wall() - _BACKFILL_SECONDS
        rows = await asyncio.to_thread(transaction_log.read_recent, _BACKFILL_ROWS)
        records = [rec for rec in map(record_from_row, reversed(rows)) if rec is not None]
        for rec in records:
            stamp = parse_timestamp(rec.timestamp)
            if stamp is not None and stamp >= since_wall:
                live.observe(rec)
        log.info("dashboard_warmed", extra={"rows": len(records)})
