"""Incremental framing shared by the stream decoders: lines, SSE events, NDJSON objects.

Bytes are split on ``\\n`` before decoding, so a split inside a multi-byte character is harmless.
"""

from __future__ import annotations

import json
from typing import Any

from bkvy.core.upstream.adapters._errors import unparseable_reply


class LineBuffer:
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        """Return the complete lines so far, without their ``\\n`` / ``\\r\\n``."""
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in lines]


class SseBuffer:
    """Server-sent events: ``data:`` lines joined, dispatched on a blank line."""

    def __init__(self) -> None:
        self._lines = LineBuffer()
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Return the data of every event completed so far."""
        events: list[str] = []
        for line in self._lines.feed(chunk):
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                self._data = []
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
        return events  # `event:`, `id:`, comments: the JSON data carries its own type


def decode_event_json(data: str) -> dict[str, Any]:
    """One event's JSON object; a garbled event is a server fault (status 200: the stream began)."""
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise unparseable_reply(200)
    return payload
