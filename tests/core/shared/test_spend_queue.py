"""SpendQueue over a real redis-server: spend queued while Redis is down is kept, and sent once Redis is back
without waiting for another request's cost (client keys and tenants share it)."""

from __future__ import annotations

import asyncio
from typing import Any

from bkvy.clock import FakeClock
from bkvy.core.shared.spend_queue import SpendQueue
from bkvy.core.shared.state import SharedState
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture


def _write(pipe: Any, owner_id: str, month: str, usd: float) -> None:
    pipe.hincrbyfloat(f"t:spend:{owner_id}", month, usd)


async def _spent(state: SharedState, owner_id: str) -> float:
    value = await state.call(lambda client: client.hget(f"t:spend:{owner_id}", "2026-12"))
    return float(value or 0.0)


async def test_spend_queued_while_down_is_sent_when_redis_returns(redis_server: RedisServer) -> None:  # noqa: F811
    state = SharedState(redis_server.url, prefix="t:", timeout_seconds=2.0, clock=FakeClock())
    await state.start()
    queue = SpendQueue(state, _write, task_name="test-spend")
    queue.start()
    queue.add(("acme", "2026-12"), 1.5)
    async with asyncio.timeout(10):
        while await _spent(state, "acme") != 1.5:  # the flusher, woken by the cost
            await asyncio.sleep(0.01)
    redis_server.kill()
    queue.add(("acme", "2026-12"), 0.25)
    await queue.flush()  # Redis down: kept, not lost
    assert queue.pending(("acme", "2026-12")) == 0.25 and queue.total_usd == 0.25
    redis_server.start()  # empty: no persistence in tests
    assert await state.beat()  # up again: the queue's listener wakes the flusher, no new cost needed
    async with asyncio.timeout(10):
        while len(queue):
            await asyncio.sleep(0.01)
    assert await _spent(state, "acme") == 0.25
    await queue.stop()
    await state.stop()
