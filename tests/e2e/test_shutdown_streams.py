"""SIGTERM during a stream longer than the grace period (issue 16, item 9): a real ``python main.py --demo``
with SHUTDOWN_GRACE_SECONDS=2. The stream ends with its error event (code ``shutdown``) before the grace period
runs out, the process exits 0, and the row says ``shutdown``."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_shutdown_flush import ROOT, _free_port, _wait_until_up

GRACE_SECONDS = 2.0


async def _slow_stream_to_sigterm(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> tuple[bytes, float]:
    """Stream a ~30 s answer; SIGTERM after its first content; the rest of the body and seconds since SIGTERM."""
    base_url = httpx.URL((await client.get("/providers")).json()["providers"]["openai"]["base_url"])
    openai_url = f"http://{base_url.host}:{base_url.port}"  # the demo's simulated OpenAI
    knobs = {"model": "gpt-4o-mini", "tokens_per_reply": 300, "chunk_delay_ms": 100}
    assert (await client.post(f"{openai_url}/_sim/knobs", json=knobs)).status_code == 200
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        chunks = response.aiter_raw()
        received = await anext(chunks)
        process.send_signal(signal.SIGTERM)
        signalled = time.perf_counter()
        async for chunk in chunks:
            received += chunk
        return received, time.perf_counter() - signalled


async def test_sigterm_ends_a_long_stream_with_an_error_event_recorded_as_shutdown(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TRANSACTION_LOGGING": "true",
        "LOG_DIR": str(tmp_path / "logs"),
        "BKVY_CONFIG_DIR": str(tmp_path / "no-config"),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    with open(tmp_path / "server.log", "wb") as server_log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--demo", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20.0) as client:
                await _wait_until_up(client, process)
                received, seconds = await _slow_stream_to_sigterm(client, process)
            assert await asyncio.to_thread(process.wait, 20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    events = [block.removeprefix(b"data: ") for block in received.split(b"\n\n") if block.startswith(b"data: ")]
    assert events[0].startswith(b"{") and b"[DONE]" not in events  # content, then cut: never a clean end
    assert json.loads(events[-1])["error"]["code"] == "shutdown"
    assert seconds < GRACE_SECONDS  # ended by bkvy, before uvicorn would have cut it
    [row] = list(csv.DictReader((tmp_path / "logs" / "demo" / "transactions.csv").open()))
    assert row["error_type"] == "shutdown" and row["provider_used"] == "openai"
