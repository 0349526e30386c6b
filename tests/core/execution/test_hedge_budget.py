from __future__ import annotations

import random

import pytest

from bkvy.clock import FakeClock
from bkvy.core.execution.hedge_budget import HedgeBudget


def test_half_of_calls_wanting_a_hedge_stay_within_five_percent_per_window() -> None:
    clock = FakeClock(start=0.0)
    budget = HedgeBudget(clock, percent=5)
    rng = random.Random(4)
    requests_by_second: list[int] = []
    hedges_by_second: list[int] = []
    for _ in range(120):  # 2 minutes at 20 requests/s
        requests = hedges = 0
        for _ in range(20):
            budget.record_request()
            requests += 1
            if rng.random() < 0.5 and budget.try_acquire_hedge():
                hedges += 1
            clock.advance(0.05)
        requests_by_second.append(requests)
        hedges_by_second.append(hedges)
    for end in range(10, 121):  # every 10 s window
        window_requests = sum(requests_by_second[end - 10 : end])
        window_hedges = sum(hedges_by_second[end - 10 : end])
        assert window_hedges <= max(1, 0.05 * window_requests)
    assert sum(hedges_by_second) >= 0.04 * sum(requests_by_second)  # the budget is used, not starved


def test_a_quiet_gateway_still_gets_one_hedge_per_window() -> None:
    clock = FakeClock(start=0.0)
    budget = HedgeBudget(clock, percent=5)
    budget.record_request()
    assert budget.try_acquire_hedge()
    budget.record_request()
    assert not budget.try_acquire_hedge()  # 5 % of 2 requests rounds down; the minimum is spent
    clock.advance(5.0)
    assert not budget.try_acquire_hedge()


def test_the_window_slides_and_old_hedges_free_the_budget() -> None:
    clock = FakeClock(start=0.0)
    budget = HedgeBudget(clock, percent=5)
    for _ in range(40):
        budget.record_request()
    assert [budget.try_acquire_hedge() for _ in range(3)] == [True, True, False]  # 5 % of 40
    clock.advance(10.0)  # the 40 requests and the 2 hedges left the window
    assert budget.try_acquire_hedge()  # the minimum again
    assert not budget.try_acquire_hedge()


def test_a_refused_hedge_is_not_counted() -> None:
    clock = FakeClock(start=0.0)
    budget = HedgeBudget(clock, percent=10)
    for _ in range(20):
        budget.record_request()
    assert budget.try_acquire_hedge() and budget.try_acquire_hedge()
    assert not budget.try_acquire_hedge() and not budget.try_acquire_hedge()
    for _ in range(10):
        budget.record_request()
    assert budget.try_acquire_hedge()  # 10 % of 30 = 3: refusals spent nothing
    assert not budget.try_acquire_hedge()


def test_exactly_five_percent_of_one_hundred_is_five() -> None:
    budget = HedgeBudget(FakeClock(start=0.0), percent=5)
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_acquire_hedge() for _ in range(10)) == 5


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        HedgeBudget(FakeClock(), percent=-1)
