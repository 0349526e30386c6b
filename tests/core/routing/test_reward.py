"""The reward of one attempt: success minus cost and latency penalties, failures 0, skips nothing."""

from __future__ import annotations

import pytest

from bkvy.core.routing.reward import Penalties, attempt_reward
from bkvy.core.routing.scoring import Weights
from bkvy.models.outcomes import Attempt, AttemptOutcome

PENALTIES = Penalties(cost=0.2, latency=0.3, cost_scale_usd=0.01, latency_scale_seconds=10.0)


def _attempt(outcome: AttemptOutcome, duration_ms: float = 0.0, cost_usd: float = 0.0) -> Attempt:
    return Attempt("p", "m", "k", outcome, duration_ms, cost_usd=cost_usd)


def test_a_free_instant_success_earns_one() -> None:
    assert attempt_reward(_attempt(AttemptOutcome.SUCCESS), PENALTIES, deadline_seconds=None) == 1.0


def test_cost_and_latency_take_their_share_of_the_penalty() -> None:
    attempt = _attempt(AttemptOutcome.SUCCESS, duration_ms=5000, cost_usd=0.005)
    assert attempt_reward(attempt, PENALTIES, deadline_seconds=None) == pytest.approx(1 - 0.1 - 0.15)


def test_penalties_are_capped_at_their_scale_and_the_reward_clipped() -> None:
    attempt = _attempt(AttemptOutcome.SUCCESS, duration_ms=60_000, cost_usd=5.0)
    assert attempt_reward(attempt, PENALTIES, deadline_seconds=None) == pytest.approx(0.5)
    heavy = Penalties(cost=1.0, latency=1.0, cost_scale_usd=0.01, latency_scale_seconds=10.0)
    assert attempt_reward(attempt, heavy, deadline_seconds=None) == 0.0


def test_request_weights_replace_the_configured_penalties() -> None:
    weights = Weights(cost=0.0, latency=1.0, quality=0.0, load=0.0, health=0.0)
    attempt = _attempt(AttemptOutcome.SUCCESS, duration_ms=2000, cost_usd=5.0)
    assert attempt_reward(attempt, PENALTIES.weighted(weights), deadline_seconds=None) == pytest.approx(0.8)


def test_a_success_past_the_deadline_counts_as_a_failure() -> None:
    attempt = _attempt(AttemptOutcome.SUCCESS, duration_ms=3000)
    assert attempt_reward(attempt, PENALTIES, deadline_seconds=2.0) == 0.0
    assert attempt_reward(attempt, PENALTIES, deadline_seconds=4.0) == pytest.approx(0.91)


@pytest.mark.parametrize(
    "outcome",
    [
        AttemptOutcome.SERVER,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.CONNECTION,
        AttemptOutcome.AUTH,
        AttemptOutcome.NOT_FOUND,
        AttemptOutcome.CANCELLED_HARD_TIMEOUT,
        AttemptOutcome.CANCELLED_SOFT_TIMEOUT,
    ],
)
def test_failures_and_timeouts_earn_zero(outcome: AttemptOutcome) -> None:
    assert attempt_reward(_attempt(outcome, 100), PENALTIES, deadline_seconds=None) == 0.0


@pytest.mark.parametrize(
    "outcome",
    [
        AttemptOutcome.SKIPPED_CIRCUIT_OPEN,
        AttemptOutcome.SKIPPED_RATE_LIMITED,
        AttemptOutcome.RATE_LIMITED,
        AttemptOutcome.BAD_REQUEST,
        AttemptOutcome.CLIENT_DISCONNECTED,
        AttemptOutcome.CANCELLED_CLIENT_TIMEOUT,
        AttemptOutcome.HEDGE_LOST,
    ],
)
def test_skips_and_what_says_nothing_of_the_model_teach_nothing(outcome: AttemptOutcome) -> None:
    assert attempt_reward(_attempt(outcome, 100), PENALTIES, deadline_seconds=None) is None
