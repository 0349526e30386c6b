"""The HTTP/1.1 connection guard (issue 16): limits a hostile client meets before any request reaches the app.

uvicorn's httptools protocol buffers a request's headers without a cap and waits for them, and for the body,
without a deadline; an ASGI middleware sees a request only once its headers are whole, which is too late. So
``guarded_http_protocol`` subclasses that protocol and guards each connection as its bytes arrive:

- header size: the bytes of a request line and headers past ``max_header_bytes`` → 431 and close, counted
  per read, so at most one read (≤ 256 KiB) past the cap is ever held;
- header time: a request's line and headers must arrive within ``header_read_timeout_seconds`` of its first
  byte (of the connection, for the first request): else 408 and close (a connection that never sent a byte is
  closed without a reply); idle keep-alive between requests stays uvicorn's ``timeout_keep_alive``;
- body time: a gap longer than ``body_read_timeout_seconds`` while the body arrives → 408 (or a close, once a
  reply has started); a body the app is not reading yet (reads paused) or a client awaiting ``100 Continue``
  is not a slow client;
- connections: past ``max_connections`` open ones, a new connection gets 503 at once and is closed, so a flood
  of idle sockets cannot take every descriptor from the upstream sockets and the log files.

One timer per connection, armed when a request starts and left to lapse while the app works: a keep-alive
connection re-arms it at most once per timeout, so a request pays only a clock read and a few comparisons.
"""

from __future__ import annotations

import json
import logging
import resource
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bkvy.core.config.settings import Settings

log = logging.getLogger(__name__)

_DESCRIPTORS_FOR_FILES = 32  # logs, state files, the listening socket, the demo fleet's sockets
_PER_HEADER_FRAMING_BYTES = 4  # ": " and CRLF around each header line
_REQUEST_LINE_FRAMING_BYTES = 16  # method, " ", " HTTP/1.1", CRLF, and the blank line
_REFUSAL_LOG_EVERY = 1000


ABORT_EXTENSION = "bkvy.abort_connection"  # scope["extensions"][it]["abort"](): drop the connection, no drain


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    header_read_timeout_seconds: float
    body_read_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_read_timeout_seconds=settings.header_read_timeout_seconds,
            body_read_timeout_seconds=settings.body_read_timeout_seconds,
            max_connections=settings.max_connections or default_max_connections(),
        )


def default_max_connections(open_files_limit: int | None = None) -> int:
    """Half of the descriptors left after a reserve for files, so every client connection can hold one
    upstream socket: RLIMIT_NOFILE 1024 → 496, 128 → 48 (issue 16: 150 idle sockets at 128 starved the rest)."""
    if open_files_limit is None:
        open_files_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files_limit == resource.RLIM_INFINITY:
            open_files_limit = 1 << 20
    return max(1, (open_files_limit - _DESCRIPTORS_FOR_FILES) // 2)


def _reply(status: int, code: str, message: str, *, extra_headers: bytes = b"") -> bytes:
    """A whole reply in bkvy's error envelope, sent by the protocol itself (the app never saw the request)."""
    body = json.dumps({"success": False, "error": {"code": code, "message": message}}).encode()
    head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body)
    return STATUS_LINE[status] + head + extra_headers + b"\r\n" + body


_HEADERS_TOO_LARGE = 431
_REQUEST_TIMEOUT = 408
_TOO_MANY_CONNECTIONS = 503


class _HeadersTooLarge(Exception):
    """Raised inside the parser's callback to stop it before the app sees the request."""


class ConnectionCounts:
    """Connections this server ended itself, by reason (``bkvy_connections_ended_total{reason}`` on /metrics):
    ``too_many_connections`` (over BKVY_MAX_CONNECTIONS), ``headers_too_large``, ``header_timeout``,
    ``idle_timeout`` (not one byte sent), ``body_timeout``. Refusals are also logged every ``_REFUSAL_LOG_EVERY``."""

    REASONS = ("too_many_connections", "headers_too_large", "header_timeout", "idle_timeout", "body_timeout")

    def __init__(self) -> None:
        self.by_reason = dict.fromkeys(self.REASONS, 0)

    def add(self, reason: str) -> int:
        self.by_reason[reason] += 1
        return self.by_reason[reason]


def guarded_http_protocol(limits: ConnectionLimits, counts: ConnectionCounts | None = None) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)``, bound to ``limits``; one per server. ``counts`` tallies
    the connections it ends (give the same object to ``create_app`` for /metrics)."""
    replies = {
        _HEADERS_TOO_LARGE: _reply(
            _HEADERS_TOO_LARGE,
            "request_header_fields_too_large",
            f"The request line and headers exceed {limits.max_header_bytes} bytes (BKVY_MAX_HEADER_BYTES).",
        ),
        _REQUEST_TIMEOUT: _reply(
            _REQUEST_TIMEOUT, "request_timeout", "The request did not arrive in time; the connection is closed."
        ),
        _TOO_MANY_CONNECTIONS: _reply(
            _TOO_MANY_CONNECTIONS,
            "too_many_connections",
            "The server has too many open connections (BKVY_MAX_CONNECTIONS); retry shortly.",
            extra_headers=b"retry-after: 1\r\n",
        ),
    }
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "replies": replies, "counts": counts or ConnectionCounts()},
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Use through ``guarded_http_protocol``, which sets the class attributes below."""

    limits: ConnectionLimits
    replies: dict[int, bytes]
    counts: ConnectionCounts

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._time = self.loop.time
        self._max_header_bytes = self.limits.max_header_bytes
        self._is_awaiting_headers = True  # from a request's end (or the connection's start) to its headers' end
        self._header_bytes = 0  # bytes read since the request's first byte, while awaiting its headers
        self._headers_started_at: float | None = None  # None: no byte of the next request yet
        self._read_at = 0.0
        self._watchdog: Any = None  # asyncio.TimerHandle

    # --- connections ----------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            refused = self.counts.add("too_many_connections")
            if refused % _REFUSAL_LOG_EVERY == 1:
                log.warning(
                    "connection_refused",
                    extra={"refused_count": refused, "max_connections": self.limits.max_connections},
                )
            self._reply_and_close(_TOO_MANY_CONNECTIONS)
            return
        self._headers_started_at = self._read_at = self._time()
        self._arm(self.limits.header_read_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)

    # --- reading --------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._read_at = now = self._time()  # one clock read per read: most requests come in one
        if self._is_awaiting_headers:
            if self._headers_started_at is None:
                self._headers_started_at = now
                if self._watchdog is None:
                    self._arm(self.limits.header_read_timeout_seconds)
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._feed_past_header_cap(data)
                return
        HttpToolsProtocol.data_received(self, data)  # not super(): 40 ns less per read

    def _feed_past_header_cap(self, data: bytes) -> None:
        # This read may still end the headers within the cap (a body in the same read): on_headers_complete
        # then measures them exactly; otherwise the cap is passed and the request is refused.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self.counts.add("headers_too_large")
                self._reply_and_close(_HEADERS_TOO_LARGE)
                return
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:  # as uvicorn's data_received: the headers passed, measured
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._is_awaiting_headers:
            self.counts.add("headers_too_large")
            self._reply_and_close(_HEADERS_TOO_LARGE)

    def on_headers_complete(self) -> None:
        if self._header_bytes > self._max_header_bytes and self._measured_header_bytes() > self._max_header_bytes:
            raise _HeadersTooLarge
        self._is_awaiting_headers = False
        self._headers_started_at = None
        self._header_bytes = 0
        # A stream whose client stopped reading is ended by aborting the connection (``api.stream_relay``): a
        # close would wait for the full write buffer to drain, keeping the socket while the client never reads.
        self.scope["extensions"] = {ABORT_EXTENSION: {"abort": self.transport.abort}}
        HttpToolsProtocol.on_headers_complete(self)

    def _measured_header_bytes(self) -> int:
        framing = _REQUEST_LINE_FRAMING_BYTES + _PER_HEADER_FRAMING_BYTES * len(self.headers)
        return len(self.url) + framing + sum(len(name) + len(value) for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._is_awaiting_headers = True
        HttpToolsProtocol.on_message_complete(self)

    # --- the watchdog ---------------------------------------------------------------------------------

    def _arm(self, delay_seconds: float) -> None:
        self._watchdog = self.loop.call_later(delay_seconds, self._on_watchdog)

    def _on_watchdog(self) -> None:
        self._watchdog = None
        if self.transport.is_closing():
            return
        now = self._time()
        if self._is_awaiting_headers:
            started = self._headers_started_at
            if started is None:  # between requests: uvicorn's keep-alive timeout, or the app still replying
                return
            remaining = started + self.limits.header_read_timeout_seconds - now
            if remaining > 0:
                self._arm(remaining)
            elif self._header_bytes == 0:  # not one byte of a request: nobody to answer
                self.counts.add("idle_timeout")
                self.transport.close()
            else:
                self.counts.add("header_timeout")
                self._reply_and_close(_REQUEST_TIMEOUT)
            return
        cycle = self.cycle
        if cycle is None or self.flow.read_paused or cycle.waiting_for_100_continue:
            self._arm(self.limits.body_read_timeout_seconds)  # the app is not reading yet: not the client's fault
            return
        remaining = self._read_at + self.limits.body_read_timeout_seconds - now
        if remaining > 0:
            self._arm(remaining)
        else:
            self.counts.add("body_timeout")
            if cycle.response_started:
                self.transport.close()
            else:
                self._reply_and_close(_REQUEST_TIMEOUT)

    def _reply_and_close(self, status: int) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.response_complete = self.cycle.disconnected = True  # the app's own reply goes nowhere
        self.transport.write(self.replies[status])
        self.transport.close()
