"""Recorded next to replayed: cost, success rate and answer-time percentiles, in total, per model and per
strategy. Both sides are computed by the same function over the same kind of record.

A model is where a request was answered ("provider/model"; "(failed)" when it was not). A strategy is how it
was routed: ``intelligence:low``, ``scenario:NAME``, ``direct:provider/model``. Percentiles are of answered
requests' ``total_time_ms``; cost is every record's ``cost_estimate`` (lost hedges included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bkvy.replay.fitting import percentile
from bkvy.utils.records import TransactionRecord

_FAILED = "(failed)"


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    cost_usd: float
    success_rate: float  # 0-1
    p50_ms: float
    p95_ms: float
    p99_ms: float


def totals_of(records: Sequence[TransactionRecord]) -> Totals:
    times = sorted(r.total_time_ms for r in records if r.success and r.total_time_ms is not None)
    answered = sum(1 for r in records if r.success)
    return Totals(
        requests=len(records),
        cost_usd=round(sum(r.cost_estimate or 0.0 for r in records), 9),
        success_rate=answered / len(records) if records else 0.0,
        p50_ms=round(percentile(times, 50), 3),
        p95_ms=round(percentile(times, 95), 3),
        p99_ms=round(percentile(times, 99), 3),
    )


def model_of(record: TransactionRecord) -> str:
    return f"{record.provider_used}/{record.model_used}" if record.success else _FAILED


def strategy_of(record: TransactionRecord) -> str:
    if record.routing_method == "scenario":
        return f"scenario:{record.scenario}"
    if record.routing_method == "direct":
        return f"direct:{record.requested_provider}/{record.requested_model}"
    return f"{record.routing_method}:{record.intelligence_level or 'auto'}"


def _grouped(records: Iterable[TransactionRecord], key: Any) -> dict[str, list[TransactionRecord]]:
    groups: dict[str, list[TransactionRecord]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return groups


def comparison(recorded: Sequence[TransactionRecord], replayed: Sequence[TransactionRecord]) -> dict[str, Any]:
    """``{"total": {...}, "models": {...}, "strategies": {...}}``, each scope ``{"recorded", "replayed"}``; a
    scope one side lacks has zero requests there."""
    report: dict[str, Any] = {"total": _pair(recorded, replayed)}
    for section, key in (("models", model_of), ("strategies", strategy_of)):
        before, after = _grouped(recorded, key), _grouped(replayed, key)
        report[section] = {name: _pair(before.get(name, []), after.get(name, [])) for name in sorted({*before, *after})}
    return report


def _pair(recorded: Sequence[TransactionRecord], replayed: Sequence[TransactionRecord]) -> dict[str, Any]:
    return {"recorded": asdict(totals_of(recorded)), "replayed": asdict(totals_of(replayed))}


def render_table(report: dict[str, Any]) -> str:
    """The comparison as a fixed-width table: two lines per scope, ``recorded`` then ``replayed``."""
    header = (
        f"{'scope':<48} {'source':<9} {'requests':>8} {'cost $':>12} {'success':>8} "
        f"{'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"
    )
    lines = [header, "-" * len(header)]
    scopes: list[tuple[str, dict[str, Any]]] = [("total", report["total"])]
    scopes += [(f"model {name}", pair) for name, pair in report["models"].items()]
    scopes += [(f"strategy {name}", pair) for name, pair in report["strategies"].items()]
    for scope, pair in scopes:
        for source in ("recorded", "replayed"):
            row = pair[source]
            lines.append(
                f"{scope[:48]:<48} {source:<9} {row['requests']:>8} {row['cost_usd']:>12.6f} "
                f"{row['success_rate'] * 100:>7.1f}% {row['p50_ms']:>9.0f} {row['p95_ms']:>9.0f} {row['p99_ms']:>9.0f}"
            )
    return "\n".join(lines)
