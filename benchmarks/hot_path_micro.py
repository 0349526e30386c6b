"""bkvy's own CPU per request, without sockets: the real app, called as ASGI in-process, with a transport
that answers at once with the canned reply the benchmark upstream sends.

What it leaves out (uvicorn's HTTP parsing, aiohttp's request and reply handling, the syscalls) every
forwarder pays too, so this is the part of the per-request cost that is bkvy's to cut. Run by hand:

    python benchmarks/hot_path_micro.py [--requests 20000] [--profile]

Prints µs per request (median of 5 rounds) for /v1/chat/completions and /llm/direct, with records off and on;
``--profile`` adds a cProfile listing of the top functions (cProfile slows everything, read ratios only).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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
from bkvy.models.types import UpstreamReply, UpstreamRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast_upstream import COMPLETION
from fleet import CHAT_BODY, DIRECT_BODY, write_bkvy_config


class InstantTransport:
    """Answers every call at once with the benchmark upstream's canned completion."""

    def __init__(self) -> None:
        self._reply = UpstreamReply(200, {"content-type": "application/json"}, COMPLETION)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        return self._reply


def _scope(path: str, body: bytes) -> dict:
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
        "headers": [
            (b"host", b"127.0.0.1:10006"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def _measure(app, path: str, body: bytes, requests: int) -> float:
    statuses: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(requests):
        await app(_scope(path, body), receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"{path}: statuses {sorted(set(statuses))}")
    return elapsed / requests * 1e6


async def _run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bkvy-micro-"))
    config_dir = write_bkvy_config(work, "http://127.0.0.1:9")
    targets = [("/v1/chat/completions", CHAT_BODY.encode()), ("/llm/direct", DIRECT_BODY.encode())]
    print("| target | records | µs per request (median of 5) |\n|---|---|---|")
    for logging_on in (False, True):
        (work / f"logs-{logging_on}").mkdir(exist_ok=True)
        settings = load_settings(
            {
                "BKVY_CONFIG_DIR": str(config_dir),
                "LOG_DIR": str(work / f"logs-{logging_on}"),
                "TRANSACTION_LOGGING": str(logging_on).lower(),
            }
        )
        app = create_app(settings, load_config(config_dir), transport=InstantTransport())
        async with app.router.lifespan_context(app):
            for path, body in targets:
                await _measure(app, path, body, 2000)  # warm up
                rounds = [await _measure(app, path, body, args.requests) for _ in range(5)]
                print(f"| {path} | {'on' if logging_on else 'off'} | {statistics.median(rounds):.1f} |")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await _measure(app, targets[0][0], targets[0][1], args.requests)
                profiler.disable()
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    uvloop.run(_run(parser.parse_args()))  # as main.py runs the gateway


if __name__ == "__main__":
    main()
