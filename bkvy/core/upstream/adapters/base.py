"""The adapter seam: one pure translator per wire format.

An adapter never does I/O. ``core.transport`` sends what ``build_request`` returns and hands
the reply back to ``parse_reply``; tests call both directly on recorded replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bkvy.models.types import Completion, FinishReason, UpstreamCall, UpstreamReply, UpstreamRequest, Usage


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of one streamed tool call, in OpenAI's shape: id and name come first, arguments in fragments."""

    index: int
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One translated piece of a streamed reply."""

    content: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[StreamDelta]:
        """Consume raw bytes (any split) and return the deltas completed so far.

        Raises UpstreamError when the stream carries an error event.
        """
        ...


class ProviderAdapter(Protocol):
    def build_request(self, call: UpstreamCall) -> UpstreamRequest: ...

    def parse_reply(self, reply: UpstreamReply) -> Completion:
        """Map a whole reply to a Completion. Raises UpstreamError for any non-success."""
        ...

    def build_probe(self, call: UpstreamCall) -> UpstreamRequest:
        """The cheapest request that proves the (key, model) answers (SPEC §6)."""
        ...

    def stream_decoder(self) -> StreamDecoder: ...
