"""The seam between the generic sim engine (server.py) and one provider's wire format.

A wire format is pure: it parses a request into a ChatCall and turns replies and failures into bytes and
status codes. Sleeping, counting, rate windows and connection aborts live in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .knobs import ModelKnobs

import json
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from .knobs import RateView
from .replies import ChatCall, SimReply

# Failure kinds beyond the dice-rolled ones in knobs.FAILURE_KINDS.
DOWN = "down"
NOT_FOUND = "not_found"  # the `retired` knob
STREAM_FAILED = "stream_failed"  # stream_fail_before_first_byte


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str  # one of knobs.FAILURE_KINDS, DOWN, STREAM_FAILED
    message: str
    retry_after_seconds: float | None = None


class Rejection(Exception):
    """Raised by parse_call when the request itself is wrong (missing header, field...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(kind, message)


class WireFormat(Protocol):
    name: str
    requires_key: bool
    stream_content_type: str

    @property
    def chat_routes(self) -> tuple[str, ...]: ...  # POST paths that run the chat pipeline

    def parse_call(self, request: web.Request, body: dict) -> ChatCall: ...
    def error_reply(self, failure: Failure) -> tuple[int, dict]: ...
    def rate_limit_headers(self, view: RateView) -> dict[str, str]: ...
    def request_id_headers(self, request_id: str) -> dict[str, str]: ...
    def reply_body(self, reply: SimReply) -> dict: ...
    def stream_head(self, reply: SimReply, call: ChatCall) -> list[bytes]: ...
    def stream_chunk(self, reply: SimReply, call: ChatCall, text: str) -> bytes: ...
    def stream_tail(self, reply: SimReply, call: ChatCall) -> list[bytes]: ...
    def stream_cut(self, reply: SimReply) -> bytes | None: ...  # a last frame before the abort, if any
    def info_routes(self, model_names: ModelNames) -> list[web.RouteDef]: ...


class ModelNames(Protocol):
    def model_names(self) -> list[str]: ...
    def knobs(self, model: str) -> ModelKnobs: ...


def sse(payload: dict, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def json_line(payload: dict) -> bytes:
    return (json.dumps(payload, separators=(",", ":")) + "\n").encode()


def bearer_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
