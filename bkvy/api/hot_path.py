"""The hot endpoints of the table (``api.endpoints``, ``is_hot``) served straight from ASGI, ahead of FastAPI.

``POST /llm/*`` and ``POST /v1/chat/completions`` carry every request an app makes, so they skip the per-request
framework work the other routes pay for (middleware layers, route matching, a Request, dependency checks):
measured with ``benchmarks/run.py --quick``, this alone took ``/llm/direct`` at c=64 from 57 % to 89 % of the
reference forwarder's requests/s. They share the rest with the FastAPI routes: the endpoint table, the body
reader (``api.body.read_body``), the error mapping (``api.errors.failure_of``) and the metrics hook
(``api.http_metrics.observe_http``), and the secret scrubber (``utils.scrubber``: every body, event and header
value sent here; FastAPI's routes get it from ``api.scrub_send``). Every other path falls through to the FastAPI
app unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send

from bkvy.api.body import read_body
from bkvy.api.errors import failure_body, failure_of, method_not_allowed, new_request_id
from bkvy.api.http_metrics import observe_http
from bkvy.api.scrub_send import scrubbed_header_pairs
from bkvy.api.server import ABORT_EXTENSION
from bkvy.api.services import Services
from bkvy.api.stream_relay import SseReply
from bkvy.models.errors import ClientDisconnected
from bkvy.utils.scrubber import Scrubber

if TYPE_CHECKING:
    from bkvy.api.endpoints import Endpoint

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_JSON_TYPE = (b"content-type", b"application/json")


@dataclass(slots=True)
class JsonReply:
    payload: dict[str, object]
    headers: dict[str, str] | None = None
    status: int = 200
    after_sending: Callable[[], None] | None = None  # e.g. report the outcome once the reply is on its way


class Exchange:
    """One HTTP request on a hot path: its headers, its body (read with a size cap) and its request id."""

    __slots__ = ("services", "path", "request_id", "peer", "_headers", "_receive")

    def __init__(self, services: Services, scope: Scope, receive: Receive) -> None:
        self.services = services
        self.path: str = scope["path"]
        self.request_id = new_request_id()
        client = scope.get("client")
        self.peer: str | None = client[0] if client else None  # the socket peer (policy: trusted proxies)
        self._headers: list[tuple[bytes, bytes]] = scope["headers"]
        self._receive = receive

    def header(self, name: bytes) -> str | None:
        """A request header by its lower-case name (ASGI servers lower-case them)."""
        for key, value in self._headers:
            if key == name:
                return value.decode("latin-1")
        return None

    async def client_gone(self) -> None:
        """Returns when the client closes the connection (after the body was read: the next message an ASGI
        server sends is ``http.disconnect``). The executor awaits it only for a request that is already slow."""
        while (await self._receive())["type"] != "http.disconnect":
            pass

    async def body(self) -> bytes:
        """The whole JSON body (``api.body.read_body``): 415 unless declared JSON, 413 past MAX_BODY_BYTES."""
        return await read_body(
            self._receive,
            self.header(b"content-length"),
            self.services.settings.max_body_bytes,
            content_type=self.header(b"content-type"),
        )


Handler = Callable[[Exchange], Awaitable[JsonReply | SseReply]]
HandlersByMethod = dict[str, Handler]


class HotPaths:
    """The table's hot endpoints by path, then method; ``serve`` answers one request end to end."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self._by_path: dict[str, HandlersByMethod] = {}
        for endpoint in endpoints:
            if endpoint.is_hot:
                self._by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint.handler

    def routes(self) -> set[tuple[str, str]]:
        """Every (method, path) this dispatcher answers."""
        return {(method, path) for path, handlers in self._by_path.items() for method in handlers}

    def handlers_at(self, scope: Scope) -> HandlersByMethod | None:
        """The handlers of a hot path (any method: a wrong one gets its 405 here), or None for other paths."""
        return self._by_path.get(scope["path"]) if scope["type"] == "http" else None

    async def serve(
        self, handlers: HandlersByMethod, services: Services, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        exchange = Exchange(services, scope, receive)
        method = scope["method"]
        status = 500
        replying = False
        try:
            handler = handlers.get(method)
            if handler is None:
                raise method_not_allowed(method, exchange.path, handlers)
            reply = await handler(exchange)
            if isinstance(reply, SseReply):
                status, replying = 200, True
                assert services.relays is not None  # built by Services.start
                await services.relays.relay(send, receive, reply, abort=_abort_of(scope))
            else:
                status = reply.status
                try:
                    await _send_json(send, status, reply.payload, reply.headers, services.scrubber)
                finally:
                    if reply.after_sending is not None:
                        reply.after_sending()
        except ClientDisconnected:
            if replying:
                raise
            status = ClientDisconnected.status  # the client left (e.g. mid-body): no one to answer, not a 500
        except Exception as error:
            if replying:  # a stream has started: nothing more can be said on it
                raise
            failure = failure_of(error, method=method, route=exchange.path, request_id=exchange.request_id)
            status = failure.status
            payload, headers = failure_body(exchange.path, exchange.request_id, failure)
            await _send_json(send, status, payload, headers, services.scrubber)
        finally:  # a hot path is its own route template: these paths are fixed
            observe_http(services, exchange.path, method, status, time.perf_counter() - started)


def _abort_of(scope: Scope) -> Callable[[], None] | None:
    """The server's way to drop the connection at once (``api.server``), or None under another server."""
    extension = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
    return extension["abort"] if extension else None


async def _send_json(
    send: Send, status: int, payload: dict[str, object], headers: dict[str, str] | None, scrubber: Scrubber
) -> None:
    body = scrubber.scrub(_encode(payload).encode("utf-8"))  # same length; ~0.1 µs for 3 KB (utils.scrubber)
    raw_headers = [_JSON_TYPE, (b"content-length", str(len(body)).encode("latin-1"))]
    if headers:
        raw_headers += scrubbed_header_pairs(headers, scrubber)
    start: Message = {"type": "http.response.start", "status": status, "headers": raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
