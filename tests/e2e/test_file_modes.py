"""Issue 16 item 9: every state file bkvy writes is 0600 and every folder it keeps them in 0700, whatever the
umask, and a looser mode left by an older version is tightened when bkvy opens the file again."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bkvy.api.services import CIRCUIT_STATE_FILE, LATENCY_FILE
from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "hello"}]
STATE_FILES = {"transactions.csv", "daily_stats.json", CIRCUIT_STATE_FILE, LATENCY_FILE, CLIENT_KEYS_FILE}


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


async def _run_once(fleet: SimFleet, log_dir: Path) -> None:
    """One served request with every writer on; the lifespan's stop writes what is pending."""
    settings = load_settings({}, log_dir=log_dir, transaction_logging=True, summary_stats=True, dashboard_enabled=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        body = {"client_id": "c1", "intelligence_level": "low", "messages": MESSAGES}
        assert (await client.post("/llm/intelligence", json=body)).status_code == 200


def _modes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode) for path in [root, *sorted(root.rglob("*"))]}


async def test_state_files_are_0600_and_folders_0700_with_a_permissive_umask(fleet: SimFleet, tmp_path: Path) -> None:
    root = tmp_path / "logs"
    with _umask(0):
        await _run_once(fleet, root / "demo")  # LOG_DIR and a sub-folder, both created by bkvy
    modes = _modes(root)
    assert {Path(name).name for name in modes} >= STATE_FILES
    for name, mode in modes.items():
        expected = 0o700 if (root / name).is_dir() else 0o600
        assert mode == expected, (name, oct(mode))


async def test_a_looser_mode_from_an_older_version_is_tightened(fleet: SimFleet, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    with _umask(0o022):
        log_dir.mkdir(mode=0o755)
        (log_dir / CLIENT_KEYS_FILE).touch(mode=0o644)  # an empty file: SQLite makes it a database
        (log_dir / "transactions.csv").touch(mode=0o644)
    with _umask(0):
        await _run_once(fleet, log_dir)
    modes = _modes(log_dir)
    assert modes["."] == 0o700
    assert modes[CLIENT_KEYS_FILE] == modes["transactions.csv"] == 0o600
    assert all(mode == 0o600 for name, mode in modes.items() if name != ".")
