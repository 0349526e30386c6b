"""What one sent attempt teaches the bandit (issue 18 §3): a reward in [0, 1], or nothing.

A success within the request's deadline earns 1 minus penalties for its cost and its latency; a failure or a
timeout earns 0; an attempt that says nothing about the model (skipped by its circuit or rate limit, refused by
the upstream's own rate limit, the request's own fault, cut by the client or by a faster hedge) teaches nothing.
Penalty weights are the request's ``Weights`` (``optimize``) when it has them, else the route's knobs.
"""

from __future__ import annotations

from typing import NamedTuple

from bkvy.core.routing.scoring import Weights
from bkvy.models.outcomes import Attempt, AttemptOutcome

_FAILURES = frozenset(
    {
        AttemptOutcome.AUTH,
        AttemptOutcome.SERVER,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.CONNECTION,
        AttemptOutcome.NOT_FOUND,
        AttemptOutcome.CANCELLED_HARD_TIMEOUT,  # the gateway's deadline: a timeout
        AttemptOutcome.CANCELLED_SOFT_TIMEOUT,  # no answer by the soft timeout: switched away from
    }
)


class Penalties(NamedTuple):
    """How much reward a success loses for cost and latency, and at what cost and latency it loses it all."""

    cost: float
    latency: float
    cost_scale_usd: float
    latency_scale_seconds: float

    def weighted(self, weights: Weights | None) -> Penalties:
        """The request's weights, when it has them, instead of the configured penalties."""
        if weights is None:
            return self
        return self._replace(cost=weights.cost, latency=weights.latency)


def attempt_reward(attempt: Attempt, penalties: Penalties, *, deadline_seconds: float | None) -> float | None:
    """The reward of one attempt, or None when it teaches nothing. A success slower than ``deadline_seconds``
    (the request's max wait, when it has one) counts as a failure."""
    outcome = attempt.outcome
    if outcome in _FAILURES:
        return 0.0
    if outcome is not AttemptOutcome.SUCCESS:
        return None
    seconds = attempt.duration_ms / 1000.0
    if deadline_seconds is not None and seconds > deadline_seconds:
        return 0.0
    cost_share = min(1.0, attempt.cost_usd / penalties.cost_scale_usd)
    latency_share = min(1.0, seconds / penalties.latency_scale_seconds)
    reward = 1.0 - penalties.cost * cost_share - penalties.latency * latency_share
    return min(1.0, max(0.0, reward))
