"""Retry and hedge budgets on the whole fleet's counts, approximately (issue 17; docs/SCALING.md,
"Statistics, budgets and logs").

Each process keeps its own budgets (``RetryBudget``, ``HedgeBudget``: the request path never waits on Redis).
Once every ``interval_seconds`` a background task sends the counts taken since its last exchange and reads the
others' back, in one pipelined round trip::

    <prefix>budget:<unix second>   hash: JSON [process, kind, provider, model, "n"|"x"] -> count; expires after
                                   the window plus a few seconds. kind "retry" (per provider and model) or
                                   "hedge" (provider and model ""); "n" counts requests, "x" retries or hedges.

The other processes' sums over the last ``window_seconds`` seconds go into each budget (``set_others``), which
then takes its ratio over its own counts plus theirs. How approximate: the others' counts are up to about two
intervals old (theirs and ours), and their window's edges are whole wall-clock seconds, so a burst can overshoot
the ratio by what the fleet does in ~2 s; Redis down: each process falls back to its own budget alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import defaultdict

from redis.asyncio import Redis

from bkvy.clock import Clock
from bkvy.core.circuits.retry_budget import RetryBudget
from bkvy.core.execution.hedge_budget import HedgeBudget
from bkvy.core.shared.state import SharedState, SharedStateDown, stop_task

__all__ = ["FleetBudgets"]

log = logging.getLogger(__name__)

_RETRY = "retry"
_HEDGE = "hedge"
_SPARE_SECONDS = 5  # a second's key outlives the window by this much


class FleetBudgets:
    def __init__(
        self,
        shared: SharedState,
        *,
        clock: Clock,
        retry: RetryBudget | None,
        hedge: HedgeBudget | None,
        interval_seconds: float = 1.0,
    ) -> None:
        self._shared = shared
        self._clock = clock
        self._retry = retry
        self._hedge = hedge
        self._interval_seconds = interval_seconds
        self._pending: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)  # not yet sent
        self._task: asyncio.Task[None] | None = None
        windows = [b.window_seconds for b in (retry, hedge) if b is not None]
        self._window_seconds = max(1, math.ceil(max(windows, default=10.0)))
        for budget in (retry, hedge):
            if budget is not None:
                budget.share()

    async def start(self) -> None:
        if self._retry is not None or self._hedge is not None:
            self._task = asyncio.create_task(self._run(), name="bkvy-fleet-budgets")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._interval_seconds)
            await self.sync()

    async def sync(self) -> bool:
        """Send this process's new counts, read the others' over the window into the budgets: one round trip.
        False when Redis is down (the counts are sent later; the budgets keep the others' last counts)."""
        self._take_counts()
        sent = dict(self._pending)
        second = int(self._clock.wall())
        try:
            rows = await self._shared.call(lambda client: self._exchange(client, sent, second))
        except SharedStateDown:
            self._clear_others()
            return False
        for field, count in sent.items():
            self._pending[field] -= count
            if self._pending[field] == 0:
                del self._pending[field]
        self._apply_others(rows)
        return True

    def _take_counts(self) -> None:
        if self._retry is not None:
            for (provider, model), (requests, retries) in self._retry.take_unshared().items():
                self._pending[(_RETRY, provider, model, "n")] += requests
                self._pending[(_RETRY, provider, model, "x")] += retries
        if self._hedge is not None:
            requests, hedges = self._hedge.take_unshared()
            self._pending[(_HEDGE, "", "", "n")] += requests
            self._pending[(_HEDGE, "", "", "x")] += hedges

    async def _exchange(
        self, client: Redis, sent: dict[tuple[str, str, str, str], int], second: int
    ) -> list[dict[bytes, bytes]]:
        pipe = client.pipeline(transaction=False)
        key = self._key(second)
        me = self._shared.replica_id
        increments = {field: count for field, count in sent.items() if count}
        for (kind, provider, model, counted), count in increments.items():
            pipe.hincrby(key, json.dumps([me, kind, provider, model, counted]), count)
        if increments:
            pipe.expire(key, self._window_seconds + _SPARE_SECONDS)
        for past in range(second - self._window_seconds + 1, second + 1):
            pipe.hgetall(self._key(past))
        replies = await pipe.execute()
        return list(replies[-self._window_seconds :])

    def _key(self, second: int) -> str:
        return f"{self._shared.prefix}budget:{second}"

    def _apply_others(self, rows: list[dict[bytes, bytes]]) -> None:
        me = self._shared.replica_id
        sums: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        for row in rows:
            for field, count in row.items():
                try:
                    who, kind, provider, model, counted = json.loads(field)
                    if who != me:
                        sums[(str(kind), str(provider), str(model), str(counted))] += int(count)
                except (ValueError, TypeError):
                    continue  # a field of another version: not counted
        if self._retry is not None:
            pairs = {(provider, model) for kind, provider, model, _ in sums if kind == _RETRY}
            self._retry.set_others({pair: (sums[(_RETRY, *pair, "n")], sums[(_RETRY, *pair, "x")]) for pair in pairs})
        if self._hedge is not None:
            self._hedge.set_others(sums[(_HEDGE, "", "", "n")], sums[(_HEDGE, "", "", "x")])

    def _clear_others(self) -> None:
        """Redis down: each budget on its own counts (the others' would only grow stale)."""
        if self._retry is not None:
            self._retry.set_others({})
        if self._hedge is not None:
            self._hedge.set_others(0, 0)
