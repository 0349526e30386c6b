"""Which store the cache uses: Redis when ``CACHE_REDIS_URL`` is set, else this process's memory."""

from __future__ import annotations

from bkvy.clock import Clock
from bkvy.core.cache.redis_store import RedisCache
from bkvy.core.cache.service import ResponseCache
from bkvy.core.config.gateway import RoutingConfig
from bkvy.core.config.settings import Settings


def build_cache(settings: Settings, routing: RoutingConfig, clock: Clock) -> ResponseCache:
    """The gateway's response cache; a Redis client connects on its first call (nothing is sent before)."""
    if settings.cache_redis_url is None:
        return ResponseCache.in_memory(routing, clock)
    store = RedisCache(
        settings.cache_redis_url,
        prefix=settings.redis_prefix,
        ttl_seconds=routing.cache.ttl_seconds,
        timeout_seconds=settings.redis_timeout_ms / 1000,
    )
    return ResponseCache(store, clock)
