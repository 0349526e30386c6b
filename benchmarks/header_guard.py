"""The connection guard's cost (issue 16): uvicorn's stock httptools protocol against bkvy's guarded one.

``python benchmarks/header_guard.py [--rounds 5] [--seconds 3] [--connections 64]``

Both serve the same minimal ASGI app (reads the body, answers a small JSON), so the protocol's share of each
request is as large as it gets; on bkvy's real routes the guard is a smaller fraction still. The two servers
run one at a time, interleaved round by round (the order alternates), each under wrk with the same POST;
the table gives each one's median requests/s and the server's CPU time per request (steadier than req/s on
a busy machine), each with the guarded/stock ratio (goal: throughput ≥ 0.95 of stock).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen import WrkResult, require_wrk, run_wrk
from procs import Server, cpu_plan, free_port

_BODY = '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
_REPLY = b'{"success":true,"content":"hello"}'
_REQUEST = (
    b"POST /llm/direct HTTP/1.1\r\nHost: 127.0.0.1:10006\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nUser-Agent: wrk\r\n\r\n%s" % (len(_BODY), _BODY.encode())
)


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_REPLY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _REPLY})


def _serve(kind: str, port: int) -> None:
    import uvicorn

    from bkvy.api.server import ConnectionLimits, guarded_http_protocol
    from bkvy.core.config.settings import load_settings

    http = (
        guarded_http_protocol(ConnectionLimits.from_settings(load_settings({}))) if kind == "guarded" else "httptools"
    )
    uvicorn.run(_app, host="127.0.0.1", port=port, http=http, loop="uvloop", log_level="warning", access_log=False)


class _NullTransport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol_ns_per_request(protocol_class: Any, requests: int) -> float:
    """CPU ns for the protocol to take one keep-alive request (parse, guard, build the ASGI cycle); the app
    is not run: its task is marked done at once."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(_app, http=protocol_class, lifespan="off")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(_NullTransport())

    def finish_at_once(cycle: Any, app: Any) -> None:
        cycle.response_complete = True

    protocol._start_asgi_task = finish_at_once
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(_REQUEST)
    return (time.process_time() - started) / requests * 1e9


def _micro() -> dict[str, float]:
    """Best of 7 runs of 50,000 requests each, per protocol, interleaved; no GC during the runs."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from bkvy.api.server import ConnectionLimits, guarded_http_protocol

    classes = {"stock": HttpToolsProtocol, "guarded": guarded_http_protocol(ConnectionLimits(65536, 5.0, 10.0, 1000))}
    best = dict.fromkeys(classes, float("inf"))

    async def measure() -> None:
        for _ in range(7):
            for kind, protocol_class in classes.items():
                best[kind] = min(best[kind], _protocol_ns_per_request(protocol_class, 50_000))

    gc.disable()
    try:
        asyncio.run(measure())
    finally:
        gc.enable()
    return best


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", choices=["stock", "guarded"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    require_wrk()
    micro_ns = _micro()
    print(
        f"protocol alone, CPU ns per request: stock {micro_ns['stock']:.0f}, guarded {micro_ns['guarded']:.0f} "
        f"(+{micro_ns['guarded'] - micro_ns['stock']:.0f} ns)"
    )
    cpus = cpu_plan(is_pinned=True)
    servers = {
        kind: Server(kind, [sys.executable, __file__, "--serve", kind, "--port", str(port)], port, cpus=cpus.gateway)
        for kind, port in (("stock", free_port()), ("guarded", free_port()))
    }
    results: dict[str, list[WrkResult]] = {kind: [] for kind in servers}
    cpu_us_per_request: dict[str, list[float]] = {kind: [] for kind in servers}
    try:
        for server in servers.values():
            server.start()
        for kind in servers:  # warm-up, not counted
            run_wrk(servers[kind].base_url + "/", _BODY, connections=args.connections, duration_seconds=1)
        for round_index in range(args.rounds):
            order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
            for kind in order:
                cpu_before = servers[kind].cpu_seconds()
                result = run_wrk(
                    servers[kind].base_url + "/",
                    _BODY,
                    connections=args.connections,
                    duration_seconds=args.seconds,
                    cpus=cpus.load,
                )
                results[kind].append(result)
                cpu_us_per_request[kind].append((servers[kind].cpu_seconds() - cpu_before) / result.requests * 1e6)
                print(f"round {round_index + 1} {kind:8} {result.requests_per_second:10.0f} req/s", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
    _print_table(results, cpu_us_per_request, args, cpus.describe())


def _print_table(
    results: dict[str, list[WrkResult]],
    cpu_us_per_request: dict[str, list[float]],
    args: argparse.Namespace,
    cpu_note: str,
) -> None:
    medians = {kind: statistics.median(r.requests_per_second for r in runs) for kind, runs in results.items()}
    p50s = {kind: statistics.median(r.p50_ms for r in runs) for kind, runs in results.items()}
    errors = {kind: sum(r.errors for r in runs) for kind, runs in results.items()}
    print(f"c={args.connections}, {args.seconds:g} s runs, median of {args.rounds} interleaved rounds; {cpu_note}")
    cpu_us = {kind: statistics.median(values) for kind, values in cpu_us_per_request.items()}
    print("| protocol | req/s (median) | vs stock | server CPU µs/request | vs stock | p50 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in results:
        throughput_ratio = medians[kind] / medians["stock"]
        cpu_ratio = cpu_us[kind] / cpu_us["stock"]
        print(
            f"| {kind} | {medians[kind]:.0f} | {throughput_ratio:.3f} | {cpu_us[kind]:.1f} | {cpu_ratio:.3f} "
            f"| {p50s[kind]:.2f} | {errors[kind]} |"
        )


if __name__ == "__main__":
    main()
