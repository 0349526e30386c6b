"""A real ``python main.py --demo`` process: 1,000 concurrent requests, then SIGTERM. Every request has
exactly one whole row in the transaction log: none lost, none torn, none doubled."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bkvy.utils.records import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_until_up(client: httpx.AsyncClient, process: subprocess.Popen) -> None:
    for _ in range(600):  # ≤ 30 s, polling every 0.05 s
        assert process.poll() is None, "the server exited during start-up"
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not come up")


async def _send_all(client: httpx.AsyncClient) -> list[str]:
    messages = [{"role": "user", "content": "ping"}]
    bodies = [
        {
            "client_id": f"load-{i % 7}",
            "provider": "ollama" if i % 2 else "vllm",
            "model": "llama3.2" if i % 2 else "qwen2.5-7b-instruct",
            "messages": messages,
        }
        for i in range(REQUESTS)
    ]
    responses = await asyncio.gather(*(client.post("/llm/direct", json=body) for body in bodies))
    assert [r.status_code for r in responses] == [200] * REQUESTS
    return [r.json()["request_id"] for r in responses]


async def test_sigterm_after_1000_concurrent_requests_loses_no_row(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TRANSACTION_LOGGING": "true",
        "LOG_DIR": str(tmp_path / "logs"),
        "SUMMARY_STATS": "true",
        "BKVY_CONFIG_DIR": str(tmp_path / "no-config"),
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--demo", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60.0) as client:
                await _wait_until_up(client, process)
                started = time.perf_counter()
                request_ids = await _send_all(client)
                print(f"{REQUESTS} requests in {time.perf_counter() - started:.2f}s")
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the captured SIGTERM once its graceful shutdown (lifespan included) is done.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM), log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    with open(
        tmp_path / "logs" / "demo" / "transactions.csv", newline="", encoding="utf-8"
    ) as handle:  # --demo: logs/demo
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS
    body = rows[1:]
    assert all(len(row) == len(COLUMNS) for row in body), "a torn row"
    logged_ids = [row[COLUMNS.index("request_id")] for row in body]
    assert len(logged_ids) == REQUESTS
    assert sorted(logged_ids) == sorted(request_ids)
    assert all(row[COLUMNS.index("success")] == "true" for row in body)
    assert (tmp_path / "logs" / "demo" / "daily_stats.json").exists()
