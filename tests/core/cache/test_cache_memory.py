"""The in-memory cache: TTL on the injected clock, LRU by entries and by bytes, purge by scope."""

from __future__ import annotations

from bkvy.clock import FakeClock
from bkvy.core.cache.entry import CachedReply, decode_reply, encode_reply
from bkvy.core.cache.memory import MemoryCache
from bkvy.models.types import Completion, FinishReason, ToolCall, Usage


def reply(text: str = "four", cost_usd: float = 0.001) -> CachedReply:
    completion = Completion(text, Usage(10, 2), FinishReason.STOP, "gpt-4o-mini", None, (ToolCall("c1", "f", "{}"),))
    return CachedReply(completion, "openai", "gpt-4o-mini", cost_usd, 1_700_000_000.0)


def cache(clock: FakeClock, **bounds: int) -> MemoryCache:
    entries, max_bytes = bounds.get("entries", 100), bounds.get("b", 10**6)
    return MemoryCache(clock, ttl_seconds=60.0, max_entries=entries, max_bytes=max_bytes)


def test_reply_round_trips_through_its_bytes() -> None:
    assert decode_reply(encode_reply(reply())) == reply()


async def test_entry_expires_after_ttl() -> None:
    clock = FakeClock()
    store = cache(clock)
    await store.put("s", "k", reply())
    clock.advance(59.9)
    assert await store.get("s", "k") == reply()
    clock.advance(0.1)
    assert await store.get("s", "k") is None and len(store) == 0 and store.size_bytes == 0


async def test_least_recently_used_goes_past_max_entries() -> None:
    store = cache(FakeClock(), entries=2)
    await store.put("s", "a", reply("a"))
    await store.put("s", "b", reply("b"))
    assert await store.get("s", "a") is not None  # a is now the most recently used
    await store.put("s", "c", reply("c"))
    assert await store.get("s", "b") is None
    assert await store.get("s", "a") is not None and await store.get("s", "c") is not None


async def test_bytes_bound_evicts_and_refuses_an_oversized_reply() -> None:
    size = len(encode_reply(reply("x" * 100)))
    store = cache(FakeClock(), b=size * 2 + 10)
    for name in ("a", "b", "c"):
        await store.put("s", name, reply("x" * 100))
    assert len(store) == 2 and store.size_bytes <= size * 2 + 10 and await store.get("s", "a") is None
    await store.put("s", "huge", reply("x" * 10_000))
    assert await store.get("s", "huge") is None and len(store) == 2


async def test_scopes_are_apart_and_purged_alone() -> None:
    store = cache(FakeClock())
    await store.put("tenant:a", "k", reply("a"))
    await store.put("tenant:b", "k", reply("b"))
    assert (await store.get("tenant:a", "k")) != (await store.get("tenant:b", "k"))
    assert await store.purge("tenant:a") == 1
    assert await store.get("tenant:a", "k") is None and await store.get("tenant:b", "k") is not None
    assert await store.purge() == 1 and len(store) == 0
