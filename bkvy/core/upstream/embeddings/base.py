"""The embeddings seam: one pure translator per wire format that embeds (OpenAI, Gemini, Ollama).

Like the chat adapters, a translator never does I/O: ``build_request`` returns what ``core.transport`` sends
and ``parse_reply`` reads what came back; tests call both on recorded replies. Errors are the chat adapters'
(``adapters._errors``), so failover and circuits treat an embeddings call exactly like a chat call.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Protocol

from bkvy.core.upstream.adapters._errors import unparseable_reply
from bkvy.models.embeddings import EmbeddingCall, EmbeddingInput, Embeddings
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest

PROBE_INPUT = EmbeddingInput(texts=("ping",))  # the cheapest embeddings call (SPEC §6 probes)


class EmbeddingAdapter(Protocol):
    def build_request(self, call: EmbeddingCall) -> UpstreamRequest:
        """The upstream request. Raises UpstreamError (bad_request) for input this format cannot carry."""
        ...

    def parse_reply(self, reply: UpstreamReply) -> Embeddings:
        """The vectors in input order. Raises UpstreamError for any non-success or an unreadable body."""
        ...

    def build_probe(self, call: EmbeddingCall) -> UpstreamRequest:
        """The cheapest request that proves the (key, model) answers."""
        ...


def vector_of(raw: object, status: int) -> tuple[float, ...]:
    """One vector from a JSON list of numbers; anything else is a server fault. ``array`` checks the items in C
    (a 2,048 × 3,072 batch is six million numbers)."""
    if not isinstance(raw, list) or not raw:
        raise unparseable_reply(status)
    try:
        numbers = array("d", raw)
    except TypeError:  # a string or null among the numbers
        raise unparseable_reply(status) from None
    if not math.isfinite(sum(numbers)):  # NaN or infinity: not a vector, and not valid JSON to pass on
        raise unparseable_reply(status)
    return tuple(numbers)


def tokens_or_none(raw: object) -> int | None:
    return raw if type(raw) is int and raw >= 0 else None


def cannot_send_token_arrays(wire_format: str) -> UpstreamError:
    return UpstreamError(ErrorClass.BAD_REQUEST, f"{wire_format} embeddings take text, not token arrays")


def texts_of(call: EmbeddingCall, wire_format: str) -> Sequence[str]:
    """The texts to send; a format that takes only text refuses token arrays."""
    if call.embedding.token_arrays:
        raise cannot_send_token_arrays(wire_format)
    return call.embedding.texts
