"""When a request may race a second attempt (SPEC §6): the hedge delay and who decides it.

The idea is Dean & Barroso's "The Tail at Scale" (CACM 2013): once an attempt has taken longer than the
95th percentile of its model's learned latency, send a copy to another candidate and use whichever answers
first. The delay is that p95 times ``HEDGE_DELAY_FACTOR``, never under ``HEDGE_MIN_DELAY_MS``, and there is no
learned delay until the model has enough observations (then only the soft timeout starts a hedge).
"""

from __future__ import annotations

from dataclasses import dataclass

from bkvy.core.execution.hedge_budget import HedgeBudget
from bkvy.core.routing.latency import LatencyTracker

HEDGE_QUANTILE = 0.95


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Hedging as configured (``HEDGING=true``); the executor has none when it is off."""

    budget: HedgeBudget
    min_delay_seconds: float = 0.25
    delay_factor: float = 1.0

    def delay_seconds(self, latency: LatencyTracker, model_key: tuple[str, str]) -> float | None:
        """Seconds after an attempt starts at which to hedge it; None while the model's p95 is not learned."""
        p95 = latency.quantile_seconds(model_key, HEDGE_QUANTILE)
        if p95 is None:
            return None
        return max(self.min_delay_seconds, p95 * self.delay_factor)
