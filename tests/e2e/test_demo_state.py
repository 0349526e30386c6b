"""``--demo`` keeps its state in ``<LOG_DIR>/demo/`` and starts without an earlier demo's client keys: a demo
never sees a real run's keys or circuits, so docs/EXAMPLES.md works as written against it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bkvy.api.services import CIRCUIT_STATE_FILE
from bkvy.clock import MonotonicClock
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKeyStore
from tests.e2e.live_demo import start_demo, stop_demo


async def _create_client_key(log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    store = ClientKeyStore(log_dir / CLIENT_KEYS_FILE, MonotonicClock())
    await store.start()
    await store.create("from-an-earlier-run")
    await store.stop()


async def test_a_demo_ignores_a_real_runs_keys_and_circuits_and_an_earlier_demos_keys(tmp_path: Path) -> None:
    await _create_client_key(tmp_path)  # the real run's key store: with it, every request needs a key
    await _create_client_key(tmp_path / "demo")  # a key an earlier demo created
    circuits = {"version": 1, "saved_at_wall": 0.0, "auth_blocked": [{"provider": "openai", "key_id": "openai_key_1"}]}
    (tmp_path / CIRCUIT_STATE_FILE).write_text(json.dumps(circuits))
    real_run_files = sorted(p.name for p in tmp_path.iterdir())
    process, port = start_demo({}, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 200, reply.text  # no key asked for, openai_key_1 not auth-blocked
        open_circuits = httpx.get(f"{base}/circuits/status", timeout=30).json()
        assert "auth" not in json.dumps(open_circuits)
    finally:
        stop_demo(process)
    assert sorted(p.name for p in tmp_path.iterdir()) == real_run_files  # the demo wrote nothing beside them
    assert any((tmp_path / "demo").glob("transactions*.csv"))  # its records are in logs/demo/
