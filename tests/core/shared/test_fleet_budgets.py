"""Retry and hedge budgets on fleet totals (issue 17): two processes' budgets, one real redis-server; the
exchange is driven by calling ``sync``, and the windows by a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.retry_budget import RetryBudget
from bkvy.core.execution.hedge_budget import HedgeBudget
from bkvy.core.shared.budgets import FleetBudgets
from bkvy.core.shared.state import SharedState
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture


class _Process:
    def __init__(self, state: SharedState, clock: FakeClock) -> None:
        self.state = state
        self.retry = RetryBudget(clock, retry_ratio=0.2, min_retries=3, window_seconds=10.0)
        self.hedge = HedgeBudget(clock, percent=10.0, min_hedges=1, window_seconds=10.0)
        self.budgets = FleetBudgets(state, clock=clock, retry=self.retry, hedge=self.hedge)


@pytest.fixture
async def two(redis_server: RedisServer, fake_clock: FakeClock) -> AsyncIterator[list[_Process]]:  # noqa: F811
    async with AsyncExitStack() as stack:
        processes = []
        for _ in range(2):
            state = SharedState(redis_server.url, prefix="t:", timeout_seconds=1.0, clock=fake_clock)
            await state.start()
            stack.push_async_callback(state.stop)
            processes.append(_Process(state, fake_clock))
        yield processes


def _retries_taken(budget: RetryBudget, attempts: int = 50) -> int:
    return sum(budget.try_acquire_retry("p", "m") for _ in range(attempts))


async def test_a_retry_storm_on_one_process_spends_the_others_budget(two: list[_Process]) -> None:
    a, b = two
    for _ in range(10):
        a.retry.record_request("p", "m")
    assert _retries_taken(a.retry) == 3  # min_retries: 10 requests allow 2, at least 3
    assert await a.budgets.sync() and await b.budgets.sync()
    assert _retries_taken(b.retry) == 0  # the fleet has spent its 3


async def test_requests_anywhere_widen_everyones_retry_budget(two: list[_Process], fake_clock: FakeClock) -> None:
    a, b = two
    for _ in range(40):
        b.retry.record_request("p", "m")
    assert await b.budgets.sync() and await a.budgets.sync()
    a.retry.record_request("p", "m")
    assert _retries_taken(a.retry) == 8  # 20 % of the fleet's 41 requests, not of A's 1
    fake_clock.advance(11.0)  # past the window: the exchanged counts are read again over the new window
    assert await b.budgets.sync() and await a.budgets.sync()
    assert _retries_taken(a.retry) == 3


async def test_hedges_use_fleet_totals(two: list[_Process]) -> None:
    a, b = two
    for _ in range(30):
        a.hedge.record_request()
        b.hedge.record_request()
    assert sum(a.hedge.try_acquire_hedge() for _ in range(10)) == 3  # 10 % of A's own 30
    assert await a.budgets.sync() and await b.budgets.sync()
    assert sum(b.hedge.try_acquire_hedge() for _ in range(10)) == 3  # 10 % of 60, minus A's 3


async def test_redis_down_each_budget_on_its_own_counts(two: list[_Process], redis_server: RedisServer) -> None:  # noqa: F811
    a, b = two
    for _ in range(10):
        a.retry.record_request("p", "m")
    assert _retries_taken(a.retry) == 3
    assert await a.budgets.sync() and await b.budgets.sync()
    redis_server.kill()
    assert not await b.budgets.sync()
    assert _retries_taken(b.retry) == 3  # A's counts are no longer known: B's own minimum
