"""The connections the server ends itself (issue 16: header cap, read timeouts, connection cap) are counted on
/metrics of a real ``main.py --demo``: an operator sees an attack, not only a log line."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.e2e.live_demo import start_demo, stop_demo


def test_a_refused_oversized_header_is_counted_on_metrics(tmp_path: Path) -> None:
    process, port = start_demo({}, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bkvy\r\nx-filler: " + b"a" * (100 * 1024) + b"\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 431 ")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop_demo(process)
    assert 'bkvy_connections_ended_total{reason="headers_too_large"} 1.0' in metrics
    assert 'bkvy_connections_ended_total{reason="too_many_connections"} 0.0' in metrics
