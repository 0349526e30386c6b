"""Rate-limit windows shared through a real redis-server: the Lua script driven by a fake clock, and two
RateLimiters (two replicas) over one Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from bkvy.clock import FakeClock
from bkvy.core.limits.rate_limits import LaneKey, LaneLimits, RateLimiter, RateLimitExceeded
from bkvy.core.shared.state import SharedState
from bkvy.core.shared.windows import RedisWindows, lane_tag
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

LANE = LaneKey("sim", "k1", "m1")


class _Recording(RedisWindows):
    """Keeps the script's ``now`` of every slot taken (the clock moves on while the reply travels)."""

    def __init__(self, state: SharedState, starts: list[float]) -> None:
        super().__init__(state)
        self._starts = starts

    async def take(self, key: LaneKey, limits: LaneLimits, now_wall: float, tokens: int) -> float | None:
        wait = await super().take(key, limits, now_wall, tokens)
        if wait == 0.0:
            self._starts.append(now_wall)
        return wait


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[SharedState]:  # noqa: F811
    state = SharedState(redis_server.url, prefix="t:", timeout_seconds=1.0, clock=FakeClock())
    await state.start()
    try:
        yield state
    finally:
        await state.stop()


async def test_script_takes_rpm_then_answers_the_wait_until_the_oldest_start_leaves(shared: SharedState) -> None:
    windows = RedisWindows(shared)
    limits = LaneLimits(rpm=3, rpd=None, tpm=None)
    assert [await windows.take(LANE, limits, 1000.0 + i, 0) for i in range(3)] == [0.0, 0.0, 0.0]
    assert await windows.take(LANE, limits, 1010.0, 0) == pytest.approx(50.0)  # 1000 + 60 - 1010
    assert await windows.take(LANE, limits, 1060.0, 0) == 0.0  # the first start left the window
    assert await windows.take(LANE, limits, 1060.5, 0) == pytest.approx(0.5)  # the second leaves at 1061


async def test_script_counts_rpd_over_a_day(shared: SharedState) -> None:
    windows = RedisWindows(shared)
    limits = LaneLimits(rpm=100, rpd=2, tpm=None)
    assert await windows.take(LANE, limits, 0.0, 0) == 0.0
    assert await windows.take(LANE, limits, 100.0, 0) == 0.0
    assert await windows.take(LANE, limits, 200.0, 0) == pytest.approx(86_200.0)
    assert await windows.take(LANE, limits, 86_400.0, 0) == 0.0


async def test_script_reserves_tokens_against_tpm(shared: SharedState) -> None:
    windows = RedisWindows(shared)
    limits = LaneLimits(rpm=None, rpd=None, tpm=1000)
    assert await windows.take(LANE, limits, 0.0, 600) == 0.0
    assert await windows.take(LANE, limits, 10.0, 300) == 0.0
    assert await windows.take(LANE, limits, 20.0, 200) == pytest.approx(40.0)  # needs the 600 gone (at 60)
    assert await windows.take(LANE, limits, 20.0, 100) == 0.0  # fits
    assert await windows.take(LANE, limits, 60.0, 200) == 0.0


async def test_a_provider_block_is_read_by_the_script(shared: SharedState) -> None:
    windows = RedisWindows(shared)
    limits = LaneLimits(rpm=10, rpd=None, tpm=None)
    windows.block(LANE, 130.0, 100.0)
    await asyncio.gather(*windows._pending)
    assert await windows.take(LANE, limits, 100.0, 0) == pytest.approx(30.0)
    windows.block(LANE, 110.0, 100.0)  # an earlier end never shortens a block
    await asyncio.gather(*windows._pending)
    assert await windows.take(LANE, limits, 120.0, 0) == pytest.approx(10.0)
    assert await windows.take(LANE, limits, 130.0, 0) == 0.0


async def test_a_lane_s_keys_share_one_hash_tag(shared: SharedState) -> None:
    windows = RedisWindows(shared)
    assert lane_tag("t:", LANE) == "{t:sim:k1:m1}"
    await windows.take(LANE, LaneLimits(1, 1, 10), 0.0, 1)
    keys = sorted(key.decode() for key in await shared.client.keys("{t:sim:k1:m1}*"))
    assert keys == ["{t:sim:k1:m1}:rpd", "{t:sim:k1:m1}:rpm", "{t:sim:k1:m1}:tpm"]


async def test_two_replicas_never_take_more_than_rpm_in_any_window(redis_server: RedisServer) -> None:  # noqa: F811
    clock = FakeClock()
    starts: list[float] = []  # the script's `now` of each take that succeeded
    states = [SharedState(redis_server.url, prefix="t:", timeout_seconds=1.0, clock=clock) for _ in range(2)]
    limiters = []
    for state in states:
        await state.start()
        limiter = RateLimiter(clock)
        limiter.configure(LANE, rpm=5, rpd=None)
        limiter.share(_Recording(state, starts))
        limiters.append(limiter)

    async def one(limiter: RateLimiter) -> None:
        with contextlib.suppress(RateLimitExceeded):
            await limiter.acquire(LANE, deadline=clock.now() + 300.0)

    tasks = [asyncio.create_task(one(limiters[i % 2])) for i in range(23)]
    for _ in range(2000):  # drive the fake clock a second a step until every request is done (~4 minutes)
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.001)  # real I/O to Redis happens between steps
        clock.advance(1.0)
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.print_stack()
    assert not pending
    for state in states:
        await state.stop()
    assert len(starts) == 23
    for start in starts:
        assert sum(1 for other in starts if start <= other < start + 60.0) <= 5
    assert limiters[0].try_acquire(LANE) is None  # a shared lane is never taken without asking Redis


async def _concurrent_takes(shared: SharedState, rpm: int, count: int) -> tuple[int, int, int]:
    """``count`` requests at once on a shared lane, none allowed to wait (max wait 0, as by default): (taken,
    refused, starts in Redis's rpm window)."""
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.configure(LANE, rpm=rpm, rpd=None)
    limiter.share(RedisWindows(shared))
    outcomes = await asyncio.gather(
        *(limiter.acquire(LANE, deadline=clock.now()) for _ in range(count)), return_exceptions=True
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, RateLimitExceeded)]
    assert len(refused) + sum(1 for outcome in outcomes if not isinstance(outcome, BaseException)) == count
    in_redis = int(await shared.client.zcard(lane_tag(shared.prefix, LANE) + ":rpm"))
    return count - len(refused), len(refused), in_redis


async def test_concurrent_requests_on_a_free_shared_lane_all_start_without_waiting(shared: SharedState) -> None:
    # each asks Redis at once: a request never has to queue behind another's round trip (with max wait 0 that
    # queueing was a 429 for every request but the first)
    assert await _concurrent_takes(shared, rpm=100, count=16) == (16, 0, 16)


async def test_concurrent_requests_on_a_full_shared_lane_take_exactly_the_limit(shared: SharedState) -> None:
    assert await _concurrent_takes(shared, rpm=5, count=12) == (5, 7, 5)
