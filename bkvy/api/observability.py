"""Wire the records (transaction log, daily stats, dashboard aggregate, metrics) to one gateway's services.

The executor reports each request as a ``RequestOutcome`` (core); the records and metrics (utils) know only
plain records and numbers. ``observe_outcome`` is where one becomes the other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bkvy.clock import Clock
from bkvy.core.config.settings import Settings
from bkvy.core.execution.records import RequestOutcome
from bkvy.core.limits.client_keys import ClientKeyStore
from bkvy.core.policy.rules import PolicyDecision
from bkvy.core.routing.classifier import Classification
from bkvy.core.shared.client_keys import SharedClientKeys
from bkvy.models.errors import ClientDisconnected
from bkvy.models.outcomes import AttemptOutcome, is_hedged
from bkvy.models.policy import PolicySubject
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.live_stats import LiveStats
from bkvy.utils.metrics import CircuitSample, GatewayMetrics
from bkvy.utils.recorder import Records
from bkvy.utils.records import TransactionRecord, utc_timestamp
from bkvy.utils.scrubber import Scrubber
from bkvy.utils.tenant_records import TenantRecords
from bkvy.utils.transaction_log import DEFAULT_STEM, TransactionLog

_MAX_ERROR_MESSAGE_CHARS = 300


async def start_records(services: Any) -> Records:
    """Build the records of ``services`` (a ``Services``), start their writers, observe its executor."""
    config = services.config
    configured = [
        (provider_name, model_name, key_id)
        for provider_name, provider in config.providers.items()
        for model_name in provider.models
        for key_id in provider.key_ids_for(model_name)
    ]
    metrics = GatewayMetrics(
        configured,
        queue_depth=lambda: _queue_depth(services),
        circuits=lambda: circuit_samples(getattr(services, "circuits", None)),
        connections_ended=lambda: services.connections_ended,
        shared_state_up=lambda: _shared_state_up(services),
    )
    slot = getattr(services, "slot", None)  # REDIS_URL: this process's own files in a shared LOG_DIR
    records = records_from_settings(
        services.settings,
        services.clock,
        metrics,
        scrubber=services.scrubber,
        slot_name=None if slot is None else slot.name,
    )
    await records.start()
    services.executor.add_observer(partial(observe_outcome, records))
    return records


def records_from_settings(
    settings: Settings,
    clock: Clock,
    metrics: GatewayMetrics,
    *,
    scrubber: Scrubber | None = None,
    slot_name: str | None = None,
) -> Records:
    """The sinks the settings enable, under ``settings.log_dir``; ``scrubber`` masks secrets in each record.
    ``slot_name`` (one process of several sharing LOG_DIR): its own ``transactions.<slot>.csv`` and
    ``daily_stats.<slot>.json``."""
    log_dir = settings.log_dir
    suffix = "" if slot_name is None else f".{slot_name}"
    transaction_log = None
    if settings.transaction_logging:
        transaction_log = TransactionLog(
            log_dir,
            clock,
            max_bytes=settings.transaction_log_max_bytes,
            retention_days=settings.transaction_log_retention_days,
            stem=f"{DEFAULT_STEM}{suffix}",
        )
    max_keys = settings.stats_max_keys_per_dimension
    daily_stats = None
    if settings.summary_stats:
        daily_stats = DailyStats(log_dir / f"daily_stats{suffix}.json", clock, max_keys_per_dimension=max_keys)
    live = LiveStats(max_keys_per_dimension=max_keys) if settings.dashboard_enabled else None
    tenant_records = None
    if settings.summary_stats or settings.dashboard_enabled:
        tenant_records = TenantRecords(
            log_dir / f"tenant_stats{suffix}" if settings.summary_stats else None,
            clock,
            has_live=settings.dashboard_enabled,
            max_keys_per_dimension=max_keys,
        )
    return Records(
        clock=clock,
        metrics=metrics,
        transaction_log=transaction_log,
        daily_stats=daily_stats,
        live=live,
        tenant_records=tenant_records,
        scrubber=scrubber,
    )


def observe_outcome(records: Records, outcome: RequestOutcome) -> None:
    """Executor observer: the outcome's record to every sink, its counts to the metrics. O(attempts)."""
    if records.has_sink:
        records.observe_record(record_of(outcome))  # no sink, no record to build
    method = outcome.request.route.method.value
    result = outcome.result
    records.metrics.observe_hedges(outcome.hedges)
    if outcome.request.policy is not None:
        records.metrics.observe_policy(*policy_cells(outcome.request.policy)[:2])
    if result is not None:
        usage = result.completion.usage
        records.metrics.observe_served(
            method,
            result.candidate.provider,
            result.candidate.model,
            total_ms=outcome.total_ms,
            queue_wait_ms=outcome.queue_wait_ms,
            attempts=outcome.attempts,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=result.cost_usd,
        )
    else:
        records.metrics.observe_failed(
            method,
            outcome.error.code if outcome.error is not None else "unknown",
            total_ms=outcome.total_ms,
            queue_wait_ms=outcome.queue_wait_ms,
            attempts=outcome.attempts,
        )


def record_of(outcome: RequestOutcome) -> TransactionRecord:
    """The transaction record of one request outcome."""
    route = outcome.request.route
    result, error = outcome.result, outcome.error
    sent = [a for a in outcome.attempts if a.outcome.was_sent]
    retries = sum(1 for a in sent if not a.is_hedge) - 1  # a hedge is no retry: it has its own column
    failed = [a for a in sent if a.outcome is not AttemptOutcome.SUCCESS]
    alternatives = ";".join(f"{a.provider}/{a.model}/{a.key_id}" for a in failed)
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
        if isinstance(error, ClientDisconnected) and sent:
            # the client left while an upstream worked on it: the row names the last attempt sent
            last = sent[-1]
            provider, model, key_id = last.provider, last.model, last.key_id
        cost = sum(a.cost_usd for a in sent) or None  # a lost hedge is billed even when the request failed
    else:
        decision = ""
    return TransactionRecord(
        utc_timestamp(outcome.started_wall),
        outcome.request.request_id,
        outcome.request.client_id,
        route.method.value,
        route.level.value if route.level is not None else "",
        route.scenario or "",
        route.provider or "",
        route.model or "",
        route.max_wait_seconds,
        result is not None,
        provider,
        model,
        key_id,
        round(outcome.total_ms, 3),
        round(outcome.queue_wait_ms, 3),
        round(outcome.rate_limit_wait_ms, 3),
        input_tokens,
        output_tokens,
        cost,
        finish_reason,
        decision,
        error_type,
        error_message,
        max(retries, 0),
        alternatives,
        is_hedged(outcome.hedges),
        *_classification_cells(outcome.request.classification),
        _tenant_of(outcome.request.subject),
        *policy_cells(outcome.request.policy),
        outcome.cache_saved_usd is not None,
        outcome.cache_saved_usd,
        ";".join(a.outcome.value for a in failed),
    )


def _tenant_of(subject: PolicySubject | None) -> str:
    return "" if subject is None or subject.tenant is None else subject.tenant.tenant_id


def _classification_cells(classification: Classification | None) -> tuple[str, float | None, str]:
    if classification is None:
        return "", None, ""
    return classification.domain, classification.confidence, " ".join(classification.features)


def policy_cells(decision: PolicyDecision | None) -> tuple[str, str, str]:
    """The policy columns of a record: action, rule, kinds found (never values)."""
    if decision is None:
        return "", "", ""
    return decision.action.value, decision.rule or "", ";".join(sorted(kind.value for kind in decision.kinds))


def circuit_samples(circuits: Any) -> list[CircuitSample]:
    """Circuit states from a circuit registry with ``snapshots()``; empty when there is none."""
    snapshots = getattr(circuits, "snapshots", None)
    if snapshots is None:
        return []
    return [
        CircuitSample(s.key.provider, s.key.model, s.key.key_id, getattr(s.state, "value", str(s.state)))
        for s in snapshots()
    ]


def _shared_state_up(services: Any) -> float | None:
    """1 or 0 with REDIS_URL set (Redis usable or not); None (no gauge) in the embedded mode."""
    shared = getattr(services, "shared", None)
    return None if shared is None else float(shared.is_up)


def _queue_depth(services: Any) -> int:
    return sum(int(lane.get("queue_depth", 0)) for lane in services.limiter.status())


def spend_observer(client_keys: ClientKeyStore | SharedClientKeys) -> Callable[[RequestOutcome], None]:
    """Executor observer: a served request's cost goes to the spend of the client key that sent it."""

    def observe(outcome: RequestOutcome) -> None:
        # Every attempt the upstream billed: the winner's, and lost hedges' even when the request failed.
        key_id = outcome.request.client_key_id
        if key_id is not None:
            client_keys.record_spend(key_id, sum(a.cost_usd for a in outcome.attempts))

    return observe
