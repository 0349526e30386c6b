"""``python main.py migrate-to-redis``: copy the embedded state of LOG_DIR into Redis, once (docs/SCALING.md).

Copies the client keys of ``client_keys.sqlite3`` (hashes only; active and revoked), their use counts and this
month's and total spend. Idempotent: every write is "set if absent" (SET NX, HSETNX), so a second run copies
nothing and never overwrites what the replicas have added since. The circuit-state JSON file is not copied:
circuits reopen on their own when a provider still fails, and their Redis layout is the circuits' own.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKey, month_of
from bkvy.core.shared.key_layout import KeyLayout, record_json

__all__ = ["MigrationReport", "migrate_client_keys"]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    keys_found: int
    keys_copied: int  # new in Redis; the others were there already
    revoked_copied: int
    spend_copied_usd: float  # this month's spend written (only for keys whose month was absent)


@dataclass(frozen=True, slots=True)
class _Row:
    key: ClientKey
    revoked_wall: float | None
    requests: int
    spend_total_usd: float
    spend_this_month_usd: float


def _rows(path: Path, month: str) -> list[_Row]:
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        keys = connection.execute("SELECT * FROM client_keys ORDER BY created").fetchall()
        spends = {
            r["key_id"]: r["spend_usd"]
            for r in connection.execute("SELECT key_id, spend_usd FROM client_key_spend WHERE month = ?", (month,))
        }
    return [
        _Row(
            ClientKey(r["id"], r["name"], r["key_hash"], r["created"], r["rpm"], r["monthly_budget_usd"]),
            r["revoked"],
            r["request_count"],
            r["spend_usd_total"],
            spends.get(r["id"], 0.0),
        )
        for r in keys
    ]


async def migrate_client_keys(client: Redis, *, prefix: str, log_dir: Path, now_wall: float) -> MigrationReport:
    """Copy LOG_DIR's client keys into Redis under ``prefix``. Raises redis' errors when Redis is unreachable."""
    month = month_of(now_wall)
    layout = KeyLayout(prefix)
    rows = _rows(log_dir / CLIENT_KEYS_FILE, month)
    copied = revoked = 0
    spend = 0.0
    for row in rows:
        record = record_json(row.key, revoked_wall=row.revoked_wall)
        # Every write is "if absent", none skipped: a run cut short is completed by the next one.
        is_new = bool(await client.hsetnx(layout.ids, row.key.key_id, record))
        await client.set(layout.by_hash(row.key.key_hash), record, nx=True)
        copied += is_new
        if row.revoked_wall is not None:
            await client.set(layout.revoked(row.key.key_id), "1", nx=True)
            await client.sadd(layout.revoked_set, row.key.key_hash)
            revoked += is_new
        await client.hsetnx(layout.use(row.key.key_id), "requests", row.requests)
        await client.hsetnx(layout.spend(row.key.key_id), "total", repr(row.spend_total_usd))
        if row.spend_this_month_usd > 0 and await client.hsetnx(
            layout.spend(row.key.key_id), month, repr(row.spend_this_month_usd)
        ):
            spend += row.spend_this_month_usd
    return MigrationReport(len(rows), copied, revoked, spend)
