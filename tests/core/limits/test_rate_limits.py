"""Sliding windows and FIFO queues, driven by a FakeClock: nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.clock import FakeClock
from bkvy.core.limits.rate_limits import NO_TOKENS, LaneKey, RateLimiter, RateLimitExceeded

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


# -- tpm: tokens reserved at the start, settled at the end (injected clock) ----------------------------------------


def _tpm_limiter(clock: FakeClock, tpm: int = 100, rpm: int | None = None) -> RateLimiter:
    limiter = RateLimiter(clock)
    limiter.configure(LANE, rpm=rpm, rpd=None, tpm=tpm)
    return limiter


def test_tpm_admits_reservations_up_to_the_limit_then_waits_for_enough_to_leave():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    assert limiter.try_acquire(LANE, 40) is not None
    clock.advance(10)
    assert limiter.try_acquire(LANE, 40) is not None
    assert limiter.try_acquire(LANE, 30) is None  # 80 + 30 > 100
    assert limiter.view(LANE).rate_limit_wait_seconds == 0.0  # not full: routing sees no wait
    assert limiter.try_acquire(LANE, 20) is not None  # exactly the limit
    assert limiter.view(LANE).rate_limit_wait_seconds == pytest.approx(50)  # full: until the first 40 leave
    clock.advance(50)
    assert limiter.try_acquire(LANE, 30) is not None


def test_settling_charges_what_was_billed_from_the_same_start():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    reservation = limiter.try_acquire(LANE, 90)
    assert reservation is not None
    assert limiter.try_acquire(LANE, 20) is None
    clock.advance(5)
    limiter.settle(reservation, 30)  # the provider billed less than max_tokens reserved
    assert limiter.status()[0]["used"] == {"tpm": 30}
    later = limiter.try_acquire(LANE, 70)
    assert later is not None
    limiter.settle(later, 75)  # and more than estimated: the window counts it
    assert limiter.try_acquire(LANE, 1) is None
    clock.advance(55)  # the first start leaves at 60 s, whatever its settled size
    assert limiter.status()[0]["used"] == {"tpm": 75}


def test_settling_a_reservation_that_already_left_the_window_changes_nothing():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    reservation = limiter.try_acquire(LANE, 50)
    assert reservation is not None
    clock.advance(61)
    assert limiter.try_acquire(LANE, 10) is not None
    limiter.settle(reservation, 500)
    assert limiter.status()[0]["used"] == {"tpm": 10}


def test_a_request_larger_than_the_whole_limit_waits_for_an_empty_window_then_goes():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    assert limiter.try_acquire(LANE, 10) is not None
    assert limiter.try_acquire(LANE, 250) is None
    clock.advance(60)
    assert limiter.try_acquire(LANE, 250) is not None


def test_a_lane_without_tpm_reserves_nothing_and_settles_nothing():
    clock = FakeClock()
    limiter = _limiter(clock, rpm=10)
    reservation = limiter.try_acquire(LANE, 10_000)
    assert reservation is NO_TOKENS
    limiter.settle(reservation, 99)
    assert reservation.tokens == 0 and "tpm" not in limiter.status()[0]["limits"]


def test_rates_status_lists_the_tpm_limit_and_the_tokens_used():
    clock = FakeClock()
    limiter = _tpm_limiter(clock, tpm=1000, rpm=5)
    assert limiter.try_acquire(LANE, 120) is not None
    row = limiter.status()[0]
    assert row["limits"] == {"rpm": 5, "tpm": 1000} and row["used"] == {"rpm": 1, "tpm": 120}


def test_a_full_tpm_window_is_never_kept_as_steady():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    lane = limiter.lane(LANE)
    assert limiter.try_acquire(LANE, 60) is not None
    view = lane.view(clock.now())
    assert lane.steady_until(clock.now(), view) == float("inf")  # time only frees tokens: the view holds
    assert limiter.try_acquire(LANE, 40) is not None
    view = lane.view(clock.now())
    assert view.rate_limit_wait_seconds == pytest.approx(60)
    assert lane.steady_until(clock.now(), view) == clock.now()


def test_a_settle_tells_routing_the_lane_changed():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    changed: list[LaneKey] = []
    limiter.on_change(changed.append)
    reservation = limiter.try_acquire(LANE, 100)
    assert reservation is not None
    changed.clear()
    limiter.settle(reservation, 10)
    assert changed == [LANE]


async def test_a_queued_request_waits_for_its_tokens_and_counts_those_queued_ahead():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    assert limiter.try_acquire(LANE, 80) is not None
    first = asyncio.create_task(limiter.acquire(LANE, deadline=clock.now() + 300, tokens=50))
    await _settle()
    view = limiter.view(LANE)
    assert view.queue_depth == 1
    # Behind 50 queued tokens, a further request needs 80 + 50 + 1 > 100: after the 80 leave (60 s), the 50 fit.
    assert view.rate_limit_wait_seconds == 0.0 and view.queue_wait_seconds == pytest.approx(60)
    clock.advance(60)
    await _settle()
    slot = await first
    assert slot.rate_limit_seconds == pytest.approx(60) and slot.reservation.tokens == 50


async def test_a_reservation_that_cannot_fit_before_the_deadline_raises_with_the_wait():
    clock = FakeClock()
    limiter = _tpm_limiter(clock)
    assert limiter.try_acquire(LANE, 90) is not None
    clock.advance(20)
    with pytest.raises(RateLimitExceeded) as exceeded:
        await limiter.acquire(LANE, deadline=clock.now() + 10, tokens=30)
    assert exceeded.value.retry_after_seconds == pytest.approx(40)
    assert limiter.view(LANE).queue_depth == 0
