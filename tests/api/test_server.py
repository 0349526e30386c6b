"""The connection guard (api/server.py) on a real uvicorn server on 127.0.0.1: header cap, read timeouts,
connection cap. Timeouts are configured short (0.3 s) and every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from bkvy.api.server import ConnectionCounts, ConnectionLimits, default_max_connections, guarded_http_protocol
from bkvy.core.config.settings import load_settings

TIMEOUT_SECONDS = 0.3
WAIT_LIMIT_SECONDS = 5.0  # a bound on every wait, far above the timeouts under test
APP_SECONDS = 0.8  # a slow app, longer than any read timeout
LIMITS = ConnectionLimits(
    max_header_bytes=64 * 1024,
    header_read_timeout_seconds=TIMEOUT_SECONDS,
    body_read_timeout_seconds=TIMEOUT_SECONDS,
    max_connections=4,
)


async def echo_length_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Reads the whole body and answers its length; ``/slow`` first works longer than the read timeouts."""
    if scope["type"] != "http":
        return
    received = 0
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(APP_SECONDS)
    reply = b"%d" % received
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(reply))]})
    await send({"type": "http.response.body", "body": reply})


@dataclass
class RunningServer:
    port: int
    counts: ConnectionCounts

    @contextlib.contextmanager
    def ends_one(self, reason: str) -> Iterator[None]:
        """The block makes the server end exactly one connection for ``reason`` (bkvy_connections_ended_total)."""
        before = dict(self.counts.by_reason)
        yield
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS  # the server thread may count just after the client saw it
        while self.counts.by_reason == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.counts.by_reason == {**before, reason: before[reason] + 1}

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_LIMIT_SECONDS)
        return sock


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = uvicorn.Config(
        echo_length_app,
        host="127.0.0.1",
        port=0,
        http=guarded_http_protocol(LIMITS, counts := ConnectionCounts()),
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=30,
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    yield RunningServer(port, counts)
    uvicorn_server.should_exit = True
    thread.join(WAIT_LIMIT_SECONDS)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_one_reply(sock: socket.socket) -> bytes:
    """One reply with a content-length, read on a connection that stays open."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply else 0


def request(path: str = "/", *, headers: bytes = b"", body: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%scontent-length: %d\r\n\r\n%s" % (
        path.encode(),
        headers,
        len(body),
        body,
    )


def test_a_normal_request_is_answered(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(request(body=b"hello"))
        reply = read_until_closed(sock)
    assert status_of(reply) == 200 and reply.endswith(b"\r\n\r\n5")


def test_headers_just_under_the_cap_and_a_large_body_in_one_read_are_answered(server: RunningServer) -> None:
    # The read that crosses the cap ends the headers inside it: they are measured, and pass.
    header = b"x-filler: " + b"a" * (60 * 1024) + b"\r\n"
    with server.connect() as sock:
        sock.sendall(request(headers=header, body=b"b" * 500_000))
        reply = read_until_closed(sock)
    assert status_of(reply) == 200 and reply.endswith(b"500000")


def test_headers_past_the_cap_get_431(server: RunningServer) -> None:
    header = b"x-filler: " + b"a" * (100 * 1024) + b"\r\n"
    with server.ends_one("headers_too_large"):
        with server.connect() as sock:
            sock.sendall(request(headers=header))
            reply = read_until_closed(sock)
        assert status_of(reply) == 431
        assert b'"code": "request_header_fields_too_large"' in reply


def test_an_endless_header_is_refused_before_it_is_buffered(server: RunningServer) -> None:
    # 100 MB offered: the server answers 431 and closes after the cap, and stops reading, so the sender fails
    # long before it sent everything: the header is never held whole.
    offered_bytes = 100 * 1024 * 1024
    sent_bytes = 0
    chunk = b"a" * 65536
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nx-huge: ")
        started = time.monotonic()
        try:
            while sent_bytes < offered_bytes:
                sent_bytes += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed_seconds = time.monotonic() - started
        try:
            reply = sock.recv(65536)
        except ConnectionResetError:
            reply = b""
    assert sent_bytes < 16 * 1024 * 1024
    assert elapsed_seconds < WAIT_LIMIT_SECONDS
    assert reply == b"" or status_of(reply) == 431


def test_a_connection_that_sends_nothing_is_closed(server: RunningServer) -> None:
    with server.ends_one("idle_timeout"), server.connect() as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""  # closed without a reply: there was no request
        assert time.monotonic() - started < WAIT_LIMIT_SECONDS


def test_a_header_trickle_gets_408_and_is_closed(server: RunningServer) -> None:
    with server.ends_one("header_timeout"):
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")
            sock.settimeout(0.05)
            started = time.monotonic()
            reply = b""
            while time.monotonic() - started < WAIT_LIMIT_SECONDS:
                try:
                    sock.sendall(b"x-a: b\r\n")  # a header line every 50 ms: never idle, never done
                    reply = sock.recv(65536)
                    break
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
        assert status_of(reply) == 408


def test_a_stalled_body_gets_408_and_is_closed(server: RunningServer) -> None:
    with server.ends_one("body_timeout"):
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
            reply = read_until_closed(sock)
        assert status_of(reply) == 408 and b'"code": "request_timeout"' in reply


def test_an_app_slower_than_the_read_timeouts_is_not_cut(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(request("/slow", body=b"abc"))
        reply = read_until_closed(sock)
    assert status_of(reply) == 200 and reply.endswith(b"3")


def test_connections_past_the_cap_get_503_while_open_ones_work(server: RunningServer) -> None:
    keep_alive = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
    open_socks = [server.connect() for _ in range(LIMITS.max_connections)]
    try:
        for sock in open_socks:
            sock.sendall(keep_alive)
            assert status_of(read_one_reply(sock)) == 200
        with server.ends_one("too_many_connections"), server.connect() as refused:
            reply = read_until_closed(refused)
        assert status_of(reply) == 503 and b'"code": "too_many_connections"' in reply
        assert b"\r\nretry-after: 1\r\n" in reply
        open_socks[0].sendall(keep_alive)
        assert status_of(read_one_reply(open_socks[0])) == 200
    finally:
        for sock in open_socks:
            sock.close()


def test_default_connection_cap_leaves_descriptors_for_upstream_and_files() -> None:
    assert default_max_connections(128) == 48
    assert default_max_connections(1024) == 496
    assert default_max_connections(10) == 1


def test_limits_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "BKVY_MAX_HEADER_BYTES": "32768",
            "HEADER_READ_TIMEOUT_SECONDS": "2.5",
            "BODY_READ_TIMEOUT_SECONDS": "4",
            "BKVY_MAX_CONNECTIONS": "300",
        }
    )
    assert ConnectionLimits.from_settings(settings) == ConnectionLimits(32768, 2.5, 4.0, 300)
    defaults = ConnectionLimits.from_settings(load_settings({}))
    assert (defaults.max_header_bytes, defaults.header_read_timeout_seconds) == (64 * 1024, 5.0)
    assert defaults.body_read_timeout_seconds == 10.0 and defaults.max_connections == default_max_connections()


def test_the_cap_counts_each_request_on_a_kept_alive_connection(server: RunningServer) -> None:
    # 40 KiB of headers per request: many together pass the cap, each alone does not; then one that does.
    header = b"x-filler: " + b"a" * (40 * 1024) + b"\r\n"
    keep_alive = b"GET / HTTP/1.1\r\nHost: test\r\n%s\r\n"
    with server.connect() as sock:
        for _ in range(4):
            sock.sendall(keep_alive % header)
            assert status_of(read_one_reply(sock)) == 200
        sock.sendall(keep_alive % (header * 3))
        assert status_of(read_until_closed(sock)) == 431
