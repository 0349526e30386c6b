"""Client keys shared by every replica through Redis (REDIS_URL; docs/SCALING.md, "Client keys and spend").

Redis holds the keys (their hash, never their value), their rpm windows and their monthly spend
(``key_layout``). The local ``ClientKeyStore`` is the cache: a key is authenticated from it without I/O; a miss
costs one Redis lookup by hash (a bounded negative cache keeps a flood of bad keys from filling memory or
hammering Redis). Creations and revocations are published on the bus (``core.shared.bus``, channel ``keys``);
each process applies the others', and reads every key again on each (re)subscription.

Admission is one Lua script per keyed request: the rpm take and the read of the shared monthly spend in one
atomic step. Spend is queued and added with HINCRBYFLOAT by a flusher woken at once, so a budget spent from any
replica stops all of them, overshot only by the requests in flight when it ran out.

Redis down: keys known locally keep working, rpm at the local share (divided by ``live_replicas()``), spend is
kept and added when Redis returns (nothing lost), and the revocations seen so far are honoured.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import OrderedDict, deque
from typing import Any

from redis.asyncio import Redis

from bkvy.clock import Clock
from bkvy.core.limits.client_keys import KEY_PREFIX, ClientKey, ClientKeyStore, hash_key, month_of, new_key
from bkvy.core.limits.key_scope import NO_SCOPE, KeyScope
from bkvy.core.shared.bus import SharedBus
from bkvy.core.shared.key_layout import ADMIT_SCRIPT, KeyLayout, record_json, record_of
from bkvy.core.shared.spend_queue import SpendQueue
from bkvy.core.shared.state import SharedState, SharedStateDown
from bkvy.models.errors import (
    BudgetExceeded,
    ClientRateLimited,
    SharedStateUnavailable,
    Unauthorized,
    UnknownClientKey,
)

__all__ = ["SharedClientKeys"]

log = logging.getLogger(__name__)

KEYS_CHANNEL = "keys"  # the bus channel of key creations and revocations

_RPM_WINDOW_SECONDS = 60.0
_MAX_KEY_CHARS = 128  # ours are 51; anything longer is not worth a lookup
_NEGATIVE_CACHE_SIZE = 10_000
_NEGATIVE_TTL_SECONDS = 60.0  # a key's value is unknown before it is created: a miss stays a miss


class SharedClientKeys:
    def __init__(
        self, state: SharedState, local: ClientKeyStore, clock: Clock, *, bus: SharedBus | None = None
    ) -> None:
        """``bus``: where creations and revocations are announced to (and heard from) the other processes;
        without it (tests of one process) a change elsewhere is seen at the next lookup or resync only."""
        self._state = state
        self._local = local
        self._clock = clock
        self._layout = KeyLayout(state.prefix)
        self._admit = state.client.register_script(ADMIT_SCRIPT)
        self._members = itertools.count()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # hash -> monotonic expiry
        self._revoked_hashes: set[str] = set()
        self._recent: dict[str, deque[float]] = {}  # key id -> local admit times (Redis down only)
        self._spent_seen: dict[tuple[str, str], float] = {}  # (key id, month) -> shared spend + local since
        self._spend = SpendQueue(state, self._write_spend, task_name="bkvy-shared-spend")
        self._revoked_ids: set[str] = set()
        self._revocation_seen = asyncio.Event()  # set and replaced at each revocation applied here
        self._bus = bus

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the shared keys (a Redis down now leaves the local cache), then follow the channel."""
        try:
            await self.resync()
        except SharedStateDown:
            pass
        if self._bus is not None:  # creations and revocations from the other processes; all read again on resync
            self._bus.subscribe(KEYS_CHANNEL, self._on_event)
            self._bus.on_resync(self.resync)
        self._spend.start()

    async def stop(self) -> None:
        await self._spend.stop()
        if len(self._spend):
            log.warning("client_key_spend_not_shared", extra={"keys": len(self._spend)})

    # -- hot path ---------------------------------------------------------------------------------------
    async def authenticate(self, plaintext: str) -> ClientKey | None:
        """The active key with this value, or None: from the cache, else one Redis lookup by hash."""
        key = self._local.authenticate(plaintext)
        if key is not None or not plaintext.startswith(KEY_PREFIX) or len(plaintext) > _MAX_KEY_CHARS:
            return key
        key_hash = hash_key(plaintext)
        if key_hash in self._revoked_hashes or self._is_known_unknown(key_hash):
            return None
        try:
            raw = await self._state.call(lambda client: client.get(self._layout.by_hash(key_hash)))
        except SharedStateDown:
            return None
        if raw is None:
            self._remember_unknown(key_hash)
            return None
        found, revoked_wall = record_of(raw)
        if revoked_wall is not None:
            self._revoked_hashes.add(key_hash)
            return None
        self._local.adopt(found)
        return found

    async def admit(self, key: ClientKey) -> None:
        """Count one request, atomically across replicas. Raises ClientRateLimited (429), BudgetExceeded (402),
        Unauthorized (401, revoked elsewhere a moment ago)."""
        month = month_of(self._clock.wall())
        budget = -1.0 if key.monthly_budget_usd is None else key.monthly_budget_usd
        member = f"{self._state.replica_id}:{next(self._members)}"
        args = (repr(self._clock.wall()), key.rpm or 0, repr(budget), month, member)
        keys = self._layout.admit_keys(key.key_id)
        try:
            verdict, detail = await self._state.call(lambda client: self._admit(keys=keys, args=args, client=client))
        except SharedStateDown:
            self._admit_locally(key, month)
            return
        self._apply_verdict(key, month, _text(verdict), _text(detail))

    def record_spend(self, key_id: str | None, cost_usd: float) -> None:
        """Queue a request's cost (US dollars) for Redis; the flusher adds it at once (or when Redis returns)."""
        if key_id is None or cost_usd <= 0:
            return
        slot = (key_id, month_of(self._clock.wall()))
        self._spend.add(slot, cost_usd)
        self._spent_seen[slot] = self._spent_seen.get(slot, 0.0) + cost_usd

    def _apply_verdict(self, key: ClientKey, month: str, verdict: str, detail: str) -> None:
        if verdict == "revoked":
            self._local.forget(key.key_id, self._clock.wall())
            self._revoked_hashes.add(key.key_hash)
            raise Unauthorized(f"client key {key.name!r} has been revoked")
        if verdict == "rpm":
            raise ClientRateLimited(
                f"client key {key.name!r} is over its {key.rpm} requests per minute",
                retry_after_seconds=float(detail),
            )
        self._spent_seen[(key.key_id, month)] = float(detail) + self._spend.pending((key.key_id, month))
        if verdict == "budget":
            raise _over_budget(key)

    def _admit_locally(self, key: ClientKey, month: str) -> None:
        """Redis down: the rpm at this replica's share, the budget against the spend last seen plus ours since."""
        recent = self._recent.setdefault(key.key_id, deque())
        now = self._clock.now()
        while recent and now - recent[0] >= _RPM_WINDOW_SECONDS:
            recent.popleft()
        if key.rpm is not None:
            share = max(1, key.rpm // self._state.live_replicas())
            if len(recent) >= share:
                raise ClientRateLimited(
                    f"client key {key.name!r} is over its {key.rpm} requests per minute",
                    retry_after_seconds=_RPM_WINDOW_SECONDS - (now - recent[0]),
                )
        spent = self._spent_seen.get((key.key_id, month), 0.0)
        if key.monthly_budget_usd is not None and spent >= key.monthly_budget_usd:
            raise _over_budget(key)
        recent.append(now)

    def _is_known_unknown(self, key_hash: str) -> bool:
        expiry = self._unknown.get(key_hash)
        if expiry is None:
            return False
        if expiry > self._clock.now():
            return True
        del self._unknown[key_hash]
        return False

    def _remember_unknown(self, key_hash: str) -> None:
        self._unknown[key_hash] = self._clock.now() + _NEGATIVE_TTL_SECONDS
        self._unknown.move_to_end(key_hash)
        while len(self._unknown) > _NEGATIVE_CACHE_SIZE:
            self._unknown.popitem(last=False)

    # -- spend ------------------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Add the queued spend to Redis now (``SpendQueue.flush``)."""
        await self._spend.flush()

    def _write_spend(self, pipe: Any, key_id: str, month: str, usd: float) -> None:
        pipe.hincrbyfloat(self._layout.spend(key_id), month, usd)
        pipe.hincrbyfloat(self._layout.spend(key_id), "total", usd)

    # -- keys: admin, events, resync --------------------------------------------------------------------
    async def create(
        self, name: str, *, rpm: int | None = None, monthly_budget_usd: float | None = None, scope: KeyScope = NO_SCOPE
    ) -> tuple[ClientKey, str]:
        """A new key, in Redis and published, and its plaintext (shown once, never stored).
        Raises SharedStateUnavailable (503) when Redis is down."""
        wall = self._clock.wall()
        key, plaintext = new_key(name, created_wall=wall, rpm=rpm, monthly_budget_usd=monthly_budget_usd, scope=scope)
        record = record_json(key)
        await self._write(lambda pipe: _store_record(pipe, self._layout, self._bus, key, record))
        self._local.adopt(key)
        log.info("client_key_created", extra={"key_id": key.key_id, "key_name": name})
        return key, plaintext

    async def revoke(self, key_id: str) -> None:
        """Refuse the key on every replica. Raises UnknownClientKey (404), SharedStateUnavailable (503)."""
        raw = await self._shared(lambda client: client.hget(self._layout.ids, key_id))
        if raw is None:
            raise UnknownClientKey(f"no active client key {key_id!r}")
        key, revoked_wall = record_of(raw)
        if revoked_wall is not None:
            raise UnknownClientKey(f"no active client key {key_id!r}")
        record = record_json(key, revoked_wall=self._clock.wall())

        def revoke_in(pipe: Any) -> None:
            pipe.set(self._layout.revoked(key_id), "1")
            pipe.sadd(self._layout.revoked_set, key.key_hash)
            _store_record(pipe, self._layout, self._bus, key, record)

        await self._write(revoke_in)
        self._apply_revocation(key.key_id, key.key_hash)
        log.info("client_key_revoked", extra={"key_id": key_id})

    async def describe(self) -> list[dict[str, Any]]:
        """Every key (active and revoked) with its shared use and spend; never the key or its hash."""
        month = month_of(self._clock.wall())
        records = await self._shared(lambda client: client.hvals(self._layout.ids))
        keys = sorted((record_of(raw) for raw in records), key=lambda pair: pair[0].created_wall)

        async def read(client: Redis) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for key, _ in keys:
                    pipe.hgetall(self._layout.spend(key.key_id))
                    pipe.hgetall(self._layout.use(key.key_id))
                return list(await pipe.execute())

        replies = await self._shared(read)
        return [
            _described(key, revoked_wall, replies[2 * n], replies[2 * n + 1], month)
            for n, (key, revoked_wall) in enumerate(keys)
        ]

    async def resync(self) -> None:
        """Read every shared key again: adopt the active ones, honour every revocation. Raises SharedStateDown."""
        records = await self._state.call(lambda client: client.hvals(self._layout.ids))
        for raw in records:
            key, revoked_wall = record_of(raw)
            if revoked_wall is None:
                self._local.adopt(key)
            elif key.key_hash not in self._revoked_hashes:
                self._apply_revocation(key.key_id, key.key_hash)

    def _on_event(self, data: dict[str, Any]) -> None:
        try:
            key, revoked_wall = record_of(json.dumps(data))
        except ValueError:
            log.warning("client_key_event_malformed")
            return
        if revoked_wall is None:
            self._local.adopt(key)
            self._unknown.pop(key.key_hash, None)
        else:
            self._apply_revocation(key.key_id, key.key_hash)

    def _apply_revocation(self, key_id: str, key_hash: str) -> None:
        self._revoked_hashes.add(key_hash)
        self._revoked_ids.add(key_id)
        self._local.forget(key_id, self._clock.wall())
        seen, self._revocation_seen = self._revocation_seen, asyncio.Event()
        seen.set()

    async def wait_revoked(self, key_id: str) -> None:
        """Return once this replica refuses ``key_id`` (the caller bounds the wait)."""
        while key_id not in self._revoked_ids:
            await self._revocation_seen.wait()

    async def _write(self, build: Any) -> None:
        async def run(client: Redis) -> None:
            async with client.pipeline(transaction=True) as pipe:
                build(pipe)
                await pipe.execute()

        await self._shared(run)

    async def _shared(self, operation: Any) -> Any:
        try:
            return await self._state.call(operation)
        except SharedStateDown:
            raise SharedStateUnavailable(
                "client keys are shared through Redis, which is unreachable: try again when it is back"
            ) from None


def _store_record(pipe: Any, layout: KeyLayout, bus: SharedBus | None, key: ClientKey, record: str) -> None:
    pipe.set(layout.by_hash(key.key_hash), record)
    pipe.hset(layout.ids, key.key_id, record)
    if bus is not None:  # in the same transaction: a stored key is announced, an announced key is stored
        pipe.publish(bus.channel_name(KEYS_CHANNEL), bus.envelope(json.loads(record)))


def _over_budget(key: ClientKey) -> BudgetExceeded:
    return BudgetExceeded(f"client key {key.name!r} has spent its monthly budget of ${key.monthly_budget_usd:g}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _described(
    key: ClientKey, revoked_wall: float | None, spend: dict[bytes, bytes], use: dict[bytes, bytes], month: str
) -> dict[str, Any]:
    last_used = use.get(b"last_used")
    return {
        "id": key.key_id,
        "name": key.name,
        "created": key.created_wall,
        "last_used": None if last_used is None else float(last_used),
        "requests": int(use.get(b"requests", b"0")),
        "spend_usd_this_month": round(float(spend.get(month.encode(), b"0")), 8),
        "spend_usd_total": round(float(spend.get(b"total", b"0")), 8),
        "rpm": key.rpm,
        "monthly_budget_usd": key.monthly_budget_usd,
        "revoked": revoked_wall is not None,
        "revoked_at": revoked_wall,
        **key.scope.as_dict(),
    }
