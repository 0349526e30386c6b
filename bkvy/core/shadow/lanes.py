"""A shadow call's rate-limit slot: taken only from a lane with spare room, never waited for.

The rule (docs/EVALUATION.md "Shadow traffic"): a shadow takes a slot with ``try_acquire`` only when, after it,
the lane could still start a quarter of its tightest window's limit (at least one request) at once, and nobody
is queued on it. So a shadow never queues, never makes a primary request wait behind it, and leaves a busy lane
alone. A lane shared through Redis (REDIS_URL) is skipped: taking its slot is a round trip that may queue.
"""

from __future__ import annotations

import math

from bkvy.core.limits.rate_limits import LaneKey, RateLimiter, TokenReservation

HEADROOM_SHARE = 0.25  # of the lane's tightest window limit, left for primary traffic


def take_spare_slot(limiter: RateLimiter, key: LaneKey, now: float, tokens: int) -> TokenReservation | None:
    """A slot on ``key``'s lane (``tokens`` reserved on a tpm lane) if the lane keeps its headroom after it;
    None when it would not, when requests queue on it, or when it is shared through Redis."""
    if limiter.is_shared(key):
        return None
    lane = limiter.lane(key)
    if lane.waiters:
        return None
    limits = [window.limit for window in lane.windows]
    headroom = max(1, math.ceil(min(limits) * HEADROOM_SHARE)) if limits else 0
    if lane.wait_seconds(now, headroom, tokens) > 0.0:
        return None
    return limiter.try_acquire(key, tokens)
