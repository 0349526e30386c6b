"""Sliding windows and FIFO queues, driven by a FakeClock: nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.clock import FakeClock
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter, RateLimitExceeded

LANE = LaneKey("openai", "k1", "gpt")


def _limiter(clock: FakeClock, rpm: int | None = 2, rpd: int | None = None) -> RateLimiter:
    limiter = RateLimiter(clock)
    limiter.configure(LANE, rpm=rpm, rpd=rpd)
    return limiter


def test_rpm_window_admits_up_to_the_limit_then_reports_the_wait():
    clock = FakeClock()
    limiter = _limiter(clock)
    assert limiter.try_acquire(LANE) and limiter.try_acquire(LANE)
    assert not limiter.try_acquire(LANE)
    clock.advance(15)
    assert limiter.view(LANE).rate_limit_wait_seconds == pytest.approx(45)
    clock.advance(45)
    assert limiter.try_acquire(LANE)


def test_many_requests_may_be_in_flight_on_one_key():
    limiter = _limiter(FakeClock(), rpm=100)
    assert all(limiter.try_acquire(LANE) for _ in range(100))


def test_daily_limit_is_a_long_wait_not_a_block_until_midnight():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=None, rpd=1)
    assert limiter.try_acquire(LANE)
    clock.advance(3600)
    assert limiter.view(LANE).rate_limit_wait_seconds == pytest.approx(86400 - 3600)


def test_provider_retry_after_blocks_the_lane():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=None)
    limiter.block_until(LANE, 30)
    assert not limiter.try_acquire(LANE)
    clock.advance(29.9)
    assert not limiter.try_acquire(LANE)
    clock.advance(0.2)
    assert limiter.try_acquire(LANE)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_waiters_are_served_in_fifo_order_when_slots_free():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=1)
    assert limiter.try_acquire(LANE)
    order: list[str] = []

    async def wait(name: str) -> None:
        await limiter.acquire(LANE, deadline=clock.now() + 300)
        order.append(name)

    tasks = [asyncio.create_task(wait(name)) for name in ("a", "b", "c")]
    await _settle()
    assert limiter.view(LANE).queue_depth == 3
    for _ in range(3):
        clock.advance(60)
        await _settle()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]


async def test_waiter_gives_up_when_its_turn_comes_after_the_deadline():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=1)
    limiter.try_acquire(LANE)
    with pytest.raises(RateLimitExceeded) as raised:
        await limiter.acquire(LANE, deadline=clock.now() + 10)
    assert raised.value.retry_after_seconds == pytest.approx(60)


async def test_queue_wait_grows_with_the_requests_ahead():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=1)
    limiter.try_acquire(LANE)
    waiter = asyncio.create_task(limiter.acquire(LANE, deadline=clock.now() + 500))
    await _settle()
    view = limiter.view(LANE)
    assert view.rate_limit_wait_seconds == pytest.approx(60)
    assert view.queue_wait_seconds == pytest.approx(60)
    clock.advance(60)
    waited = await waiter
    assert waited.rate_limit_seconds == pytest.approx(60) and waited.queue_seconds == 0


async def test_cancelled_head_hands_the_turn_to_the_next_waiter():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=1)
    limiter.try_acquire(LANE)
    first = asyncio.create_task(limiter.acquire(LANE, deadline=clock.now() + 500))
    second = asyncio.create_task(limiter.acquire(LANE, deadline=clock.now() + 500))
    await _settle()
    first.cancel()
    await _settle()
    clock.advance(60)
    waited = await second
    assert waited.total_seconds == pytest.approx(60)
    assert limiter.view(LANE).queue_depth == 0
