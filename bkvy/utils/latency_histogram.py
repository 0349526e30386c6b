"""A mergeable latency histogram: fixed log-spaced buckets from 1 ms to 600 s, ~25 % apart.

Histograms of different days, or of before and after a restart, add up bucket by bucket, so percentiles
over any range come from all of its requests. An estimate lies in the bucket of the true value and is
interpolated inside it (on a log scale), then clamped to the observed min and max.
"""

from __future__ import annotations

_BOUND_COUNT = 60
_MIN_BOUND_MS = 1.0
_MAX_BOUND_MS = 600_000.0
# Upper bucket edges; bucket i holds (bounds[i-1], bounds[i]], a last bucket holds everything above.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(
    round(_MIN_BOUND_MS * (_MAX_BOUND_MS / _MIN_BOUND_MS) ** (i / (_BOUND_COUNT - 1)), 6) for i in range(_BOUND_COUNT)
)


def estimate_percentile_ms(counts: list[int], quantile: float, min_ms: float, max_ms: float) -> float | None:
    """Latency below which ``quantile`` (0..1) of the counted requests fall; None when nothing is counted."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(quantile * total, 1e-9)
    cumulative = 0
    for index, count in enumerate(counts):
        if count and cumulative + count >= rank:
            low = max(LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0, min_ms)
            high = min(LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else max_ms, max_ms)
            fraction = (rank - cumulative) / count
            if low <= 0.0 or high <= low:
                return low + (high - low) * fraction
            return low * (high / low) ** fraction
        cumulative += count
    return max_ms
