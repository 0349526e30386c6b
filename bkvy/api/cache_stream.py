"""A streamed miss kept for the response cache (issue 20 §1): its text and tool calls gathered as they are
relayed, stored once the stream completes with a finish reason (an interrupted or cut stream stores nothing).

Streams are otherwise never held whole (issue 16); this holds one only while the cache applies to it, and only up
to ``cache.max_entry_bytes``: past it the reply could not be stored anyway, so gathering stops and it is not.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from bkvy.api.services import Services
from bkvy.core.cache.service import CacheProbe
from bkvy.core.execution.streaming import LiveStream
from bkvy.core.upstream.adapters.base import StreamDelta
from bkvy.models.types import ToolCall


class _ToolCallParts:
    __slots__ = ("call_id", "name", "arguments")

    def __init__(self) -> None:
        self.call_id, self.name, self.arguments = "", "", ""


class StreamKeeper:
    """Gathers one stream's reply for ``probe``; ``batches`` relays the stream's batches unchanged."""

    def __init__(self, services: Services, probe: CacheProbe, stream: LiveStream) -> None:
        self._services = services
        self._probe = probe
        self._stream = stream
        self._texts: list[str] = []
        self._calls: dict[int, _ToolCallParts] = {}
        self._size = 0
        self._max_size = services.config.routing.cache.max_entry_bytes
        self._is_over = False

    async def batches(self) -> AsyncGenerator[list[StreamDelta], None]:
        async for batch in self._stream.batches():
            if not self._is_over:
                for delta in batch:
                    self._add(delta)
            yield batch
        self._keep()  # only reached when the stream completed: ``batches`` raises otherwise

    def _add(self, delta: StreamDelta) -> None:
        self._size += len(delta.content) + sum(len(call.arguments) for call in delta.tool_calls)
        if self._size > self._max_size:
            self._is_over, self._texts, self._calls = True, [], {}
            return
        if delta.content:
            self._texts.append(delta.content)
        for piece in delta.tool_calls:
            parts = self._calls.setdefault(piece.index, _ToolCallParts())
            parts.call_id = piece.call_id or parts.call_id
            parts.name = piece.name or parts.name
            parts.arguments += piece.arguments

    def _keep(self) -> None:
        """Stored in a task of its own: the stream's end is not held up by encoding, compressing or Redis."""
        result, cache = self._stream.result, self._services.cache
        if result is None or cache is None or self._is_over:
            return
        calls = tuple(ToolCall(p.call_id, p.name, p.arguments) for _, p in sorted(self._calls.items()))
        completion = result.completion._replace(content="".join(self._texts), tool_calls=calls, rate_limit_hint=None)
        cache.keep_later(self._probe, self._services.config.routing, result._replace(completion=completion))


def relayed_batches(
    services: Services, probe: CacheProbe | None, stream: LiveStream
) -> AsyncIterator[list[StreamDelta]]:
    """The stream's batches: kept for the cache when ``probe`` is set, else the stream's own."""
    if probe is None:
        return stream.batches()
    return StreamKeeper(services, probe, stream).batches()
