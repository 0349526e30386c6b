"""A minimal, fast OpenAI-format upstream for benchmarks: raw asyncio (uvloop) HTTP/1.1 with keep-alive.

    python benchmarks/fast_upstream.py --port 18100 [--delay-ms 0]

Every POST gets a canned ``chat.completion`` JSON, or, when the body asks for ``"stream": true``, a canned
SSE stream (first chunk right away, then ``--chunks`` chunks ``--chunk-gap-ms`` apart, then ``[DONE]``), so a
gateway that buffers the whole stream shows up in time-to-first-token. Any GET gets a model list.
``POST /_bench/delay`` with ``{"delay_ms": 100}`` changes the delay before every reply at runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        "system_fingerprint": "fp_bench",
    },
    separators=(",", ":"),
).encode()
_MODELS = b'{"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"bench"}]}'
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_LENGTH_RE = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _sse_chunk(delta: dict, finish_reason: str | None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    frame = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(frame), frame)  # one HTTP chunk per SSE frame


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_FIRST_FRAME = _sse_chunk({"role": "assistant", "content": ""}, None)
_TOKEN_FRAME = _sse_chunk({"content": "tok "}, None)
_LAST_FRAMES = _sse_chunk({}, "stop") + b"%x\r\n%s\r\n" % (14, b"data: [DONE]\n\n") + b"0\r\n\r\n"


def _response(status_line: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status_line
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


COMPLETION_RESPONSE = _response(b"200 OK", b"application/json", COMPLETION)
_MODELS_RESPONSE = _response(b"200 OK", b"application/json", _MODELS)
_OK_RESPONSE = _response(b"200 OK", b"application/json", b"{}")


class _Settings:
    delay_seconds = 0.0
    chunks = 8
    chunk_gap_seconds = 0.002


class _Upstream(asyncio.Protocol):
    """Parses pipelined-free HTTP/1.1 requests from a buffer; replies in order, one task per slow reply."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._tail: asyncio.Future | None = None  # keeps replies in request order when delayed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            match = _LENGTH_RE.search(self._buffer, 0, head_end + 2)
            body_length = int(match.group(1)) if match else 0
            end = head_end + 4 + body_length
            if len(self._buffer) < end:
                return
            head, body = self._buffer[:head_end], self._buffer[head_end + 4 : end]
            self._buffer = self._buffer[end:]
            self._dispatch(head, body)

    def _dispatch(self, head: bytes, body: bytes) -> None:
        if self._tail is not None and self._tail.done():
            self._tail = None
        if head.startswith(b"GET "):
            self._write(_MODELS_RESPONSE)
        elif head.startswith(b"POST /_bench/delay "):
            _Settings.delay_seconds = float(json.loads(body)["delay_ms"]) / 1000.0
            self._write(_OK_RESPONSE)
        elif _STREAM_RE.search(body):
            self._tail = asyncio.ensure_future(self._stream(self._tail))
        elif _Settings.delay_seconds > 0 or self._tail is not None:
            self._tail = asyncio.ensure_future(self._delayed(self._tail))
        else:
            self._write(COMPLETION_RESPONSE)

    async def _delayed(self, previous: asyncio.Future | None) -> None:
        if _Settings.delay_seconds > 0:
            await asyncio.sleep(_Settings.delay_seconds)
        if previous is not None:
            await previous
        self._write(COMPLETION_RESPONSE)

    async def _stream(self, previous: asyncio.Future | None) -> None:
        if previous is not None:
            await previous
        if _Settings.delay_seconds > 0:
            await asyncio.sleep(_Settings.delay_seconds)
        self._write(_STREAM_HEAD + _FIRST_FRAME)
        for _ in range(_Settings.chunks):
            await asyncio.sleep(_Settings.chunk_gap_seconds)
            self._write(_TOKEN_FRAME)
        self._write(_LAST_FRAMES)

    def _write(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Upstream, host, port, backlog=4096, reuse_address=True)
    print(f"fast upstream on http://{host}:{port} delay={_Settings.delay_seconds * 1000:g} ms", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay before every reply")
    parser.add_argument("--chunks", type=int, default=8, help="token chunks per stream after the first")
    parser.add_argument("--chunk-gap-ms", type=float, default=2.0, help="gap between stream chunks")
    args = parser.parse_args()
    _Settings.delay_seconds = args.delay_ms / 1000.0
    _Settings.chunks = args.chunks
    _Settings.chunk_gap_seconds = args.chunk_gap_ms / 1000.0
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
