"""The two reference forwarders bkvy is measured against: the smallest FastAPI apps that forward
``POST /v1/chat/completions`` raw (bytes in, bytes out; SSE passed through chunk by chunk) to
``BENCH_UPSTREAM_URL``.

    BENCH_UPSTREAM_URL=http://127.0.0.1:18100 uvicorn benchmarks.reference_forwarders:aiohttp_app ...
    BENCH_UPSTREAM_URL=http://127.0.0.1:18100 uvicorn benchmarks.reference_forwarders:httpx_app ...

``aiohttp_app`` (one shared ``aiohttp.ClientSession``) is the bar bkvy should reach; ``httpx_app`` (one
pooled ``httpx.AsyncClient``) shows why bkvy does not use httpx.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

_UPSTREAM_URL = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:18100").rstrip("/")
_CHAT_URL = _UPSTREAM_URL + "/v1/chat/completions"
_POOL_SIZE = 1024
_SSE = "text/event-stream"


@asynccontextmanager
async def _aiohttp_lifespan(app: FastAPI) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=_POOL_SIZE, limit_per_host=_POOL_SIZE, ttl_dns_cache=300)
    app.state.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))
    yield
    await app.state.session.close()


aiohttp_app = FastAPI(lifespan=_aiohttp_lifespan)


@aiohttp_app.post("/v1/chat/completions")
async def forward_with_aiohttp(request: Request) -> Response:
    session: aiohttp.ClientSession = request.app.state.session
    body = await request.body()
    upstream = await session.post(_CHAT_URL, data=body, headers={"content-type": "application/json"})
    content_type = upstream.headers.get("content-type", "application/json")
    if content_type.startswith(_SSE):

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.content.iter_any():
                    yield chunk
            finally:
                upstream.release()

        return StreamingResponse(relay(), status_code=upstream.status, media_type=_SSE)
    payload = await upstream.read()
    upstream.release()
    return Response(payload, status_code=upstream.status, media_type=content_type)


@asynccontextmanager
async def _httpx_lifespan(app: FastAPI) -> AsyncIterator[None]:
    limits = httpx.Limits(max_connections=_POOL_SIZE, max_keepalive_connections=_POOL_SIZE)
    app.state.client = httpx.AsyncClient(limits=limits, timeout=120.0)
    yield
    await app.state.client.aclose()


httpx_app = FastAPI(lifespan=_httpx_lifespan)


@httpx_app.post("/v1/chat/completions")
async def forward_with_httpx(request: Request) -> Response:
    client: httpx.AsyncClient = request.app.state.client
    body = await request.body()
    upstream_request = client.build_request(
        "POST", _CHAT_URL, content=body, headers={"content-type": "application/json"}
    )
    upstream = await client.send(upstream_request, stream=True)
    content_type = upstream.headers.get("content-type", "application/json")
    if content_type.startswith(_SSE):

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, media_type=_SSE)
    payload = await upstream.aread()
    await upstream.aclose()
    return Response(payload, status_code=upstream.status_code, media_type=content_type)
