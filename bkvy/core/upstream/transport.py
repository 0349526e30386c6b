"""The only I/O with providers: one shared aiohttp session behind a small seam (STYLE: transport).

Connection failures are mapped to ``UpstreamError`` here, once; HTTP statuses are the adapters' job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest

# A stream's read buffer, and one read at most. aiohttp stops reading the socket past twice its read buffer
# (default 64 KiB), so a client that does not read holds up to that much of the upstream, in small bytes objects:
# ~200 KB per stream. And ``iter_any`` handed over everything buffered, ~250 KB per read, decoded and re-encoded
# whole in front of a blocked write (issue 16).
_STREAM_READ_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class StreamHead:
    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        """Send one request and read the whole reply. Raises UpstreamError(connection)."""
        ...

    def stream(self, request: UpstreamRequest) -> AbstractAsyncContextManager[StreamHead]:
        """Open a streamed reply; the context closes the upstream connection on exit."""
        ...


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` for the whole process, sized for thousands of concurrent calls."""

    def __init__(self, *, max_connections: int = 0, max_connections_per_host: int = 0) -> None:
        # 0 = no cap: concurrency is bounded by rate limits and client load, not by an artificial pool size.
        self._max_connections = max_connections
        self._max_connections_per_host = max_connections_per_host
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=self._max_connections_per_host,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True, trust_env=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("transport not started")
        return self._session

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        session = self._require_session()
        body = None if request.json_body is None else json.dumps(request.json_body).encode()
        try:
            async with session.request(
                request.method, request.url, headers=request.headers, data=body, allow_redirects=False
            ) as response:
                payload = await response.read()
                return UpstreamReply(response.status, _lower_headers(response.headers), payload)
        except TimeoutError:
            raise UpstreamError(ErrorClass.TIMEOUT, "upstream timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(ErrorClass.CONNECTION, f"connection failed: {exc.__class__.__name__}") from None

    @asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamHead]:
        session = self._require_session()
        body = None if request.json_body is None else json.dumps(request.json_body).encode()
        try:
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=body,
                allow_redirects=False,
                read_bufsize=_STREAM_READ_BYTES,
            )
        except TimeoutError:
            raise UpstreamError(ErrorClass.TIMEOUT, "upstream timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(ErrorClass.CONNECTION, f"connection failed: {exc.__class__.__name__}") from None
        try:
            yield StreamHead(response.status, _lower_headers(response.headers), _iter_chunks(response))
        finally:
            response.close()


async def _iter_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(_STREAM_READ_BYTES):  # what has arrived, up to the cap
            yield chunk
    except TimeoutError:
        raise UpstreamError(ErrorClass.TIMEOUT, "upstream stream timed out") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(ErrorClass.CONNECTION, f"stream broken: {exc.__class__.__name__}") from None
