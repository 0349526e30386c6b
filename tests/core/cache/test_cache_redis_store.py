"""The Redis store on a stand-in client: a value that is not zlib is a miss; sizes are counted before compression;
large values round-trip through the thread that (de)compresses them."""

from __future__ import annotations

import logging

import pytest

from bkvy.clock import FakeClock
from bkvy.core.cache.entry import CachedReply
from bkvy.core.cache.redis_store import THREAD_ABOVE_BYTES, RedisCache
from bkvy.core.cache.service import CacheProbe, ResponseCache
from bkvy.core.config.cache_config import CacheSettings
from bkvy.core.config.gateway import RoutingConfig
from bkvy.core.execution.records import ExecutionResult
from bkvy.core.routing.plan import Candidate, RoutePlan
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import Completion, FinishReason, Usage


class _Client:
    """What ``RedisCache`` uses of redis.asyncio.Redis: get and set, over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self.values.get(name)

    async def set(self, name: str, value: bytes, px: int) -> None:
        self.values[name] = value

    async def aclose(self) -> None:
        pass


def _store() -> tuple[RedisCache, _Client]:
    store = RedisCache("redis://127.0.0.1:1/0", prefix="t:", ttl_seconds=60.0, timeout_seconds=0.1)
    client = _Client()
    store._client = client  # type: ignore[assignment]
    return store, client


def _reply(text: str) -> CachedReply:
    return CachedReply(Completion(text, Usage(1, 1), FinishReason.STOP, "m"), "openai", "m", 0.001, 1.0)


async def test_a_value_that_is_not_zlib_is_a_miss_logged_once_without_it(caplog: pytest.LogCaptureFixture) -> None:
    store, client = _store()
    client.values[store._name("s", "k")] = b"secret-garbage-not-zlib"
    with caplog.at_level(logging.WARNING, logger="bkvy.core.cache.redis_store"):
        assert await store.get("s", "k") is None
        assert await store.get("s", "k") is None
    unreadable = [r for r in caplog.records if r.getMessage() == "cache_value_unreadable"]
    assert len(unreadable) == 1
    assert all("secret-garbage" not in r.getMessage() + str(r.__dict__) for r in caplog.records)


async def test_a_large_value_round_trips_through_the_compressing_thread() -> None:
    store, client = _store()
    text = "".join(f"{i:08x}" for i in range(THREAD_ABOVE_BYTES // 4))  # > THREAD_ABOVE_BYTES once encoded
    await store.put("s", "k", _reply(text))
    assert 0 < len(client.values[store._name("s", "k")]) < len(text)
    reply = await store.get("s", "k")
    assert reply is not None and reply.completion.content == text


async def test_max_entry_bytes_is_the_size_before_compression() -> None:
    """A reply that compresses far below ``max_entry_bytes`` but is over it uncompressed is not stored: the same
    bound as the memory store's (docs/CONFIGURATION.md)."""
    store, client = _store()
    cache = ResponseCache(store, FakeClock())
    routing = RoutingConfig(cache=CacheSettings(max_entry_bytes=1024))
    reason = DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    candidate = Candidate("openai", "m", "k", 0.0, 0.0, 0.0, False, 0.0, 0, 0.0, 0.0, 0, 0.0, reason)
    plan = RoutePlan((), reason)

    def result(text: str) -> ExecutionResult:
        completion = Completion(text, Usage(1, 1), FinishReason.STOP, "m")
        return ExecutionResult(completion, candidate, plan, (), 1.0, 0.0, 0.001)

    await cache.keep(CacheProbe("s", "big"), routing, result("a" * 2000))  # ~40 bytes compressed
    await cache.keep(CacheProbe("s", "small"), routing, result("a" * 100))
    assert await store.get("s", "big") is None and await store.get("s", "small") is not None
    assert len(client.values) == 1
