"""SharedState's up/down state over a real redis-server: bounded calls, one log line per transition, and the
replicas counted from their heartbeats."""

from __future__ import annotations

import logging

import pytest

from bkvy.clock import FakeClock
from bkvy.core.shared.state import SharedState, SharedStateDown
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture


async def test_down_is_logged_once_and_calls_fail_fast_until_a_beat_finds_redis_again(
    redis_server: RedisServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = SharedState(redis_server.url, prefix="t:", timeout_seconds=0.5, clock=FakeClock())
    transitions: list[bool] = []
    state.on_change(transitions.append)
    await state.start()
    assert state.is_up and await state.call(lambda client: client.ping())
    redis_server.kill()
    with caplog.at_level(logging.INFO, logger="bkvy.core.shared.state"):
        for _ in range(20):
            with pytest.raises(SharedStateDown):
                await state.call(lambda client: client.ping())
        assert not await state.beat()
        assert not state.is_up and state.down_reason is not None and "redis" in state.down_reason
        redis_server.start()
        assert await state.beat()
    events = [record.getMessage() for record in caplog.records]
    assert events == ["shared_state_down", "shared_state_up"]
    assert transitions == [True, False, True]  # up at start, down, up again
    await state.stop()


async def test_live_replicas_counts_heartbeats_and_a_stopped_replica_leaves(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    states = [SharedState(redis_server.url, prefix="t:", timeout_seconds=0.5, clock=FakeClock()) for _ in range(3)]
    for state in states:
        await state.start()
    assert await states[0].beat() and states[0].live_replicas() == 3
    await states[2].stop()
    assert await states[0].beat() and states[0].live_replicas() == 2
    assert len({state.replica_id for state in states}) == 3
    for state in states[:2]:
        await state.stop()


async def test_redis_unreachable_at_start_is_down_not_an_error() -> None:
    state = SharedState("redis://127.0.0.1:1/0", prefix="t:", timeout_seconds=0.2, clock=FakeClock())
    await state.start()
    assert not state.is_up and state.live_replicas() == 1
    await state.stop()
