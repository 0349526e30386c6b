"""Hedged requests on a heavy-tailed upstream (issue 13), in the style of the Tail at Scale table.

Run by hand, never in the test suite:

    python benchmarks/hedging.py            # 5,000 requests per row, ~1.6 min
    python benchmarks/hedging.py --quick    # 1,000 requests per row, ~35 s

All on 127.0.0.1, each its own process: the simulated fleet (``python -m bkvy.sim``), in which one model ``m``
is served by two identical providers (``a``: the openai sim, ``b``: the openai_compatible sim), each answering
98 % of calls in 50 ± 5 ms and 2 % in 2,000 ± 5 ms (independent draws); then bkvy, once per row, with
``HEDGING=false`` and ``HEDGING=true HEDGE_MIN_DELAY_MS=60`` (about the fast calls' p95 seen through the
gateway: 54.5 ms upstream + ~3 ms). Requests are ``/llm/intelligence`` at level ``low`` (both providers' ``m``
are candidates), sent open-loop at a steady rate after a warm-up that teaches bkvy the latency; latency is
measured from each request's scheduled send time. Upstream calls per request come from the sims' own
counters (a hedge's loser is a call too), disconnects from their ``disconnects`` stats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HOST, Server, free_port

MODEL = "m"
PROVIDERS = {"a": "openai", "b": "openai_compatible"}  # provider name -> wire format of its sim server
SIM_ORDER = ("openai", "anthropic", "gemini", "ollama", "openai_compatible")  # bkvy.sim.WIRE_FORMATS
TAIL_KNOBS = {"latency_ms": 50, "latency_jitter_ms": 5, "slow_fraction": 0.02, "slow_latency_ms": 2000}
HEDGE_MIN_DELAY_MS = 60
BODY = json.dumps(
    {"client_id": "bench", "intelligence_level": "low", "messages": [{"role": "user", "content": "hi"}]}
).encode()
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_IN_FLIGHT = 2000  # a bound, never reached at these rates (~10 in flight)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    latencies_ms: list[float]
    errors: int
    upstream_calls: int
    disconnects: int

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")

    @property
    def calls_per_request(self) -> float:
        sent = len(self.latencies_ms) + self.errors
        return self.upstream_calls / sent if sent else float("nan")


def _post_json(url: str, payload: dict | None = None) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_sims(work_dir: Path) -> tuple[Server, dict[str, str]]:
    port_base = free_port()
    sims = Server(
        "sim",
        [sys.executable, "-m", "bkvy.sim", "--port-base", str(port_base), "--instant"],
        port_base,
        log_path=work_dir / "sim.log",
    )
    sims.start()
    urls = {fmt: f"http://{HOST}:{port_base + SIM_ORDER.index(fmt)}" for fmt in PROVIDERS.values()}
    for url in urls.values():
        _wait_http(url + "/_sim/stats")
        _post_json(url + "/_sim/knobs", {"model": MODEL, **TAIL_KNOBS})
    return sims, urls


def _wait_http(url: str, timeout_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def write_config(work_dir: Path, urls: dict[str, str]) -> Path:
    config_dir = work_dir / "config"
    config_dir.mkdir(exist_ok=True)
    model = {
        "intelligence_tier": "low",
        "input_cost_per_1k": 0.0001,
        "output_cost_per_1k": 0.0002,
        "expected_latency_ms": 50,
    }
    providers: dict[str, dict] = {}
    for name, wire_format in PROVIDERS.items():
        providers[name] = {"type": wire_format, "base_url": urls[wire_format], "models": {MODEL: model}}
        if wire_format == "openai":
            providers[name]["keys"] = {f"{name}_key": {"api_key": "sk-bench"}}  # no rate_limits: unlimited
    (config_dir / "providers.json").write_text(json.dumps(providers, indent=2))
    (config_dir / "routing.json").write_text(json.dumps({"scenarios": {}}))
    return config_dir


def start_bkvy(work_dir: Path, config_dir: Path, label: str, hedging_env: dict[str, str]) -> Server:
    log_dir = work_dir / f"logs-{label}"
    log_dir.mkdir(exist_ok=True)
    port = free_port()
    env = {
        "BKVY_CONFIG_DIR": str(config_dir),
        "LOG_DIR": str(log_dir),
        "TRANSACTION_LOGGING": "false",
        "BKVY_LOG_LEVEL": "warning",
        "HEALTH_PROBE_ENABLED": "false",
        **hedging_env,
    }
    server = Server(
        f"bkvy-{label}",
        [sys.executable, "main.py", "--host", HOST, "--port", str(port)],
        port,
        env,
        log_path=work_dir / f"bkvy-{label}.log",
    )
    server.start()
    return server


async def send_load(url: str, count: int, rate_per_second: float) -> tuple[list[float], int]:
    """Open loop: request i is due at start + i / rate; its latency counts from then (no coordinated omission)."""
    latencies_ms: list[float] = []
    errors = 0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        nonlocal errors
        try:
            async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as reply:
                await reply.read()
                is_ok = reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            is_ok = False
        if is_ok:
            latencies_ms.append((time.perf_counter() - due) * 1000.0)
        else:
            errors += 1

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter() + 0.05
        tasks = []
        for index in range(count):
            due = start + index / rate_per_second
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, due)))
        await asyncio.gather(*tasks)
    return latencies_ms, errors


def sim_totals(urls: dict[str, str]) -> tuple[int, int]:
    calls = disconnects = 0
    for url in urls.values():
        with urllib.request.urlopen(url + "/_sim/stats", timeout=10) as response:
            stats = json.loads(response.read())
        calls += stats["calls_by_model"].get(MODEL, 0)
        disconnects += stats.get("disconnects", {}).get(MODEL, 0)
    return calls, disconnects


def run_row(
    work_dir: Path,
    config_dir: Path,
    urls: dict[str, str],
    label: str,
    env: dict[str, str],
    count: int,
    warmup: int,
    rate: float,
) -> Row:
    bkvy = start_bkvy(work_dir, config_dir, label.split()[0].lower().replace("=", "-"), env)
    try:
        url = bkvy.base_url + "/llm/intelligence"
        asyncio.run(send_load(url, warmup, rate))  # teaches bkvy both providers' latency
        time.sleep(2.5)  # stragglers of the warm-up finish (a 2 s call)
        for sim_url in urls.values():
            _post_json(sim_url + "/_sim/reset_stats", {})
        latencies_ms, errors = asyncio.run(send_load(url, count, rate))
        calls, disconnects = sim_totals(urls)
    finally:
        bkvy.stop()
    return Row(label, latencies_ms, errors, calls, disconnects)


def render(rows: list[Row], count: int, rate: float) -> str:
    lines = [
        (f"{count:,} requests per row at {rate:g} req/s; upstream: 98 % 50 ms, 2 % 2,000 ms, two identical providers"),
        "",
        "| | p50 | p95 | p99 | p99.9 | upstream calls / request | extra calls | loser disconnects | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [f"{row.percentile_ms(q):,.0f} ms" for q in (0.50, 0.95, 0.99, 0.999)]
        extra = (row.calls_per_request - 1.0) * 100.0
        lines.append(
            f"| {row.label} | " + " | ".join(cells) + f" | {row.calls_per_request:.3f} | {extra:+.1f} % | "
            f"{row.disconnects} | {row.errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 requests per row instead of 5,000")
    parser.add_argument("--rate", type=float, default=125.0, help="requests per second (default 125)")
    parser.add_argument("--only", choices=("off", "on"), help="run one row only")
    args = parser.parse_args()
    count, warmup = (1000, 100) if args.quick else (5000, 200)
    work_dir = Path(tempfile.mkdtemp(prefix="bkvy-hedging-"))
    print(f"logs in {work_dir}", flush=True)
    settings = [
        ("HEDGING=false", {"HEDGING": "false"}),
        (
            f"HEDGING=true (HEDGE_MIN_DELAY_MS={HEDGE_MIN_DELAY_MS})",
            {"HEDGING": "true", "HEDGE_MIN_DELAY_MS": str(HEDGE_MIN_DELAY_MS)},
        ),
    ]
    if args.only:
        settings = [settings[0 if args.only == "off" else 1]]
    sims, urls = start_sims(work_dir)
    try:
        config_dir = write_config(work_dir, urls)
        rows = []
        for label, env in settings:
            print(f"running {label} ...", flush=True)
            rows.append(run_row(work_dir, config_dir, urls, label, env, count, warmup, args.rate))
    finally:
        sims.stop()
    print(render(rows, count, args.rate))


if __name__ == "__main__":
    main()
