"""The routing endpoints served straight from ASGI, ahead of FastAPI's middleware, routing and Request objects.

``POST /llm/*`` and ``POST /v1/chat/completions`` carry every request an app makes, so they skip the per-request
framework work the other routes pay for (middleware layers, route matching, a Request, dependency checks):
measured with ``benchmarks/run.py --quick``, this alone took ``/llm/direct`` at c=64 from 57 % to 89 % of the
reference forwarder's requests/s. What the middleware did here is
done inline: the failure envelope (same shapes as ``api.errors``) and the ``/metrics`` HTTP counter. Every
other path and method falls through to the FastAPI app unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from bkvy.api.errors import failure_payload, new_request_id
from bkvy.api.http_metrics import HTTP_METHODS
from bkvy.api.services import Services
from bkvy.models.errors import BkvyError, BodyTooLarge, InvalidRequest, MethodNotAllowed

log = logging.getLogger(__name__)

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_JSON_TYPE = (b"content-type", b"application/json")


@dataclass(slots=True)
class JsonReply:
    payload: dict[str, object]
    headers: dict[str, str] | None = None
    status: int = 200
    after_sending: Callable[[], None] | None = None   # e.g. report the outcome once the reply is on its way


@dataclass(slots=True)
class SseReply:
    """A ``text/event-stream`` reply: ``events`` is relayed as it comes; a client that leaves cancels it."""

    events: AsyncIterator[bytes]
    headers: dict[str, str]


class Exchange:
    """One HTTP request on a hot path: its headers, its body (read with a size cap) and its request id."""

    __slots__ = ("services", "path", "request_id", "_headers", "_receive")

    def __init__(self, services: Services, scope: Scope, receive: Receive) -> None:
        self.services = services
        self.path: str = scope["path"]
        self.request_id = new_request_id()
        self._headers: list[tuple[bytes, bytes]] = scope["headers"]
        self._receive = receive

    def header(self, name: bytes) -> str | None:
        """A request header by its lower-case name (ASGI servers lower-case them)."""
        for key, value in self._headers:
            if key == name:
                return value.decode("latin-1")
        return None

    async def body(self) -> bytes:
        """The whole body, refused (413) once it passes the configured limit, declared or not."""
        limit = self.services.settings.max_body_bytes
        declared = self.header(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise InvalidRequest("Content-Length is not a number")
            if int(declared) > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
        message = await self._receive()
        body = message.get("body", b"")
        if not message.get("more_body", False) and len(body) <= limit:
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise InvalidRequest("the client closed the connection before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
            chunks.append(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        return b"".join(chunks)


Handler = Callable[[Exchange], Awaitable[JsonReply | SseReply]]


class HotPaths:
    """``path → handler`` for POST requests; ``serve`` answers one request end to end."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self._handlers = handlers

    def handler_for(self, scope: Scope) -> Handler | None:
        return self._handlers.get(scope["path"]) if scope["type"] == "http" else None

    async def serve(self, handler: Handler, services: Services, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        exchange = Exchange(services, scope, receive)
        method = scope["method"]
        status = 500
        replying = False
        try:
            if method != "POST":
                raise MethodNotAllowed(f"{method} is not allowed on {exchange.path}; use POST", allow="POST")
            reply = await handler(exchange)
            if isinstance(reply, SseReply):
                status, replying = 200, True
                await _send_events(send, receive, reply)
            else:
                status = reply.status
                try:
                    await _send_json(send, status, reply.payload, reply.headers)
                finally:
                    if reply.after_sending is not None:
                        reply.after_sending()
        except Exception as error:
            if replying:   # a stream has started: nothing more can be said on it
                raise
            if not isinstance(error, BkvyError):
                log.error("unhandled_error", extra={"request_id": exchange.request_id, "error": type(error).__name__})
                error = BkvyError("internal error; see the gateway log")
            status = error.status
            payload, headers = failure_payload(exchange.path, exchange.request_id, error)
            await _send_json(send, status, payload, headers)
        finally:
            records = services.records
            if records is not None:   # labelled by the route's template, never the raw path: these paths are fixed
                records.metrics.observe_http(exchange.path, method if method in HTTP_METHODS else "other", status,
                                             time.perf_counter() - started)


async def _send_events(send: Send, receive: Receive, reply: SseReply) -> None:
    """Relay the events, one body message each (no buffering), until they end or the client leaves.

    ASGI servers before spec 2.4 drop writes to a closed connection silently, so a watcher waits for
    ``http.disconnect`` and cancels the relay: the upstream stream is closed at once, not read to its end.
    (A task group, as Starlette's StreamingResponse uses, costs ~200 µs per stream; this costs one task.)
    """
    relay = asyncio.current_task()
    assert relay is not None
    is_finished = is_disconnected = False

    async def watch_disconnect() -> None:
        nonlocal is_disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        if not is_finished:
            is_disconnected = True
            relay.cancel()

    raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw_headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
    watcher: asyncio.Task[None] | None = None
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        async for event in reply.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if watcher is None:   # after the first content went out: not on the time to first token
                watcher = asyncio.create_task(watch_disconnect())
        is_finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not is_disconnected:
            raise
        relay.uncancel()   # the client left: the stream's own handlers have recorded it; nothing to send
    finally:
        is_finished = True
        if watcher is not None:
            watcher.cancel()


async def _send_json(send: Send, status: int, payload: dict[str, object], headers: dict[str, str] | None) -> None:
    body = _encode(payload).encode("utf-8")
    raw_headers = [_JSON_TYPE, (b"content-length", str(len(body)).encode("latin-1"))]
    if headers:
        raw_headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    start: Message = {"type": "http.response.start", "status": status, "headers": raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
