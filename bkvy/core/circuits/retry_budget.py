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

    def record_request(self, provider: str, model: str) -> None:
        """Count a first attempt."""
        self._window(self._requests, provider, model).add(self._clock.now())

    def try_acquire_retry(self, provider: str, model: str) -> bool:
        """True (and the retry is counted) when the budget allows one more retry now."""
        now = self._clock.now()
        requests, _ = self._window(self._requests, provider, model).totals(now)
        retries = self._window(self._retries, provider, model)
        allowed = max(self._min_retries, math.floor(self._retry_ratio * requests))
        if retries.totals(now)[0] >= allowed:
            return False
        retries.add(now)
        return True

    def _window(self, windows: dict[tuple[str, str], BucketWindow], provider: str, model: str) -> BucketWindow:
        window = windows.get((provider, model))
        if window is None:
            window = windows[(provider, model)] = BucketWindow(self._window_seconds, 10)
        return window
