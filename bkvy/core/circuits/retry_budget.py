"""The retry budget (SPEC §6): retries cannot multiply a provider's outage."""

from __future__ import annotations

import math

from bkvy.clock import Clock
from bkvy.core.circuits.window import BucketWindow


class RetryBudget:
    """Caps retries per (provider, model) so retries cannot multiply an outage.

    Retries (attempts beyond the first) may be at most ``retry_ratio`` of the pair's requests over the
    last ``window_seconds``, and at least ``min_retries`` per window.
    """

    def __init__(
        self, clock: Clock, *, retry_ratio: float = 0.2, min_retries: int = 3, window_seconds: float = 10.0
    ) -> None:
        self._clock = clock
        self._retry_ratio = retry_ratio
        self._min_retries = min_retries
        self._window_seconds = window_seconds
        self._requests: dict[tuple[str, str], BucketWindow] = {}
        self._retries: dict[tuple[str, str], BucketWindow] = {}
        # REDIS_URL (core/shared/budgets.py): counts not yet sent to the other processes, and theirs
        self._unshared: dict[tuple[str, str], list[int]] | None = None  # pair -> [requests, retries]
        self._others: dict[tuple[str, str], tuple[int, int]] = {}

    @property
    def window_seconds(self) -> float:
        return self._window_seconds

    def record_request(self, provider: str, model: str) -> None:
        """Count a first attempt."""
        self._window(self._requests, provider, model).add(self._clock.now())
        if self._unshared is not None:
            self._unshared.setdefault((provider, model), [0, 0])[0] += 1

    def try_acquire_retry(self, provider: str, model: str) -> bool:
        """True (and the retry is counted) when the budget allows one more retry now. With ``share``, the ratio
        is taken over this process's counts plus the other processes' last exchanged ones."""
        now = self._clock.now()
        requests, _ = self._window(self._requests, provider, model).totals(now)
        retries = self._window(self._retries, provider, model)
        others_requests, others_retries = self._others.get((provider, model), (0, 0))
        allowed = max(self._min_retries, math.floor(self._retry_ratio * (requests + others_requests)))
        if retries.totals(now)[0] + others_retries >= allowed:
            return False
        retries.add(now)
        if self._unshared is not None:
            self._unshared.setdefault((provider, model), [0, 0])[1] += 1
        return True

    def share(self) -> None:
        """From now on keep the counts ``take_unshared`` hands to the other processes."""
        self._unshared = {}

    def take_unshared(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(requests, retries) per (provider, model) counted since the last call."""
        taken, self._unshared = self._unshared or {}, {}
        return {pair: (counts[0], counts[1]) for pair, counts in taken.items()}

    def set_others(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        """The other processes' (requests, retries) per (provider, model) over the last window."""
        self._others = counts

    def _window(self, windows: dict[tuple[str, str], BucketWindow], provider: str, model: str) -> BucketWindow:
        window = windows.get((provider, model))
        if window is None:
            window = windows[(provider, model)] = BucketWindow(self._window_seconds, 10)
        return window
