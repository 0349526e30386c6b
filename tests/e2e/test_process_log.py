"""A real ``main.py --demo`` process: its log lines carry their fields, and monitoring answers loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.e2e.live_demo import start_demo, stop_demo


def test_demo_with_log_format_json_writes_one_object_per_line(tmp_path: Path) -> None:
    process, port = start_demo({"LOG_FORMAT": "json"}, tmp_path)
    try:
        for path in ("/metrics", "/providers", "/rates/status", "/circuits/summary"):  # the default demo, loopback
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200, path
    finally:
        stop_demo(process)
    assert process.stderr is not None
    lines = process.stderr.read().decode().splitlines()
    # The demo's banner (providers, tiers) is printed to stderr too; every log line, uvicorn's included, is JSON.
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert not [line for line in lines if re.match(r"\d{4}-\d\d-\d\d[T ]|INFO|WARNING|ERROR", line)]
    started = [event for event in events if event["event"] == "sim_started"]
    assert len(started) == 5
    assert all(event["base_url"].startswith("http://127.0.0.1:") and event["wire_format"] for event in started)
    assert any(event["logger"].startswith("uvicorn") for event in events)
    assert not any("demo-openai-1" in line for line in lines)
