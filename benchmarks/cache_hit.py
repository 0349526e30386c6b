"""The response cache's hit: bkvy's own time per request, without sockets (issue 20 §1).

The real app is called as ASGI in-process (as ``hot_path_micro.py`` does), its transport answering at once, so
a row is all of bkvy's work for one request: parse, authenticate, key the request (sha256 of its normal form),
look it up, render the reply (or SSE chunks) and record it. Run by hand:

    python benchmarks/cache_hit.py [--requests 5000] [--redis redis://127.0.0.1:6379/0]

Prints µs per request (median of 5 rounds): without the cache (an instant upstream), and hits from memory (and
from Redis with ``--redis``: a loopback round trip included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.api.app import create_app
from bkvy.core.config.gateway import load_config
from bkvy.core.config.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import CHAT_BODY, DIRECT_BODY, write_bkvy_config
from hot_path_micro import InstantTransport

STREAM_BODY = json.dumps({**json.loads(CHAT_BODY), "stream": True})


def _scope(path: str, body: bytes, cache: bytes | None) -> dict:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cache is not None:
        headers.append((b"x-bkvy-cache", cache))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 10006),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
    }


async def _measure(app, path: str, body: bytes, cache: bytes | None, requests: int, expect: str | None) -> float:
    seen: set[str | None] = set()

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message["headers"])
            seen.add(headers.get(b"x-bkvy-cache", b"").decode() or None)

    started = time.perf_counter()
    for _ in range(requests):
        await app(_scope(path, body, cache), receive, send)
    elapsed = time.perf_counter() - started
    if seen != {expect}:
        raise RuntimeError(f"{path}: x-bkvy-cache {seen}, expected {expect}")
    return elapsed / requests * 1e6


async def _run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bkvy-cache-bench-"))
    config_dir = write_bkvy_config(work, "http://127.0.0.1:9")
    rows = [
        ("/llm/direct", DIRECT_BODY, None, None, "no cache (instant upstream)"),
        ("/llm/direct", DIRECT_BODY, b"on", "hit", "hit"),
        ("/v1/chat/completions", CHAT_BODY, None, None, "no cache (instant upstream)"),
        ("/v1/chat/completions", CHAT_BODY, b"on", "hit", "hit"),
        ("/v1/chat/completions", STREAM_BODY, b"on", "hit", "hit, streamed (SSE)"),
    ]
    stores = [("memory", None)] + ([("redis", args.redis)] if args.redis else [])
    print("| store | target | request | µs per request (median of 5) |\n|---|---|---|---|")
    for store, url in stores:
        environ = {"BKVY_CONFIG_DIR": str(config_dir), "LOG_DIR": str(work / f"logs-{store}")}
        if url is not None:
            environ["CACHE_REDIS_URL"] = url
        (work / f"logs-{store}").mkdir()
        app = create_app(load_settings(environ), load_config(config_dir), transport=InstantTransport())
        async with app.router.lifespan_context(app):
            for path, body, cache, expect, label in rows:
                raw = body.encode()
                if cache is not None:
                    first = "hit" if "stream" in label else "miss"  # the stream's key was stored by the row above
                    await _measure(app, path, raw, cache, 1, first)
                await _measure(app, path, raw, cache, 500, expect)  # warm up
                rounds = [await _measure(app, path, raw, cache, args.requests, expect) for _ in range(5)]
                print(f"| {store} | {path} | {label} | {statistics.median(rounds):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis", default=None, help="CACHE_REDIS_URL of a redis-server to measure hits from")
    uvloop.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
