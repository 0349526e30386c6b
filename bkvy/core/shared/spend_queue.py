"""Spend waiting for Redis (US dollars per (owner, month): a client key's or a tenant's), shared by
``shared.client_keys`` and ``shared.tenants``.

A request's cost is queued at once, off the request path; a background task adds what is queued in one pipeline
round trip, woken by each new cost and by Redis coming back. While Redis is down the queue keeps it for the next
flush, so nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from bkvy.core.shared.state import SharedState, SharedStateDown

Slot = tuple[str, str]  # (owner id, month "YYYY-MM")
# Adds one owner's spend for one month to a pipeline: (pipeline, owner id, month, usd).
SpendWriter = Callable[[Any, str, str, float], None]


class SpendQueue:
    def __init__(self, state: SharedState, write: SpendWriter, *, task_name: str) -> None:
        self._state = state
        self._write = write
        self._task_name = task_name
        self._pending: dict[Slot, float] = {}
        self._wake = asyncio.Event()
        self._is_stopping = False
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, slot: Slot, usd: float) -> None:
        """Queue ``usd`` for ``slot``; the flusher sends it at once (or when Redis returns)."""
        self._pending[slot] = self._pending.get(slot, 0.0) + usd
        self._wake.set()

    def pending(self, slot: Slot) -> float:
        """What ``slot`` has queued and Redis does not count yet."""
        return self._pending.get(slot, 0.0)

    @property
    def total_usd(self) -> float:
        """Everything queued, over every slot."""
        return sum(self._pending.values())

    def start(self) -> None:
        self._state.on_change(self._on_state_change)
        self._flusher = asyncio.create_task(self._flush_forever(), name=self._task_name)

    async def stop(self) -> None:
        """Let the flusher finish (a pipeline cut by a cancellation can hang redis' client), then flush once more."""
        if self._flusher is not None:
            self._is_stopping = True
            self._wake.set()
            await self._flusher
            self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        """Add what is queued to Redis in one round trip; kept for later when Redis is down."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self._state.call(lambda client: self._send(client, batch))
        except SharedStateDown:
            for slot, usd in batch.items():
                self._pending[slot] = self._pending.get(slot, 0.0) + usd

    async def _send(self, client: Redis, batch: dict[Slot, float]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for (owner_id, month), usd in batch.items():
                self._write(pipe, owner_id, month, usd)
            await pipe.execute()

    async def _flush_forever(self) -> None:
        while not self._is_stopping:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()  # bounded by REDIS_TIMEOUT_MS

    def _on_state_change(self, is_up: bool) -> None:
        if is_up and self._pending:
            self._wake.set()
