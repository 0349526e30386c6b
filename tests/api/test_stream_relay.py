"""The stream relay's own rules, on a fake clock and a fake server ``send``: a write that waits a whole
STREAM_WRITE_TIMEOUT_SECONDS cuts the stream as ``client_stalled``; shutdown ends a stream with its error event,
as ``shutdown``; a stream that keeps moving is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from starlette.types import Message

from bkvy.api.stream_relay import SseReply, StreamRelays, shutdown_cut_seconds
from bkvy.clock import FakeClock
from bkvy.models.errors import BkvyError
from bkvy.models.outcomes import AttemptOutcome
from bkvy.utils.scrubber import Scrubber

TIMEOUT_SECONDS = 30.0
TICK_SECONDS = TIMEOUT_SECONDS / 4


class _Stream:
    """What the relay needs of a ``LiveStream``: how it was cut, and whether it was closed."""

    def __init__(self) -> None:
        self.cut_outcome: AttemptOutcome | None = None
        self.is_closed = False

    def cut_as(self, outcome: AttemptOutcome) -> None:
        self.cut_outcome = outcome

    async def aclose(self) -> None:
        self.is_closed = True


class _Server:
    """A server's ``send``: each body write waits until ``is_blocked`` is cleared (a full socket buffer)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.unblocked = asyncio.Event()
        self.unblocked.set()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("more_body"):
            await self.unblocked.wait()
        self.sent.append(message)

    async def receive(self) -> Message:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def _events(count: int) -> AsyncGenerator[bytes, None]:
    for index in range(count):
        yield f"data: {index}\n\n".encode()


def _error_event(error: BkvyError) -> bytes:
    return f"event: error\ndata: {error.code}\n\n".encode()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _reply(stream: _Stream, count: int = 3) -> SseReply:
    return SseReply(_events(count), {}, stream, _error_event)  # type: ignore[arg-type]


async def _advance_ticks(clock: FakeClock, ticks: int) -> None:
    for _ in range(ticks):
        clock.advance(TICK_SECONDS)
        await _settle()


async def test_a_write_that_waits_a_whole_timeout_cuts_the_stream_as_client_stalled() -> None:
    clock, server, stream = FakeClock(), _Server(), _Stream()
    relays = StreamRelays(clock, write_timeout_seconds=TIMEOUT_SECONDS, scrubber=Scrubber())
    server.unblocked.clear()
    relaying = asyncio.create_task(relays.relay(server.send, server.receive, _reply(stream)))
    await _settle()
    await _advance_ticks(clock, 3)  # up to 30 s blocked, never a whole timeout counted from the first tick
    assert not relaying.done() and stream.cut_outcome is None
    await _advance_ticks(clock, 2)
    await asyncio.wait_for(relaying, 1)  # the relay returns; it does not raise
    assert stream.cut_outcome is AttemptOutcome.CLIENT_STALLED and stream.is_closed
    assert server.bodies() == []  # nothing more is written to a client that does not read
    assert relays.live_count == 0


async def test_a_stream_that_keeps_moving_is_never_cut() -> None:
    clock, server, stream = FakeClock(), _Server(), _Stream()
    relays = StreamRelays(clock, write_timeout_seconds=TIMEOUT_SECONDS, scrubber=Scrubber())
    relaying = asyncio.create_task(relays.relay(server.send, server.receive, _reply(stream, count=3)))
    await _settle()
    await _advance_ticks(clock, 8)
    await asyncio.wait_for(relaying, 1)
    assert stream.cut_outcome is None
    assert server.bodies() == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]


async def test_shutdown_ends_a_running_stream_with_its_error_event() -> None:
    clock, server, stream = FakeClock(), _Server(), _Stream()
    relays = StreamRelays(clock, write_timeout_seconds=TIMEOUT_SECONDS, scrubber=Scrubber())

    async def endless() -> AsyncGenerator[bytes, None]:
        yield b"data: first\n\n"
        await asyncio.Event().wait()  # the upstream is still generating
        yield b""

    reply = SseReply(endless(), {}, stream, _error_event)  # type: ignore[arg-type]
    relaying = asyncio.create_task(relays.relay(server.send, server.receive, reply))
    await _settle()
    relays.end_all_after(9.0)
    clock.advance(8.9)
    await _settle()
    assert not relaying.done()
    clock.advance(0.1)
    await asyncio.wait_for(relaying, 1)
    assert stream.cut_outcome is AttemptOutcome.SHUTDOWN and stream.is_closed
    assert server.bodies() == [b"data: first\n\n", b"event: error\ndata: shutdown\n\n", b""]


@pytest.mark.parametrize("grace,cut", [(10.0, 9.0), (30.0, 29.0), (2.0, 1.0), (1.0, 0.5)])
def test_streams_are_ended_a_second_before_the_grace_period_ends(grace: float, cut: float) -> None:
    assert shutdown_cut_seconds(grace) == cut
