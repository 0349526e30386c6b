"""The response cache a gateway holds: its store (memory or Redis) and the request-level steps around it."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple, Protocol

from bkvy.clock import Clock
from bkvy.core.cache.entry import CachedReply, encode_reply
from bkvy.core.cache.key import cache_key
from bkvy.core.cache.memory import MemoryCache
from bkvy.core.cache.redis_store import RedisCache
from bkvy.core.cache.rules import is_cache_wanted, is_cacheable, may_store_model, scope_of
from bkvy.core.config.cache_config import CacheSettings
from bkvy.core.config.gateway import RoutingConfig
from bkvy.core.execution.records import ExecutionRequest, ExecutionResult
from bkvy.core.routing.plan import Candidate, RoutePlan
from bkvy.models.outcomes import DecisionReason

log = logging.getLogger(__name__)

_DRAIN_SECONDS = 5.0  # at shutdown: the replies still being stored get this long (a Redis SET is bounded anyway)


class CacheStore(Protocol):
    async def get(self, scope: str, key: str) -> CachedReply | None: ...

    async def put(self, scope: str, key: str, reply: CachedReply, encoded: bytes | None = None) -> None: ...

    async def purge(self, scope: str | None = None) -> int: ...

    async def close(self) -> None: ...


class CacheProbe(NamedTuple):
    """Where one request's reply is looked up and stored."""

    scope: str
    key: str


class ResponseCache:
    """One per gateway (built in the lifespan); the rules are read from the config each request carries."""

    def __init__(self, store: CacheStore, clock: Clock) -> None:
        self.store = store
        self._clock = clock
        self._keeping: set[asyncio.Task[None]] = set()  # replies being stored after their reply was sent

    @classmethod
    def in_memory(cls, routing: RoutingConfig, clock: Clock) -> ResponseCache:
        settings = routing.cache
        return cls(
            MemoryCache(
                clock,
                ttl_seconds=settings.ttl_seconds,
                max_entries=settings.max_entries,
                max_bytes=settings.max_bytes,
            ),
            clock,
        )

    def configure(self, settings: CacheSettings) -> None:
        """A reload's ``"cache"`` bounds: ``ttl_seconds`` (new entries), and in memory ``max_entries`` and
        ``max_bytes`` (evicting past them at once). The other settings are read from the config per request."""
        if isinstance(self.store, MemoryCache):
            self.store.configure(
                ttl_seconds=settings.ttl_seconds, max_entries=settings.max_entries, max_bytes=settings.max_bytes
            )
        elif isinstance(self.store, RedisCache):
            self.store.configure(ttl_seconds=settings.ttl_seconds)

    def probe(self, routing: RoutingConfig, request: ExecutionRequest, request_flag: bool | None) -> CacheProbe | None:
        """The request's place in the cache, or None when caching does not apply to it (not asked for, its route
        set to ``false``, sampled, an embeddings request)."""
        if request_flag is None and not routing.cache_routes:
            return None  # today's path: one test
        settings = routing.cache
        if request.embedding is not None or not is_cache_wanted(request.route, request_flag, routing.cache_routes):
            return None
        if not is_cacheable(request.options, settings):
            return None
        scope = scope_of(settings, request.subject, request.client_key_id, request.client_id)
        return CacheProbe(scope, cache_key(request.route, request.messages, request.options))

    async def lookup(self, probe: CacheProbe) -> CachedReply | None:
        return await self.store.get(probe.scope, probe.key)

    async def keep(self, probe: CacheProbe, routing: RoutingConfig, result: ExecutionResult) -> None:
        """Store a successful reply (errors never reach here), unless its model is set to ``false`` or the reply
        is over ``max_entry_bytes`` (its encoded size before any compression, in every store)."""
        prepared = self._prepared(routing, result)
        if prepared is not None:
            await self.store.put(probe.scope, probe.key, *prepared)

    def keep_later(self, probe: CacheProbe, routing: RoutingConfig, result: ExecutionResult) -> None:
        """``keep``, called once the reply was sent (its report), so storing it is never on the request's latency
        path: the memory store at once (a dict insert), Redis in a task of its own (compression over 64 KiB in a
        thread, then a SET bounded by its timeout). ``close`` waits for those in flight (bounded)."""
        prepared = self._prepared(routing, result)
        if prepared is None:
            return
        if isinstance(self.store, MemoryCache):
            self.store.put_now(probe.scope, probe.key, *prepared)
            return
        task = asyncio.get_running_loop().create_task(self._put_quietly(probe, *prepared))
        self._keeping.add(task)
        task.add_done_callback(self._keeping.discard)

    def _prepared(self, routing: RoutingConfig, result: ExecutionResult) -> tuple[CachedReply, bytes] | None:
        candidate = result.candidate
        if not may_store_model(candidate.provider, candidate.model, routing.cache_routes):
            return None
        reply = CachedReply(result.completion, candidate.provider, candidate.model, result.cost_usd, self._clock.wall())
        encoded = encode_reply(reply)
        if len(encoded) > routing.cache.max_entry_bytes:
            return None
        return reply, encoded

    async def _put_quietly(self, probe: CacheProbe, reply: CachedReply, encoded: bytes) -> None:
        try:
            await self.store.put(probe.scope, probe.key, reply, encoded)
        except Exception as error:  # a reply not stored is a later miss, never an error anywhere
            log.warning("cache_keep_failed", extra={"error": type(error).__name__})

    async def drain(self, timeout_seconds: float = _DRAIN_SECONDS) -> None:
        """Wait (at most ``timeout_seconds``) for the replies being stored."""
        if self._keeping:
            await asyncio.wait(set(self._keeping), timeout=timeout_seconds)

    def age_seconds(self, reply: CachedReply) -> float:
        return max(self._clock.wall() - reply.stored_wall, 0.0)

    async def purge(self, scope: str | None = None) -> int:
        """Drop every entry, or one scope's (``tenant:ID``, ``key:ID``, ``client:NAME``, ``shared``); how many."""
        return await self.store.purge(scope)

    async def close(self) -> None:
        await self.drain()
        await self.store.close()


def hit_result(reply: CachedReply, total_ms: float) -> ExecutionResult:
    """A stored reply as the executor's result: no attempt, cost 0, ``cache_hit`` as its decision."""
    candidate = Candidate(
        reply.provider, reply.model, "", 0.0, 0.0, 0.0, False, 0.0, 0, 0.0, 0.0, 0, 0.0, DecisionReason.CACHE_HIT
    )
    return ExecutionResult(reply.completion, candidate, RoutePlan((), DecisionReason.CACHE_HIT), (), total_ms, 0.0, 0.0)
