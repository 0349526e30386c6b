"""A real ``python main.py --demo`` process on a free loopback port, for tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_demo(env_extra: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the demo with LOG_DIR=``log_dir`` and wait (≤ 30 s) until /health answers."""
    port = free_port()
    env = {**os.environ, "BKVY_CONFIG_DIR": "/nonexistent", "LOG_DIR": str(log_dir), **env_extra}
    process = subprocess.Popen(
        [sys.executable, "main.py", "--demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # waiting for a real subprocess to bind; no clock to inject here
    process.terminate()
    raise AssertionError("demo did not answer /health within 30 s")


def stop_demo(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=15)
