"""Rate-limit windows shared through Redis: one Lua script checks and takes a lane's rpm, rpd and tpm in one
round trip, atomically (docs/SCALING.md).

A lane's keys share one hash tag, ``{<prefix><provider>:<key_id>:<model>}``, so on a Redis Cluster they sit on
one shard. Each window is a sorted set of start times (scored by unix seconds, the caller's ``now``: tests drive
it with a fake clock across processes). A provider's block (``Retry-After``) is a key holding the unix time it
ends, with an expiry; the same script reads it.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from bkvy.core.limits.rate_limits import DAY_SECONDS, MINUTE_SECONDS, LaneKey, LaneLimits
from bkvy.core.shared.state import SharedState, SharedStateDown

__all__ = ["TAKE_SCRIPT", "RedisWindows", "lane_tag"]

# KEYS: rpm, rpd, tpm, block. ARGV: now (unix s), rpm, rpd, tpm (0 = none), tokens, member (unique per take).
# Returns "0" when taken, else the seconds to wait (as a string: Lua numbers become integers in replies).
TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local member = ARGV[6]
local wait = 0
local blocked = tonumber(redis.call('GET', KEYS[4]) or '0')
if blocked > now then wait = blocked - now end
local function window_wait(key, limit, span)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local count = redis.call('ZCARD', key)
  if count < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return tonumber(oldest[2]) + span - now
end
local rpm, rpd, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if rpm > 0 then wait = math.max(wait, window_wait(KEYS[1], rpm, 60)) end
if rpd > 0 then wait = math.max(wait, window_wait(KEYS[2], rpd, 86400)) end
local tokens = 0
if tpm > 0 then
  tokens = math.min(tonumber(ARGV[5]), tpm)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60)
  local held = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #held, 2 do used = used + tonumber(string.match(held[i], ':(%d+)$')) end
  local excess = used + tokens - tpm
  if excess > 0 then
    for i = 1, #held, 2 do
      excess = excess - tonumber(string.match(held[i], ':(%d+)$'))
      if excess <= 0 then wait = math.max(wait, tonumber(held[i + 1]) + 60 - now) break end
    end
  end
end
if wait > 0 then return string.format('%.6f', wait) end
if rpm > 0 then redis.call('ZADD', KEYS[1], now, member) redis.call('PEXPIRE', KEYS[1], 61000) end
if rpd > 0 then redis.call('ZADD', KEYS[2], now, member) redis.call('PEXPIRE', KEYS[2], 86401000) end
if tpm > 0 then
  redis.call('ZADD', KEYS[3], now, member .. ':' .. tokens)
  redis.call('PEXPIRE', KEYS[3], 61000)
end
return '0'
"""

# KEYS: block. ARGV: until (unix s), ttl (ms). Keeps the later of the two blocks.
BLOCK_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
"""

assert MINUTE_SECONDS == 60 and DAY_SECONDS == 86_400  # the script's spans


def lane_tag(prefix: str, key: LaneKey) -> str:
    """The hash tag of a lane's keys: one lane, one Redis Cluster slot."""
    return "{" + f"{prefix}{key.provider}:{key.key_id}:{key.model}" + "}"


class RedisWindows:
    """``RateLimiter``'s shared window store (``SharedWindowStore``): the windows in Redis, through ``state``."""

    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._take = state.client.register_script(TAKE_SCRIPT)  # EVALSHA; loaded again on NOSCRIPT
        self._block = state.client.register_script(BLOCK_SCRIPT)
        self._members = itertools.count()
        self._pending: set[asyncio.Task[Any]] = set()

    @property
    def is_up(self) -> bool:
        return self._state.is_up

    def live_replicas(self) -> int:
        return self._state.live_replicas()

    def on_change(self, callback: Any) -> None:
        self._state.on_change(callback)

    def _keys(self, key: LaneKey) -> list[str]:
        tag = lane_tag(self._state.prefix, key)
        return [f"{tag}:rpm", f"{tag}:rpd", f"{tag}:tpm", f"{tag}:block"]

    async def take(self, key: LaneKey, limits: LaneLimits, now_wall: float, tokens: int) -> float | None:
        """0.0 when the slot is taken, else the seconds to wait; None when Redis is down (use local state)."""
        member = f"{self._state.replica_id}:{next(self._members)}"
        args = (repr(now_wall), limits.rpm or 0, limits.rpd or 0, limits.tpm or 0, tokens, member)
        try:
            reply = await self._state.call(lambda client: self._take(keys=self._keys(key), args=args, client=client))
        except SharedStateDown:
            return None
        return float(reply)

    def block(self, key: LaneKey, until_wall: float, now_wall: float) -> None:
        """Share a provider's block (in the background: the caller does not wait on Redis)."""
        if not self._state.is_up:
            return
        ttl_ms = max(1, int((until_wall - now_wall) * 1000) + 1000)
        keys = [self._keys(key)[3]]

        async def _send() -> None:
            try:
                await self._state.call(
                    lambda client: self._block(keys=keys, args=(repr(until_wall), ttl_ms), client=client)
                )
            except SharedStateDown:
                pass  # the local block stands; the state's own log line says Redis is down

        task = asyncio.get_running_loop().create_task(_send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
