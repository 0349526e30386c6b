"""The hedge budget (issue 13): hedged requests cannot multiply the gateway's upstream load."""

from __future__ import annotations

import math

from bkvy.clock import Clock
from bkvy.core.circuits.window import BucketWindow


class HedgeBudget:
    """Caps hedges across the whole gateway, as the retry budget caps retries per (provider, model).

    Hedges may be at most ``percent`` % of the requests counted over the last ``window_seconds`` (a sliding
    window in 10 buckets, as the retry budget's), and at least ``min_hedges`` per window so a quiet gateway
    can still hedge its one stuck request.
    """

    def __init__(
        self, clock: Clock, *, percent: float = 5.0, min_hedges: int = 1, window_seconds: float = 10.0
    ) -> None:
        if percent < 0 or min_hedges < 0 or window_seconds <= 0:
            raise ValueError("percent and min_hedges must be >= 0, window_seconds > 0")
        self._clock = clock
        self._ratio = percent / 100.0
        self._min_hedges = min_hedges
        self._requests = BucketWindow(window_seconds, 10)
        self._hedges = BucketWindow(window_seconds, 10)
        self.window_seconds = window_seconds
        # REDIS_URL (core/shared/budgets.py): [requests, hedges] not yet sent to the other processes, and theirs
        self._unshared: list[int] | None = None
        self._others = (0, 0)

    def record_request(self) -> None:
        """Count one request (once per request, hedged or not, before any hedge it may take)."""
        self._requests.add(self._clock.now())
        if self._unshared is not None:
            self._unshared[0] += 1

    def try_acquire_hedge(self) -> bool:
        """True (and the hedge is counted) when the budget allows one more hedge now; False spends nothing.
        With ``share``, over this process's counts plus the other processes' last exchanged ones."""
        now = self._clock.now()
        requests, _ = self._requests.totals(now)
        others_requests, others_hedges = self._others
        # 5 % of 100 is 5, not 4
        allowed = max(self._min_hedges, math.floor(self._ratio * (requests + others_requests) + 1e-9))
        if self._hedges.totals(now)[0] + others_hedges >= allowed:
            return False
        self._hedges.add(now)
        if self._unshared is not None:
            self._unshared[1] += 1
        return True

    def share(self) -> None:
        """From now on keep the counts ``take_unshared`` hands to the other processes."""
        self._unshared = [0, 0]

    def take_unshared(self) -> tuple[int, int]:
        """(requests, hedges) counted since the last call."""
        taken, self._unshared = self._unshared or [0, 0], [0, 0]
        return taken[0], taken[1]

    def set_others(self, requests: int, hedges: int) -> None:
        """The other processes' requests and hedges over the last window."""
        self._others = (requests, hedges)
