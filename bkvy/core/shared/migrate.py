"""``python main.py migrate-to-redis``: copy the embedded state of LOG_DIR into Redis, once (docs/SCALING.md).

Copies the client keys of ``client_keys.sqlite3`` (hashes only; active and revoked), their use counts and this
month's and total spend, and the circuits of ``circuit_states.json`` (open, half-open or flapping ones, with their
keys' fingerprints, never key values). Idempotent: every write is "set if absent" (SET NX, HSETNX, a circuit only
where Redis has none), so a second run copies nothing and never overwrites what the replicas have added since.
Run it before the replicas start: they read the circuits at start-up.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bkvy.core.circuits.store import CircuitStore
from bkvy.core.circuits.types import CircuitKey
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKey, month_of
from bkvy.core.limits.key_scope import NO_SCOPE, KeyScope, scope_of
from bkvy.core.shared.circuits import circuit_hash_name
from bkvy.core.shared.key_layout import KeyLayout, record_json

__all__ = ["MigrationReport", "migrate_circuits", "migrate_client_keys"]

# KEYS[1] the circuit's hash; ARGV[1] its state (``export_circuit``'s shape). Version 1: newer than nothing, so
# every replica applies it at start-up; a circuit Redis already has (a replica wrote it) is left alone.
_COPY_CIRCUIT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'version', 1, 'state', ARGV[1], 'origin', 'migration')
return 1
"""


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


def _scope_of_row(row: sqlite3.Row) -> KeyScope:
    """A key's tenant and policy scope; a database of an older version has no ``scope`` column."""
    return scope_of(row["scope"]) if "scope" in row.keys() else NO_SCOPE  # noqa: SIM118 - a Row holds values


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
            ClientKey(
                r["id"], r["name"], r["key_hash"], r["created"], r["rpm"], r["monthly_budget_usd"], _scope_of_row(r)
            ),
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


async def migrate_circuits(client: Redis, *, prefix: str, state_file: Path) -> tuple[int, int]:
    """Copy the circuits of the embedded mode's JSON file (``CircuitStore``'s) into Redis, each only where Redis
    has none. Returns (found, copied). A missing or unreadable file copies nothing. Raises redis' errors."""
    state = CircuitStore(state_file).load()  # a command-line run, before serving: a sync read is fine
    if state is None:
        return 0, 0
    fingerprints = {
        (str(entry["provider"]), str(entry["key_id"])): entry["fingerprint"]
        for entry in state.get("key_fingerprints", [])
        if isinstance(entry, dict) and {"provider", "key_id", "fingerprint"} <= entry.keys()
    }
    entries = [entry for entry in state["circuits"] if isinstance(entry, dict)]
    copied = 0
    for entry in entries:
        try:
            key = CircuitKey(str(entry["provider"]), str(entry["model"]), str(entry["key_id"]))
        except KeyError:
            continue
        shared = {**entry, "fingerprint": fingerprints.get((key.provider, key.key_id))}
        text = json.dumps(shared, separators=(",", ":"))
        copied += int(await client.eval(_COPY_CIRCUIT_SCRIPT, 1, circuit_hash_name(prefix, key), text))
    return len(entries), copied
