"""``python main.py --workers N`` (issue 17, test 6): refused without REDIS_URL; with it, N processes answer on one
port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_workers_without_redis_url_exit_2_with_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["BKVY_CONFIG_DIR"] = str(tmp_path)  # never read: the check comes first
    result = subprocess.run(
        [sys.executable, "main.py", "--workers", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "REDIS_URL" in lines[0] and "full rate limits" in lines[0] and "Fix:" in lines[0]


def test_two_workers_with_redis_both_serve_one_port(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    port = _free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "LOG_DIR": str(tmp_path / "logs")}
    env["BKVY_CONFIG_DIR"] = str(tmp_path / "no-config")
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--demo", "--workers", "2", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            pids: set[str] = set()
            deadline = time.monotonic() + 60.0
            while len(pids) < 2 and time.monotonic() < deadline:  # each try a new connection
                assert process.poll() is None, log_path.read_text()
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0).json()
                except httpx.TransportError:
                    time.sleep(0.05)  # still starting: poll, nothing asserted on time
                    continue
                pids.add(health["replica"].split(":")[1])
            assert len(pids) == 2, log_path.read_text()
            assert str(process.pid) not in pids  # the workers answer, not the parent
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
