"""Calls and failures over a sliding window, counted in fixed buckets: O(1) amortised per call."""

from __future__ import annotations

from collections import deque


class BucketWindow:
    """Counts calls and failures over a sliding window in fixed buckets: O(1) amortised per call."""

    __slots__ = ("_bucket_seconds", "_bucket_count", "_buckets", "calls", "failures")

    def __init__(self, window_seconds: float, bucket_count: int) -> None:
        self._bucket_seconds = window_seconds / bucket_count
        self._bucket_count = bucket_count
        self._buckets: deque[list[int]] = deque()  # [bucket index, calls, failures]
        self.calls = 0
        self.failures = 0

    def add(self, now: float, *, calls: int = 1, failures: int = 0) -> None:
        self._evict(now)
        index = int(now // self._bucket_seconds)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += calls
        bucket[2] += failures
        self.calls += calls
        self.failures += failures

    def totals(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window ending at ``now``."""
        self._evict(now)
        return self.calls, self.failures

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = 0

    def _evict(self, now: float) -> None:
        oldest_kept = int(now // self._bucket_seconds) - self._bucket_count + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            _, calls, failures = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures
