"""The in-process cache: LRU bounded by entries and by bytes, each entry living ``ttl_seconds``.

Time is the injected clock's monotonic seconds, so tests move it by hand. One dict per process, built in the
lifespan; nothing is ever written to disk.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from bkvy.clock import Clock
from bkvy.core.cache.entry import CachedReply, encode_reply


class _Slot(NamedTuple):
    reply: CachedReply
    size_bytes: int
    expires_at: float  # clock seconds


class MemoryCache:
    """Scoped entries ``(scope, key) -> CachedReply``; the least recently used go first past either bound."""

    def __init__(self, clock: Clock, *, ttl_seconds: float, max_entries: int, max_bytes: int) -> None:
        self._clock = clock
        self._ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._slots: OrderedDict[tuple[str, str], _Slot] = OrderedDict()
        self.size_bytes = 0

    def configure(self, *, ttl_seconds: float, max_entries: int, max_bytes: int) -> None:
        """New bounds (a reload): entries stored from now on live ``ttl_seconds``; past the new bounds the least
        recently used go at once."""
        self._ttl_seconds, self._max_entries, self._max_bytes = ttl_seconds, max_entries, max_bytes
        self._evict()

    def _evict(self) -> None:
        while len(self._slots) > self._max_entries or self.size_bytes > self._max_bytes:
            self._drop(next(iter(self._slots)))

    def __len__(self) -> int:
        return len(self._slots)

    async def get(self, scope: str, key: str) -> CachedReply | None:
        """The live entry, marked most recently used; None when absent or expired (an expired one is dropped)."""
        slot = self._slots.get((scope, key))
        if slot is None:
            return None
        if self._clock.now() >= slot.expires_at:
            self._drop((scope, key))
            return None
        self._slots.move_to_end((scope, key))
        return slot.reply

    async def put(self, scope: str, key: str, reply: CachedReply, encoded: bytes | None = None) -> None:
        self.put_now(scope, key, reply, encoded)

    def put_now(self, scope: str, key: str, reply: CachedReply, encoded: bytes | None = None) -> None:
        """Store ``reply`` (replacing an older one), then evict the least recently used past the bounds. A reply
        larger than ``max_bytes`` on its own is not stored. ``encoded``: its bytes, when the caller has them."""
        size_bytes = len(encoded if encoded is not None else encode_reply(reply))
        if size_bytes > self._max_bytes:
            return
        self._drop((scope, key))
        self._slots[(scope, key)] = _Slot(reply, size_bytes, self._clock.now() + self._ttl_seconds)
        self.size_bytes += size_bytes
        self._evict()

    async def purge(self, scope: str | None = None) -> int:
        """Drop every entry (``scope`` None) or one scope's; how many were dropped."""
        doomed = [slot_key for slot_key in self._slots if scope is None or slot_key[0] == scope]
        for slot_key in doomed:
            self._drop(slot_key)
        return len(doomed)

    def _drop(self, slot_key: tuple[str, str]) -> None:
        slot = self._slots.pop(slot_key, None)
        if slot is not None:
            self.size_bytes -= slot.size_bytes

    async def close(self) -> None:
        pass  # nothing held outside this process's memory
