"""The bandit's posteriors shared by every process (issue 18 §3; docs/ROUTING.md, "Adaptive choice").

Each process draws from its own copy (``BanditBook``): the request path never waits on Redis. Each update is
applied locally at once and queued; every ``sync_interval_seconds`` a background task sends the queue and reads
every adaptive route back, in one Lua call (one round trip; a backlog in calls of at most ``MAX_BATCH``
updates, the routes read back with the last)::

    <prefix>bandit:<route>   hash: JSON [provider, model] -> "successes failures"; expires after a week unused

The script applies each queued update as ``core.routing.bandit.discounted`` does (every arm of the route times
the discount, then the reward to the arm that served), atomically, so the fleet's posteriors are those of one
bandit that saw every process's updates in the order they reached Redis. The local copy becomes Redis's, plus
the updates queued since. Redis down: each process learns alone and keeps its queue (bounded) for later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque

from redis.asyncio import Redis

from bkvy.clock import Clock
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.routing.bandit import Pair, Posterior
from bkvy.core.shared.state import SharedState, SharedStateDown, stop_task

__all__ = ["SharedBandit"]

log = logging.getLogger(__name__)

_TTL_SECONDS = 7 * 24 * 3600
MAX_QUEUED = 10_000  # updates kept while Redis is down; the oldest go first
MAX_BATCH = 500  # updates per Lua call: each is an HGETALL + HSET per arm, and the script blocks Redis
_SYNC = """
local discount, count, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, count do
  local key, field, reward = KEYS[i], ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  local arms = redis.call('HGETALL', key)
  for j = 1, #arms, 2 do
    local s, f = string.match(arms[j + 1], '^(%S+) (%S+)$')
    if s then redis.call('HSET', key, arms[j], (tonumber(s) * discount) .. ' ' .. (tonumber(f) * discount)) end
  end
  local s, f = 0, 0
  local served = redis.call('HGET', key, field)
  if served then
    local a, b = string.match(served, '^(%S+) (%S+)$')
    if a then s, f = tonumber(a), tonumber(b) end
  end
  redis.call('HSET', key, field, (s + reward) .. ' ' .. (f + 1 - reward))
  redis.call('EXPIRE', key, ttl)
end
local read = {}
for i = count + 1, #KEYS do read[#read + 1] = redis.call('HGETALL', KEYS[i]) end
return read
"""


class SharedBandit:
    def __init__(self, shared: SharedState, adaptive: AdaptiveRouting, *, clock: Clock) -> None:
        self._shared = shared
        self._adaptive = adaptive
        self._clock = clock
        self._queued: deque[tuple[str, Pair, float]] = deque(maxlen=MAX_QUEUED)
        self._script = shared.client.register_script(_SYNC)
        self._task: asyncio.Task[None] | None = None
        adaptive.on_update(lambda route, pair, reward: self._queued.append((route, pair, reward)))

    async def start(self) -> None:
        """The fleet's posteriors first (a restarted process resumes them), then the background exchange."""
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="bkvy-shared-bandit")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(SharedStateDown):  # the last updates, if Redis takes them
            await self.sync()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._adaptive.knobs.sync_interval_seconds)
            await self.sync()

    async def sync(self) -> bool:
        """Send the queued updates, read every adaptive route back. False when Redis is down (the updates stay
        queued, the local copy learns alone). At most ``MAX_BATCH`` updates per round trip (one Lua script
        blocks Redis while it runs): a backlog goes in several, the routes are read back with the last; updates
        queued meanwhile wait for the next sync."""
        routes = list(self._adaptive.arms)
        if not routes and not self._queued:
            return True
        remaining = len(self._queued)
        while True:
            # taken out of the queue before the await: updates appended meanwhile (which may push the oldest
            # out of a full queue) never shift what this call sent
            batch = [self._queued.popleft() for _ in range(min(remaining, MAX_BATCH, len(self._queued)))]
            remaining -= len(batch)
            last = remaining <= 0 or not self._queued
            read = routes if last else []
            try:
                replies = await self._shared.call(functools.partial(self._exchange, sent=batch, routes=read))
            except SharedStateDown:
                self._put_back(batch)
                return False
            except BaseException:  # cancelled (shutdown): the batch is not known to be sent; keep it
                self._put_back(batch)
                raise
            if last:
                break
        book = self._adaptive.book
        for route, reply in zip(routes, replies, strict=False):
            book.replace_route(route, _parse_arms(reply))
        for route, pair, reward in self._queued:  # not in Redis yet: on top of the fleet's state
            book.update(route, pair, reward)
        return True

    def _put_back(self, batch: list[tuple[str, Pair, float]]) -> None:
        """``batch`` in front of what was queued since, in order; past the bound the oldest go."""
        if batch:
            self._queued = deque([*batch, *self._queued], maxlen=self._queued.maxlen)

    async def _exchange(self, client: Redis, sent: list[tuple[str, Pair, float]], routes: list[str]) -> list[object]:
        keys = [self._key(route) for route, _, _ in sent] + [self._key(route) for route in routes]
        args: list[str | float | int] = [self._adaptive.book.discount, len(sent), _TTL_SECONDS]
        for _, pair, reward in sent:
            args += [json.dumps(list(pair)), reward]
        replies = await self._script(keys=keys, args=args, client=client)
        return list(replies)

    def _key(self, route: str) -> str:
        return f"{self._shared.prefix}bandit:{route}"


def _parse_arms(reply: object) -> dict[Pair, Posterior]:
    """HGETALL's flat [field, value, ...] as posteriors; fields of another version are skipped."""
    arms: dict[Pair, Posterior] = {}
    if not isinstance(reply, list):
        return arms
    for field, value in zip(reply[::2], reply[1::2], strict=False):
        try:
            provider, model = json.loads(field)
            successes, failures = (float(part) for part in value.split())
        except (ValueError, TypeError, AttributeError):
            continue
        arms[(str(provider), str(model))] = Posterior(successes, failures)
    return arms
