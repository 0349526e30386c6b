"""Time to first token through bkvy's /v1/chat/completions vs straight to the simulated provider, same run.

    python benchmarks/ttft_openai.py --requests 50

Starts ``python -m bkvy.sim`` and ``python main.py`` (a config pointing at the sim) as subprocesses, then sends
N sequential streamed requests to each path and reports the median and p90 milliseconds to the first non-empty
content token. The Anthropic rows go through bkvy's Anthropic→OpenAI chunk translation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [{"role": "user", "content": "Say hello."}]
_CONTENT = re.compile(r'"content":"[^"]')  # a non-empty content delta (OpenAI's role chunk has "content":"")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited early")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def _first_token_ms(
    client: httpx.Client, url: str, headers: dict[str, str], body: dict, marker: re.Pattern[str]
) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        elapsed = None
        for line in response.iter_lines():  # read to the end so the connection is reused
            if elapsed is None and marker.search(line):
                elapsed = (time.perf_counter() - started) * 1000.0
    if elapsed is None:
        raise RuntimeError("stream ended without content")
    return elapsed


def _measure(client: httpx.Client, requests: int, *args: object) -> list[float]:
    for _ in range(3):  # warm-up: connections, first-call paths
        _first_token_ms(client, *args)  # type: ignore[arg-type]
    return [_first_token_ms(client, *args) for _ in range(requests)]  # type: ignore[arg-type]


def _config(sim_urls: dict[str, str], config_dir: Path) -> None:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001}
    providers = {
        "openai": {
            "type": "openai",
            "base_url": sim_urls["openai"],
            "keys": {"k1": {"api_key": "bench-key"}},
            "models": {"gpt-4o-mini": model},
        },
        "anthropic": {
            "type": "anthropic",
            "base_url": sim_urls["anthropic"],
            "keys": {"k1": {"api_key": "bench-key"}},
            "models": {"claude-3-5-haiku-latest": model},
        },
    }
    (config_dir / "providers.json").write_text(json.dumps(providers))
    (config_dir / "routing.json").write_text(json.dumps({"scenarios": {}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bkvy-ttft-"))
    sim_port, bkvy_port = _free_port(), _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "bkvy.sim", "--port-base", str(sim_port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    gateway = None
    try:
        sim_urls = {}
        for _ in range(5):
            name, url = sim.stdout.readline().decode().split()  # type: ignore[union-attr]
            sim_urls[name] = url
        _config(sim_urls, work)
        env = {
            **os.environ,
            "BKVY_CONFIG_DIR": str(work),
            "LOG_DIR": str(work / "logs"),
            "HEALTH_PROBE_ENABLED": "false",
        }
        gateway = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(bkvy_port), "--host", "127.0.0.1", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bkvy_url = f"http://127.0.0.1:{bkvy_port}"
        _wait_for(f"{bkvy_url}/health", gateway)
        openai_body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True}
        anthropic_body = {"model": "claude-3-5-haiku-latest", "messages": PROMPT, "stream": True, "max_tokens": 100}
        rows = [
            (
                "openai direct",
                f"{sim_urls['openai']}/v1/chat/completions",
                {"authorization": "Bearer bench-key"},
                openai_body,
                _CONTENT,
            ),
            (
                "openai via bkvy",
                f"{bkvy_url}/v1/chat/completions",
                {},
                {**openai_body, "model": "openai/gpt-4o-mini"},
                _CONTENT,
            ),
            (
                "anthropic direct",
                f"{sim_urls['anthropic']}/v1/messages",
                {"x-api-key": "bench-key", "anthropic-version": "2023-06-01"},
                anthropic_body,
                re.compile('"text_delta"'),
            ),
            (
                "anthropic via bkvy",
                f"{bkvy_url}/v1/chat/completions",
                {},
                {"model": "anthropic/claude-3-5-haiku-latest", "messages": PROMPT, "stream": True},
                _CONTENT,
            ),
        ]
        with httpx.Client(timeout=30) as client:
            for label, url, headers, body, marker in rows:
                samples = _measure(client, args.requests, url, headers, body, marker)
                samples.sort()
                print(
                    f"{label:<20} n={len(samples)}  median {statistics.median(samples):7.2f} ms"
                    f"  p90 {samples[int(len(samples) * 0.9) - 1]:7.2f} ms"
                )
    finally:
        for process in (gateway, sim):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)


if __name__ == "__main__":
    main()
