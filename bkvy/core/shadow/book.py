"""What shadow traffic has shown so far: per route, the primary's and each shadow model's tallies, the skips,
and today's shadow spend. Numbers only: no text ever reaches this module (SPEC: content is never stored).

``to_dict`` / ``load_dict`` are what ``LOG_DIR/shadow_stats.json`` holds (written atomically, debounced).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

LATENCY_SAMPLES = 1000  # per tally: p50/p95 over the newest this many calls
PRIMARY = "primary"


class ShadowSkip(str, Enum):
    """Why a shadow call was not sent (str-valued for the wire)."""

    POLICY = "policy"  # the request's policy or residency does not allow the shadow model
    BUDGET = "budget"  # SHADOW_DAILY_BUDGET_USD is spent for today
    CONCURRENCY = "concurrency"  # SHADOW_MAX_CONCURRENCY calls already in flight: dropped
    LANE_BUSY = "lane_busy"  # no key of the model had a spare rate-limit slot (core/shadow/lanes.py)
    UNSUPPORTED_INPUT = "unsupported_input"  # the model's wire format cannot take this request


@dataclass(slots=True)
class Tally:
    """One model's calls on one route: success, latency, tokens, cost, finish reasons and similarity."""

    calls: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    similarity_sum: float = 0.0
    similarity_count: int = 0
    finish_reasons: dict[str, int] = field(default_factory=dict)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    skipped: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        *,
        is_success: bool,
        latency_ms: float,
        cost_usd: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        finish_reason: str | None = None,
        similarity: float | None = None,
    ) -> None:
        """One call's end (``similarity`` None: nothing to compare, e.g. a failed or streamed primary)."""
        self.calls += 1
        self.successes += is_success
        self.cost_usd += cost_usd
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.latencies_ms.append(latency_ms)
        if finish_reason is not None:
            self.finish_reasons[finish_reason] = self.finish_reasons.get(finish_reason, 0) + 1
        if similarity is not None:
            self.similarity_sum += similarity
            self.similarity_count += 1

    def skip(self, reason: ShadowSkip) -> None:
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + 1

    def summary(self) -> dict[str, Any]:
        """The comparison row: success rate, p50/p95 latency (ms), cost per call, mean similarity."""
        ordered = sorted(self.latencies_ms)
        return {
            "calls": self.calls,
            "success_rate": round(self.successes / self.calls, 4) if self.calls else None,
            "p50_ms": _percentile(ordered, 0.50),
            "p95_ms": _percentile(ordered, 0.95),
            "cost_per_request_usd": round(self.cost_usd / self.calls, 8) if self.calls else None,
            "cost_usd": round(self.cost_usd, 8),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "mean_similarity": round(self.similarity_sum / self.similarity_count, 4) if self.similarity_count else None,
            "compared": self.similarity_count,
            "finish_reasons": dict(self.finish_reasons),
            "skipped": dict(self.skipped),
        }

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in _SCALARS}
        state["finish_reasons"] = dict(self.finish_reasons)
        state["skipped"] = dict(self.skipped)
        state["latencies_ms"] = list(self.latencies_ms)
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Tally:
        tally = cls(**{name: type(getattr(cls(), name))(state.get(name, 0)) for name in _SCALARS})
        tally.finish_reasons = {str(k): int(v) for k, v in dict(state.get("finish_reasons", {})).items()}
        tally.skipped = {str(k): int(v) for k, v in dict(state.get("skipped", {})).items()}
        tally.latencies_ms.extend(float(v) for v in list(state.get("latencies_ms", []))[-LATENCY_SAMPLES:])
        return tally


_SCALARS = ("calls", "successes", "cost_usd", "input_tokens", "output_tokens", "similarity_sum", "similarity_count")


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)], 2)


@dataclass(slots=True)
class ShadowBook:
    """Every route's tallies (``PRIMARY`` and each shadow ``provider/model``), and the day's shadow spend."""

    routes: dict[str, dict[str, Tally]] = field(default_factory=dict)
    day: str = ""  # UTC date of ``spent_usd``
    spent_usd: float = 0.0
    dropped: int = 0  # calls dropped at the concurrency cap, every route

    def tally(self, route_key: str, model: str) -> Tally:
        return self.routes.setdefault(route_key, {}).setdefault(model, Tally())

    def spend(self, day: str, cost_usd: float) -> None:
        self.roll(day)
        self.spent_usd += cost_usd

    def roll(self, day: str) -> None:
        """A new UTC day starts the shadow budget afresh."""
        if day != self.day:
            self.day, self.spent_usd = day, 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "spent_today_usd": round(self.spent_usd, 8),
            "dropped_at_concurrency_cap": self.dropped,
            "routes": {key: {m: t.summary() for m, t in tallies.items()} for key, tallies in self.routes.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        routes = {key: {m: t.to_dict() for m, t in tallies.items()} for key, tallies in self.routes.items()}
        return {"version": 1, "day": self.day, "spent_usd": self.spent_usd, "dropped": self.dropped, "routes": routes}

    @classmethod
    def from_dict(cls, state: object) -> ShadowBook:
        """The saved book; an empty one for anything of the wrong shape (never raises)."""
        if not isinstance(state, dict) or state.get("version") != 1:
            return cls()
        try:
            routes = {
                str(key): {str(m): Tally.from_dict(t) for m, t in dict(tallies).items()}
                for key, tallies in dict(state.get("routes", {})).items()
            }
            return cls(routes, str(state.get("day", "")), float(state.get("spent_usd", 0.0)), int(state["dropped"]))
        except (TypeError, ValueError, KeyError, AttributeError):
            return cls()
