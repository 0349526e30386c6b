"""Streams whose client never reads (issue 16, item 6), on a real uvicorn server and real sockets on 127.0.0.1:
each holds a bounded buffer (bkvy stops reading the upstream), and a write that waits
STREAM_WRITE_TIMEOUT_SECONDS (short here) ends the stream as ``client_stalled`` and releases the upstream."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from bkvy.api.app import create_app
from bkvy.api.server import ConnectionLimits, guarded_http_protocol
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_config
from bkvy.sim import SimFleet

# ~20 MB of SSE: more than every buffer on the way, so the provider is still writing when the stream is cut
LONG_ANSWER_TOKENS = 200_000
MEMORY_ANSWER_TOKENS = 20_000  # ~2 MB: enough to fill bkvy's buffers, and quick to build under tracemalloc
STALL_TIMEOUT_SECONDS = 0.5


_TRACE_FRAMES = 1  # the allocating frame: the simulated provider builds its whole reply in its own code
_NOT_THE_SIM = tracemalloc.Filter(False, "*/bkvy/sim/*")


def _gateway_bytes() -> int:
    """Python memory allocated now, but not by the simulated provider (it runs in this process too)."""
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces([_NOT_THE_SIM]).statistics("filename"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def _server(fleet: SimFleet) -> AsyncIterator[tuple[FastAPI, int, uvicorn.Server]]:
    settings = load_settings(
        {}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), stream_write_timeout_seconds=STALL_TIMEOUT_SECONDS
    )
    app = create_app(settings, demo_config(fleet))
    port = _free_port()
    protocol = guarded_http_protocol(ConnectionLimits.from_settings(settings))  # as main.py serves
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", http=protocol))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # ≤ 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield app, port, server
    finally:
        server.should_exit = True
        await serving


async def _unread_stream(port: int) -> socket.socket:
    """A streamed request on a socket whose small receive window is never read."""
    body = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: bkvy\r\ncontent-type: application/json\r\n"
    head += f"content-length: {len(body)}\r\n\r\n"
    await loop.sock_sendall(sock, (head + body).encode())
    return sock


async def test_a_client_that_stops_reading_is_cut_as_stalled_and_the_upstream_released(fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").tokens_per_reply = LONG_ANSWER_TOKENS
    async with _server(fleet) as (app, port, _):
        outcomes: list[RequestOutcome] = []
        ended = asyncio.Event()
        app.state.services.executor.add_observer(lambda outcome: (outcomes.append(outcome), ended.set()))
        sock = await _unread_stream(port)
        try:
            await asyncio.wait_for(ended.wait(), 10)
        finally:
            sock.close()
        [outcome] = outcomes
        assert outcome.error is not None and outcome.error.code == "client_stalled"
        assert [a.outcome.value for a in outcome.attempts] == ["client_stalled"]
        assert app.state.services.relays.live_count == 0
        stats = fleet.servers["openai"].stats
        for _ in range(200):  # the upstream sees the hang-up (≤ 2 s)
            if stats.client_disconnects:
                break
            await asyncio.sleep(0.01)
        assert stats.client_disconnects == 1


async def test_each_unread_stream_holds_a_bounded_buffer(fleet: SimFleet) -> None:
    """Measured when the first stream is cut: by then every stream has been stalled for the whole timeout, every
    buffer on the way full. Before the fix each held ~1.8 MB of Python objects here, after it ~0.35 MB."""
    streams = 3
    fleet.servers["openai"].knobs("gpt-4o-mini").tokens_per_reply = MEMORY_ANSWER_TOKENS
    async with _server(fleet) as (app, port, _):
        cut_memory: list[int] = []
        first_cut = asyncio.Event()

        def on_outcome(outcome: RequestOutcome) -> None:
            if not cut_memory:
                cut_memory.append(_gateway_bytes())
                first_cut.set()

        app.state.services.executor.add_observer(on_outcome)
        tracemalloc.start(_TRACE_FRAMES)
        try:
            before = _gateway_bytes()
            sockets = [await _unread_stream(port) for _ in range(streams)]
            await asyncio.wait_for(first_cut.wait(), 30)
        finally:
            tracemalloc.stop()
        for sock in sockets:
            sock.close()
        per_stream_bytes = (cut_memory[0] - before) / streams
        assert per_stream_bytes < 800_000, f"{per_stream_bytes / 1000:.0f} KB per unread stream"


async def test_a_stalled_client_s_connection_is_dropped_at_once_not_left_to_drain(fleet: SimFleet) -> None:
    """A close would wait for the full write buffer to drain, which a client that reads nothing never allows:
    the socket (and its descriptor) would stay. The stall aborts the connection instead (``api.server``)."""
    fleet.servers["openai"].knobs("gpt-4o-mini").tokens_per_reply = LONG_ANSWER_TOKENS
    async with _server(fleet) as (app, port, server):
        ended = asyncio.Event()
        app.state.services.executor.add_observer(lambda outcome: ended.set())
        sock = await _unread_stream(port)
        try:
            await asyncio.wait_for(ended.wait(), 10)
            for _ in range(200):  # ≤ 2 s; the client still reads nothing
                if not server.server_state.connections:
                    break
                await asyncio.sleep(0.01)
            assert not server.server_state.connections
        finally:
            sock.close()
