"""A stored reply: what a hit needs to answer (the completion, who answered, what it cost) and its bytes."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from bkvy.models.types import Completion, FinishReason, ToolCall, Usage

_COMPRESSION_LEVEL = 6


@dataclass(frozen=True, slots=True)
class CachedReply:
    completion: Completion
    provider: str
    model: str
    cost_usd: float  # what the original call cost: a hit's saving
    stored_wall: float  # unix seconds when it was stored: a hit's age


def encode_reply(reply: CachedReply) -> bytes:
    """The reply as JSON bytes (its size is what the byte bounds count)."""
    completion = reply.completion
    fields = {
        "content": completion.content,
        "usage": list(completion.usage),
        "finish_reason": completion.finish_reason.value,
        "model_reported": completion.model_reported,
        "tool_calls": [[c.call_id, c.name, c.arguments] for c in completion.tool_calls],
        "provider": reply.provider,
        "model": reply.model,
        "cost_usd": reply.cost_usd,
        "stored_wall": reply.stored_wall,
    }
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_reply(raw: bytes) -> CachedReply:
    """The reply of ``encode_reply``'s bytes. Raises ValueError (or KeyError/TypeError) for foreign bytes."""
    fields = json.loads(raw)
    completion = Completion(
        fields["content"],
        Usage(*fields["usage"]),
        FinishReason(fields["finish_reason"]),
        fields["model_reported"],
        None,
        tuple(ToolCall(*call) for call in fields["tool_calls"]),
    )
    return CachedReply(completion, fields["provider"], fields["model"], fields["cost_usd"], fields["stored_wall"])


def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, _COMPRESSION_LEVEL)


def decompress(raw: bytes) -> bytes:
    return zlib.decompress(raw)
