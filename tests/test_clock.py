"""MonotonicClock's Deadline keeps asyncio.timeout's contract. No wall-clock sleeping: a zero deadline fires
on the loop's next turn, and the awaited futures are never resolved otherwise."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.clock import MonotonicClock


async def test_expired_deadline_raises_timeout_error() -> None:
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        async with MonotonicClock().timeout(0):
            await never


async def test_block_that_finishes_in_time_is_untouched() -> None:
    async with MonotonicClock().timeout(3600):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_cancellation_from_outside_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def waits() -> None:
        async with MonotonicClock().timeout(3600):
            started.set()
            await asyncio.get_running_loop().create_future()

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_deadlines_report_to_the_one_that_expired() -> None:
    clock = MonotonicClock()
    never = asyncio.get_running_loop().create_future()
    async with clock.timeout(3600):
        with pytest.raises(TimeoutError):
            async with clock.timeout(0):
                await never
        await asyncio.sleep(0)  # the outer block goes on: its own deadline has not passed
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
