"""Shared helpers for the adapter tests: calls, replies and stream feeding, offered as fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bkvy.core.upstream.adapters.base import StreamDecoder, StreamDelta
from bkvy.models.types import ChatMessage, GenerationOptions, UpstreamCall, UpstreamReply

SECRET_KEY = "sk-test-SECRET-4f2a9c"


@pytest.fixture
def secret_key() -> str:
    return SECRET_KEY


@pytest.fixture
def make_call() -> Callable[..., UpstreamCall]:
    def _make(**overrides: Any) -> UpstreamCall:
        fields: dict[str, Any] = {
            "base_url": "https://upstream.example",
            "model": "test-model",
            "api_key": SECRET_KEY,
            "messages": (ChatMessage("system", "Be brief."), ChatMessage("user", "Hello there")),
            "options": GenerationOptions(),
        }
        fields.update(overrides)
        return UpstreamCall(**fields)

    return _make


@pytest.fixture
def make_reply() -> Callable[..., UpstreamReply]:
    def _make(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamReply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return UpstreamReply(status=status, headers=headers or {}, body=raw)

    return _make


def _feed_in_pieces(decoder: StreamDecoder, raw: bytes, piece: int) -> list[StreamDelta]:
    deltas: list[StreamDelta] = []
    for start in range(0, len(raw), piece):
        deltas.extend(decoder.feed(raw[start : start + piece]))
    return deltas


@pytest.fixture
def feed_split() -> Callable[[Callable[[], StreamDecoder], bytes], list[StreamDelta]]:
    """Feed whole, byte by byte and in 7-byte pieces; assert all agree; return the deltas."""

    def _feed(new_decoder: Callable[[], StreamDecoder], raw: bytes) -> list[StreamDelta]:
        whole = new_decoder().feed(raw)
        assert _feed_in_pieces(new_decoder(), raw, 1) == whole
        assert _feed_in_pieces(new_decoder(), raw, 7) == whole
        return whole

    return _feed


def _sse(*payloads: Any, events: tuple[str, ...] | None = None) -> bytes:
    """Frame payloads as SSE; with ``events`` also an ``event:`` line per payload (Anthropic style)."""
    frames = []
    for index, payload in enumerate(payloads):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        prefix = f"event: {events[index]}\n" if events else ""
        frames.append(f"{prefix}data: {data}\n\n")
    return "".join(frames).encode()


@pytest.fixture
def to_sse() -> Callable[..., bytes]:
    return _sse
