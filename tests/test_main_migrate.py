"""`python main.py migrate-to-redis`: copies LOG_DIR's client keys into REDIS_URL once and says what it copied."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]


def _migrate(log_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ.update({"LOG_DIR": str(log_dir), **env})
    return subprocess.run(
        [sys.executable, "main.py", "migrate-to-redis"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _embedded_keys(log_dir: Path) -> None:
    with sqlite3.connect(log_dir / "client_keys.sqlite3") as connection:
        connection.execute(
            "CREATE TABLE client_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
            " created REAL NOT NULL, rpm INTEGER, monthly_budget_usd REAL, revoked REAL, last_used REAL,"
            " request_count INTEGER NOT NULL DEFAULT 0, spend_usd_total REAL NOT NULL DEFAULT 0)"
        )
        connection.execute(
            "CREATE TABLE client_key_spend (key_id TEXT NOT NULL, month TEXT NOT NULL, spend_usd REAL NOT NULL,"
            " PRIMARY KEY (key_id, month))"
        )
        connection.execute("INSERT INTO client_keys (id, name, key_hash, created) VALUES ('ck_01', 'a', 'h1', 1.0)")


def test_migrate_to_redis_copies_once_and_needs_redis_url(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    _embedded_keys(tmp_path)
    without = _migrate(tmp_path)
    assert without.returncode == 2 and "REDIS_URL" in without.stderr
    first = _migrate(tmp_path, REDIS_URL=redis_server.url)
    assert first.returncode == 0, first.stderr
    assert "client keys: 1 in" in first.stdout and ", 1 copied" in first.stdout
    again = _migrate(tmp_path, REDIS_URL=redis_server.url)
    assert again.returncode == 0 and ", 0 copied" in again.stdout
