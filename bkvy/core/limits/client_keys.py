"""Client keys (SPEC §8): ``bkvy-sk-...`` bearer keys with a per-key rpm and monthly budget.

Only the sha256 of a key is stored (the key has 256 bits of entropy, so a plain hash is enough), in SQLite
under LOG_DIR. Every SQLite call runs in a thread (``asyncio.to_thread``); the hot path (authenticate, admit,
observe) touches only the in-memory cache, and use counts and spend are written in batches by a flusher.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sqlite3
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bkvy.clock import Clock
from bkvy.core.limits.key_scope import NO_SCOPE, KeyScope, add_scope_column, scope_json, scope_of
from bkvy.models.errors import BudgetExceeded, ClientRateLimited, UnknownClientKey
from bkvy.utils.private_files import ensure_private_dir, make_private_file, tighten_if_present

log = logging.getLogger(__name__)

KEY_PREFIX = "bkvy-sk-"
CLIENT_KEYS_FILE = "client_keys.sqlite3"
_RPM_WINDOW_SECONDS = 60.0
_SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS client_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
    " created REAL NOT NULL, rpm INTEGER, monthly_budget_usd REAL, revoked REAL, last_used REAL,"
    " request_count INTEGER NOT NULL DEFAULT 0, spend_usd_total REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS client_key_spend (key_id TEXT NOT NULL, month TEXT NOT NULL,"
    " spend_usd REAL NOT NULL, PRIMARY KEY (key_id, month))",
)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def month_of(wall_seconds: float) -> str:
    """The budget month (UTC, ``YYYY-MM``) of a unix time."""
    return time.strftime("%Y-%m", time.gmtime(wall_seconds))


@dataclass(frozen=True, slots=True)
class ClientKey:
    key_id: str
    name: str
    key_hash: str
    created_wall: float
    rpm: int | None = None
    monthly_budget_usd: float | None = None
    scope: KeyScope = NO_SCOPE  # tenant and policy defaults (issue 19)


def new_key(
    name: str,
    *,
    created_wall: float,
    rpm: int | None = None,
    monthly_budget_usd: float | None = None,
    scope: KeyScope = NO_SCOPE,
) -> tuple[ClientKey, str]:
    """A new key and its plaintext, which is shown once and never stored."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = f"ck_{secrets.token_hex(8)}"
    key = ClientKey(key_id, name, hash_key(plaintext), created_wall, rpm, monthly_budget_usd, scope)
    return key, plaintext


@dataclass(slots=True)
class _Usage:
    request_count: int = 0
    last_used_wall: float | None = None
    spend_usd_total: float = 0.0
    spend_by_month: dict[str, float] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=deque)  # monotonic admit times in the last minute


class ClientKeyStore:
    def __init__(self, path: Path, clock: Clock, *, flush_interval_seconds: float = 1.0) -> None:
        self._path = path
        self._clock = clock
        self._flush_interval_seconds = flush_interval_seconds
        self._by_hash: dict[str, ClientKey] = {}
        self._has_any_key = False  # active or revoked: revoking the last key must not reopen the gateway
        self._usage: dict[str, _Usage] = {}
        self._dirty: set[str] = set()
        self._unsaved_keys: list[ClientKey] = []  # adopted from Redis, written by the next flush
        self._unsaved_revocations: list[tuple[str, float]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._revoked_tenants: dict[str, str] = {}  # key id -> tenant, of the revoked keys with a tenant

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        keys, usage, self._revoked_tenants = await asyncio.to_thread(self._load)
        self._by_hash = {key.key_hash: key for key in keys}
        self._usage = usage
        self._has_any_key = bool(usage)
        self._flusher = asyncio.create_task(self._flush_forever(), name="client-key-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self.flush()

    @property
    def has_keys(self) -> bool:
        """A key was ever created here (revoked ones count): from then on every request needs one."""
        return self._has_any_key

    # -- hot path (no I/O) ----------------------------------------------------------------------------
    def authenticate(self, plaintext: str) -> ClientKey | None:
        """The active key with this value, or None."""
        if not plaintext.startswith(KEY_PREFIX):
            return None
        return self._by_hash.get(hash_key(plaintext))

    def admit(self, key: ClientKey) -> None:
        """Count one request. Raises ClientRateLimited (429) over the rpm, BudgetExceeded (402) over budget."""
        usage = self._usage.setdefault(key.key_id, _Usage())
        now = self._clock.now()
        while usage.recent and now - usage.recent[0] >= _RPM_WINDOW_SECONDS:
            usage.recent.popleft()
        if key.rpm is not None and len(usage.recent) >= key.rpm:
            retry_after = _RPM_WINDOW_SECONDS - (now - usage.recent[0])
            raise ClientRateLimited(
                f"client key {key.name!r} is over its {key.rpm} requests per minute", retry_after_seconds=retry_after
            )
        spent = usage.spend_by_month.get(self._month(), 0.0)
        if key.monthly_budget_usd is not None and spent >= key.monthly_budget_usd:
            raise BudgetExceeded(f"client key {key.name!r} has spent its monthly budget of ${key.monthly_budget_usd:g}")
        usage.recent.append(now)
        usage.request_count += 1
        usage.last_used_wall = self._clock.wall()
        self._dirty.add(key.key_id)

    def record_spend(self, key_id: str | None, cost_usd: float) -> None:
        """Add a request's cost (US dollars) to its client key's spend; nothing without a key or a cost."""
        if key_id is None or cost_usd <= 0:
            return
        usage = self._usage.setdefault(key_id, _Usage())
        month = self._month()
        usage.spend_by_month[month] = usage.spend_by_month.get(month, 0.0) + cost_usd
        usage.spend_usd_total += cost_usd
        self._dirty.add(key_id)

    # -- admin ----------------------------------------------------------------------------------------
    async def create(
        self, name: str, *, rpm: int | None = None, monthly_budget_usd: float | None = None, scope: KeyScope = NO_SCOPE
    ) -> tuple[ClientKey, str]:
        """A new key and its plaintext, which is shown once and never stored."""
        wall = self._clock.wall()
        key, plaintext = new_key(name, created_wall=wall, rpm=rpm, monthly_budget_usd=monthly_budget_usd, scope=scope)
        await asyncio.to_thread(self._insert, key)
        self._by_hash[key.key_hash] = key
        self._has_any_key = True
        self._usage.setdefault(key.key_id, _Usage())
        log.info("client_key_created", extra={"key_id": key.key_id, "key_name": name})
        return key, plaintext

    async def revoke(self, key_id: str) -> None:
        """Refuse the key from now on. Raises UnknownClientKey (404)."""
        found = [h for h, key in self._by_hash.items() if key.key_id == key_id]
        if not found:
            raise UnknownClientKey(f"no active client key {key_id!r}")
        del self._by_hash[found[0]]  # first, so the very next request is refused
        await asyncio.to_thread(self._mark_revoked, key_id, self._clock.wall())
        log.info("client_key_revoked", extra={"key_id": key_id})

    # -- a cache of the shared keys (REDIS_URL, core.shared.client_keys) ------------------------------------
    def adopt(self, key: ClientKey) -> None:
        """Know a key created elsewhere (kept in SQLite by the next flush, so it still authenticates after a
        restart while Redis is down)."""
        if key.key_hash in self._by_hash:
            return
        self._by_hash[key.key_hash] = key
        self._has_any_key = True
        self._unsaved_keys.append(key)

    def forget(self, key_id: str, revoked_wall: float) -> bool:
        """Refuse a key revoked elsewhere from now on; True when it was active here."""
        self._has_any_key = True
        found = [h for h, key in self._by_hash.items() if key.key_id == key_id]
        for key_hash in found:
            del self._by_hash[key_hash]
        self._unsaved_revocations.append((key_id, revoked_wall))
        return bool(found)

    async def describe(self) -> list[dict[str, Any]]:
        """Every key (active and revoked) with its use and spend; never the key or its hash."""
        rows = await asyncio.to_thread(self._rows)
        month = self._month()
        listed = []
        for row in rows:
            usage = self._usage.get(row["id"], _Usage())
            listed.append(
                {
                    "id": row["id"],
                    "name": row["name"],
                    "created": row["created"],
                    "last_used": usage.last_used_wall or row["last_used"],
                    "requests": max(usage.request_count, row["request_count"]),
                    "spend_usd_this_month": round(usage.spend_by_month.get(month, 0.0), 8),
                    "spend_usd_total": round(max(usage.spend_usd_total, row["spend_usd_total"]), 8),
                    "rpm": row["rpm"],
                    "monthly_budget_usd": row["monthly_budget_usd"],
                    "revoked": row["revoked"] is not None,
                    "revoked_at": row["revoked"],
                    **scope_of(row["scope"]).as_dict(),
                }
            )
        return listed

    # -- persistence (threads only) -------------------------------------------------------------------
    async def flush(self) -> None:
        """Write the use and spend of every key touched since the last flush, and the keys adopted or forgotten."""
        if self._unsaved_keys or self._unsaved_revocations:
            await self._flush_cache()
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        snapshot = [
            (
                key_id,
                self._usage[key_id].request_count,
                self._usage[key_id].last_used_wall,
                self._usage[key_id].spend_usd_total,
                dict(self._usage[key_id].spend_by_month),
            )
            for key_id in dirty
            if key_id in self._usage
        ]
        try:
            await asyncio.to_thread(self._write_usage, snapshot)
        except sqlite3.Error as error:
            self._dirty |= dirty
            log.warning("client_key_flush_failed", extra={"error": type(error).__name__})

    async def _flush_cache(self) -> None:
        keys, self._unsaved_keys = self._unsaved_keys, []
        revocations, self._unsaved_revocations = self._unsaved_revocations, []
        try:
            await asyncio.to_thread(self._write_cache, keys, revocations)
        except sqlite3.Error as error:
            self._unsaved_keys, self._unsaved_revocations = (
                keys + self._unsaved_keys,
                revocations + self._unsaved_revocations,
            )
            log.warning("client_key_flush_failed", extra={"error": type(error).__name__})

    async def _flush_forever(self) -> None:
        while True:
            await self._clock.sleep(self._flush_interval_seconds)
            await self.flush()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, timeout=10.0)
        connection.row_factory = sqlite3.Row
        for statement in _SCHEMA:
            connection.execute(statement)
        add_scope_column(connection)
        return connection

    def _load(self) -> tuple[list[ClientKey], dict[str, _Usage], dict[str, str]]:
        ensure_private_dir(self._path.parent)
        make_private_file(self._path)  # SQLite gives its -journal, -wal and -shm files the database's mode
        for suffix in _SQLITE_COMPANIONS:
            tighten_if_present(self._path.with_name(self._path.name + suffix))
        with closing(self._connect()) as connection, connection:
            rows = connection.execute("SELECT * FROM client_keys").fetchall()
            spends = connection.execute("SELECT key_id, month, spend_usd FROM client_key_spend").fetchall()
        keys = [
            ClientKey(
                r["id"], r["name"], r["key_hash"], r["created"], r["rpm"], r["monthly_budget_usd"], scope_of(r["scope"])
            )
            for r in rows
            if r["revoked"] is None
        ]
        usage = {r["id"]: _Usage(r["request_count"], r["last_used"], r["spend_usd_total"]) for r in rows}
        for spend in spends:
            usage.setdefault(spend["key_id"], _Usage()).spend_by_month[spend["month"]] = spend["spend_usd"]
        revoked = ((r["id"], scope_of(r["scope"]).tenant) for r in rows if r["revoked"] is not None)
        return keys, usage, {key_id: tenant for key_id, tenant in revoked if tenant is not None}

    def _insert(self, key: ClientKey) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO client_keys (id, name, key_hash, created, rpm, monthly_budget_usd, scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                _row_of(key),
            )

    def _write_cache(self, keys: list[ClientKey], revocations: list[tuple[str, float]]) -> None:
        with closing(self._connect()) as connection, connection:
            connection.executemany(
                "INSERT OR IGNORE INTO client_keys (id, name, key_hash, created, rpm, monthly_budget_usd, scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_row_of(k) for k in keys],
            )
            connection.executemany(
                "UPDATE client_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                [(wall, key_id) for key_id, wall in revocations],
            )

    def _mark_revoked(self, key_id: str, revoked_wall: float) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute("UPDATE client_keys SET revoked = ? WHERE id = ?", (revoked_wall, key_id))

    def _rows(self) -> list[sqlite3.Row]:
        with closing(self._connect()) as connection, connection:
            return connection.execute("SELECT * FROM client_keys ORDER BY created").fetchall()

    def _write_usage(self, snapshot: list[tuple[str, int, float | None, float, dict[str, float]]]) -> None:
        with closing(self._connect()) as connection, connection:
            for key_id, count, last_used, total, by_month in snapshot:
                connection.execute(
                    "UPDATE client_keys SET request_count = ?, last_used = ?, spend_usd_total = ? WHERE id = ?",
                    (count, last_used, total, key_id),
                )
                connection.executemany(
                    "INSERT INTO client_key_spend (key_id, month, spend_usd) VALUES (?, ?, ?)"
                    " ON CONFLICT (key_id, month) DO UPDATE SET spend_usd = excluded.spend_usd",
                    [(key_id, month, spend) for month, spend in by_month.items()],
                )

    def _month(self) -> str:
        return month_of(self._clock.wall())

    def spend_by_tenant(self, month: str) -> dict[str, float]:
        """Each tenant's spend in ``month``: the sum over its keys (active and revoked alike) known here."""
        tenant_of = {key.key_id: key.scope.tenant for key in self._by_hash.values() if key.scope.tenant}
        tenant_of.update(self._revoked_tenants)  # a revoked key's spend this month still counts
        spend: dict[str, float] = {}
        for key_id, tenant in tenant_of.items():
            usage = self._usage.get(key_id)
            if usage is not None and month in usage.spend_by_month:
                spend[tenant] = spend.get(tenant, 0.0) + usage.spend_by_month[month]
        return spend


def _row_of(key: ClientKey) -> tuple[Any, ...]:
    return (
        key.key_id,
        key.name,
        key.key_hash,
        key.created_wall,
        key.rpm,
        key.monthly_budget_usd,
        scope_json(key.scope),
    )
