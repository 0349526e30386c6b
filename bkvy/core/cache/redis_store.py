"""The cache in Redis (``CACHE_REDIS_URL``): shared by every replica, values compressed, each one bounded.

A client of its own, separate from ``REDIS_URL``'s state store: that store needs persistence and no eviction,
a cache wants LRU eviction and, holding replies, no disk (docs/EVALUATION.md). Redis's own expiry (``PX``)
keeps the TTL; the instance's ``maxmemory`` with an LRU policy bounds the total; ``max_entry_bytes`` bounds each
reply before compression (``ResponseCache.keep``, as for the memory store). A value over ``THREAD_ABOVE_BYTES`` is
compressed or decompressed in a thread, off the event loop. Every call is bounded by ``timeout_seconds``; a
failure (or a value that is not zlib) is a miss, or a reply not stored, never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bkvy.core.cache.entry import CachedReply, compress, decode_reply, decompress, encode_reply

log = logging.getLogger(__name__)

_SCAN_BATCH = 500
THREAD_ABOVE_BYTES = 64 * 1024  # zlib level 6 takes ~6 ms per 256 KiB: larger values are (de)compressed in a thread


class RedisCache:
    """``(scope, key) -> CachedReply`` under ``{prefix}cache:{scope hash}:{key}``."""

    def __init__(self, url: str, *, prefix: str, ttl_seconds: float, timeout_seconds: float):
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # one bounded try: a slow cache is a miss, not a slow request
            health_check_interval=0,
        )
        self._prefix = f"{prefix}cache:"
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self._is_unreadable_logged = False

    def configure(self, *, ttl_seconds: float) -> None:
        """A new TTL (a reload), for entries stored from now on; the instance's ``maxmemory`` bounds the total."""
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)

    async def get(self, scope: str, key: str) -> CachedReply | None:
        try:
            raw = await self._client.get(self._name(scope, key))
            if raw is None:
                return None
            value = raw if isinstance(raw, bytes) else raw.encode("latin-1")
            if len(value) > THREAD_ABOVE_BYTES:
                return decode_reply(await asyncio.to_thread(decompress, value))
            return decode_reply(decompress(value))
        except zlib.error:  # not a value bkvy wrote (or a damaged one): a miss; said once, without the value
            if not self._is_unreadable_logged:
                self._is_unreadable_logged = True
                log.warning("cache_value_unreadable", extra={"error": "zlib.error"})
            return None
        except (RedisError, OSError, ValueError, KeyError, TypeError) as error:
            log.warning("cache_get_failed", extra={"error": type(error).__name__})
            return None

    async def put(self, scope: str, key: str, reply: CachedReply, encoded: bytes | None = None) -> None:
        raw = encoded if encoded is not None else encode_reply(reply)
        value = await asyncio.to_thread(compress, raw) if len(raw) > THREAD_ABOVE_BYTES else compress(raw)
        try:
            await self._client.set(self._name(scope, key), value, px=self._ttl_ms)
        except (RedisError, OSError) as error:
            log.warning("cache_put_failed", extra={"error": type(error).__name__})

    async def purge(self, scope: str | None = None) -> int:
        """Delete every entry (``scope`` None) or one scope's; how many. Raises RedisError when Redis fails."""
        pattern = f"{self._prefix}*" if scope is None else f"{self._prefix}{_scope_hash(scope)}:*"
        dropped = 0
        batch: list[bytes] = []
        async for name in self._client.scan_iter(match=pattern, count=_SCAN_BATCH):
            batch.append(name)
            if len(batch) >= _SCAN_BATCH:
                dropped += await self._client.delete(*batch)
                batch = []
        if batch:
            dropped += await self._client.delete(*batch)
        return dropped

    async def close(self) -> None:
        await self._client.aclose()

    def _name(self, scope: str, key: str) -> str:
        return f"{self._prefix}{_scope_hash(scope)}:{key}"


def _scope_hash(scope: str) -> str:
    """A scope as a fixed-width token: no glob characters for SCAN, no client ids in Redis's key space."""
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()[:24]
