"""A client that leaves mid-body, against a real uvicorn server (issue 16 item 8): the request counts as 499
``client_disconnected`` in /metrics, never as a 500 (or a 400, the client's fault), and nothing is logged as an
error or a traceback. Raw sockets on 127.0.0.1: Content-Length 1000, 10 bytes, then close."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx

from tests.e2e.live_demo import start_demo, stop_demo

ADMIN_KEY = "admin-secret-for-disconnects"
ROUTES = ("/admin/keys", "/llm/direct", "/v1/chat/completions", "/v1/embeddings", "/v1/messages")


def _leave_mid_body(port: int, path: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"X-Admin-API-Key: {ADMIN_KEY}\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model":"')


def _counts(metrics: str) -> dict[tuple[str, str], float]:
    pattern = re.compile(r'bkvy_http_requests_total\{method="POST",route="([^"]+)",status="(\d+)"\} ([0-9.]+)')
    return {(route, status): float(count) for route, status, count in pattern.findall(metrics)}


def test_a_client_leaving_mid_body_is_a_499_without_a_traceback(tmp_path: Path) -> None:
    process, port = start_demo({"BKVY_ADMIN_API_KEY": ADMIN_KEY, "TRANSACTION_LOGGING": "true"}, tmp_path)
    try:
        for path in ROUTES:
            _leave_mid_body(port, path)
        deadline = time.monotonic() + 10
        counts: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:  # the server sees each close on its own time: wait for all, ≤ 10 s
            counts = _counts(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            if sum(count for (_, status), count in counts.items()) >= len(ROUTES):
                break
            time.sleep(0.05)
    finally:
        stop_demo(process)
    assert counts == {(path, "499"): 1.0 for path in ROUTES}
    assert process.stderr is not None
    log = process.stderr.read().decode()
    assert "Traceback" not in log and "unhandled_error" not in log and " ERROR " not in log
