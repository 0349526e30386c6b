"""Relaying a stream to its client, and the three ways bkvy stops one early (issue 16).

- **The client leaves**: a watcher waits for ``http.disconnect`` and cancels the relay, so the upstream stream is
  closed at once, not read to its end (``client_disconnected``).
- **The client stops reading**: the relay writes one event at a time and the server's ``send`` waits while the
  socket's write buffer is full (uvicorn's flow control), so nothing piles up in bkvy and the upstream is not read
  further (aiohttp stops reading the socket once its own buffer is full). A ``send`` that waits
  ``STREAM_WRITE_TIMEOUT_SECONDS`` ends the stream (``client_stalled``) and releases the upstream. One watchdog
  tick (``clock.call_later``) checks every live stream a few times per timeout, rather than a timer per write:
  ``asyncio.timeout`` rescheduled around each ``send`` cost 4-6.6 µs per event (measured, 2026-12-01).
- **bkvy stops** (SIGTERM): ``end_all_after`` ends every stream still running before the grace period runs out,
  with the stream's own error event (``shutdown``), so the client knows it was cut and the row is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Send

from bkvy.api.scrub_send import scrubbed_header_pairs
from bkvy.clock import Clock, Timer
from bkvy.core.execution.streaming import LiveStream
from bkvy.models.errors import BkvyError, StreamShutdown
from bkvy.models.outcomes import AttemptOutcome
from bkvy.utils.scrubber import Scrubber

log = logging.getLogger(__name__)

_TICKS_PER_TIMEOUT = 4  # a stalled write ends after 1 to 1.25 timeouts
_SHUTDOWN_MARGIN_SECONDS = 1.0  # to send the error events and record the rows before the server cuts the rest


def shutdown_cut_seconds(grace_seconds: float) -> float:
    """When, after shutdown begins, the streams still running are ended: a second before the grace period ends
    (SHUTDOWN_GRACE_SECONDS), or half-way through a grace period of two seconds or less."""
    return max(grace_seconds - _SHUTDOWN_MARGIN_SECONDS, grace_seconds / 2)


class RelayedStream(Protocol):
    """What a relay ends: a ``LiveStream``, or a cached reply told as a stream (``api.cache_gate``)."""

    def cut_as(self, outcome: AttemptOutcome) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class SseReply:
    """A ``text/event-stream`` reply: ``events`` is relayed as it comes; a client that leaves cancels it.
    ``stream`` is what ``events`` reads; ``error_event`` renders an error in the stream's own format."""

    events: AsyncGenerator[bytes, None]
    headers: dict[str, str]
    stream: LiveStream | RelayedStream
    error_event: Callable[[BkvyError], bytes]


class _Relay:
    """One stream being relayed: its task, and how far its writes have got (read by the watchdog)."""

    __slots__ = ("task", "stream", "writes", "is_writing", "seen_writes", "stalled_ticks", "cut_outcome")

    def __init__(self, task: asyncio.Task[object], stream: LiveStream | RelayedStream) -> None:
        self.task = task
        self.stream = stream
        self.writes = 0  # counted as each write starts: the same count on two ticks is one write still waiting
        self.is_writing = False
        self.seen_writes = -1
        self.stalled_ticks = 0
        self.cut_outcome: AttemptOutcome | None = None  # set when bkvy itself cancels the relay

    def cut(self, outcome: AttemptOutcome) -> None:
        if self.cut_outcome is None:
            self.cut_outcome = outcome
            self.stream.cut_as(outcome)
            self.task.cancel()


class StreamRelays:
    """Every stream being relayed in this process: the write watchdog and the shutdown cut."""

    def __init__(self, clock: Clock, *, write_timeout_seconds: float, scrubber: Scrubber) -> None:
        self._clock = clock
        self._scrubber = scrubber  # every header value and event masked (``utils.scrubber``)
        self._tick_seconds = write_timeout_seconds / _TICKS_PER_TIMEOUT
        self._live: set[_Relay] = set()
        self._watchdog: Timer | None = None
        self._is_ending = False
        self._end_timer: Timer | None = None

    @property
    def live_count(self) -> int:
        return len(self._live)

    def end_all_after(self, seconds: float) -> None:
        """Shutdown has begun: in ``seconds``, end every stream still running (and any that starts later) with
        an error event, recorded as ``shutdown``."""
        if self._end_timer is None:
            self._end_timer = self._clock.call_later(seconds, self._end_all)

    def _end_all(self) -> None:
        self._is_ending = True
        if self._live:
            log.warning("streams_ended_by_shutdown", extra={"streams": len(self._live)})
        for relay in list(self._live):
            relay.cut(AttemptOutcome.SHUTDOWN)

    async def relay(
        self, send: Send, receive: Receive, reply: SseReply, *, abort: Callable[[], None] | None = None
    ) -> None:
        """Relay the events, one body message each (no buffering), until they end, the client leaves or stops
        reading, or shutdown ends the stream."""
        task = asyncio.current_task()
        assert task is not None
        relay = _Relay(task, reply.stream)
        self._live.add(relay)
        if self._watchdog is None:
            self._watchdog = self._clock.call_later(self._tick_seconds, self._tick)
        if self._is_ending:
            relay.cut(AttemptOutcome.SHUTDOWN)
        try:
            await _relay_events(send, receive, reply, relay, self._scrubber, abort)
        finally:
            self._live.discard(relay)

    def _tick(self) -> None:
        """Every live stream whose one write has waited a whole timeout is cut as ``client_stalled``."""
        self._watchdog = None
        for relay in list(self._live):
            if relay.is_writing and relay.writes == relay.seen_writes:
                relay.stalled_ticks += 1
                if relay.stalled_ticks >= _TICKS_PER_TIMEOUT:
                    relay.cut(AttemptOutcome.CLIENT_STALLED)
            else:
                relay.seen_writes, relay.stalled_ticks = relay.writes, 0
        if self._live:
            self._watchdog = self._clock.call_later(self._tick_seconds, self._tick)


async def _relay_events(
    send: Send,
    receive: Receive,
    reply: SseReply,
    relay: _Relay,
    scrubber: Scrubber,
    abort: Callable[[], None] | None,
) -> None:
    """ASGI servers before spec 2.4 drop writes to a closed connection silently, so a watcher waits for
    ``http.disconnect`` and cancels the relay. (A task group, as Starlette's StreamingResponse uses, costs ~200 µs
    per stream; this costs one task.)"""
    is_finished = False

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not is_finished:
            relay.cut(AttemptOutcome.CLIENT_DISCONNECTED)

    raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw_headers += scrubbed_header_pairs(reply.headers, scrubber)
    watcher: asyncio.Task[None] | None = None
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        async for event in reply.events:
            relay.writes += 1
            relay.is_writing = True
            await send({"type": "http.response.body", "body": scrubber.scrub(event), "more_body": True})
            relay.is_writing = False
            if watcher is None:  # after the first content went out: not on the time to first token
                watcher = asyncio.create_task(watch_disconnect())
        is_finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if relay.cut_outcome is None:
            raise
        relay.task.uncancel()
        await reply.events.aclose()
        await reply.stream.aclose()  # records the cut (``LiveStream.cut_as``) unless done, closes the upstream
        if relay.cut_outcome is AttemptOutcome.SHUTDOWN:
            await _send_closing_error(send, reply)
        elif relay.cut_outcome is AttemptOutcome.CLIENT_STALLED and abort is not None:
            abort()  # the client reads nothing: drop the socket now rather than wait for its buffer to drain
        # else the response stays incomplete; the server closes the connection once the app returns
    finally:
        is_finished = True
        if watcher is not None:
            watcher.cancel()


async def _send_closing_error(send: Send, reply: SseReply) -> None:
    error = StreamShutdown("bkvy is shutting down; the stream was ended before its end. Retry the request")
    await send({"type": "http.response.body", "body": reply.error_event(error), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
