"""Circuit states shared by every replica through Redis (issue 17; docs/SCALING.md, "Circuits and reload").

Each replica keeps its own ``CircuitBreakerRegistry``: the hot path reads local memory only. Every local
transition (opening, half-open, closing, an admin reset, the flapping flag with them) is written, by one writer
task off the request path, to a hash per circuit (``<prefix>circuit:<["provider","model","key_id"]>``) by a Lua
script that bumps the circuit's ``version``, stores the state and publishes it on the bus's ``circuits`` channel
in the same step. Other replicas apply a message whose version is newer than the one they know; applying does
not publish again (no echo loop), and Redis's order of writes decides between two replicas' changes.

Redis is the store: a replica starts from the hashes (``load``), and after a reconnection reads them again
(``resync``: messages sent while it was away are lost) and writes the changes it made meanwhile, unless another
replica changed the same circuit since. While Redis is down the registry simply stays local. A write can fail
without the bus losing its connection (a timeout, a pooled connection from before an outage): the writer then
resyncs itself once the shared state is up again, so no change waits for a reconnection that may never come.

``claim_probe`` is the probe lock: one replica per open circuit per interval (a Lua script compares the lock's
end with the caller's clock, so a test clock drives it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from redis.asyncio import Redis

from bkvy.clock import Clock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey
from bkvy.core.circuits.types import CircuitSnapshot
from bkvy.core.shared.bus import SharedBus
from bkvy.core.shared.state import SharedState, SharedStateDown

__all__ = ["CIRCUITS_CHANNEL", "SharedCircuits"]

log = logging.getLogger(__name__)

CIRCUITS_CHANNEL = "circuits"
_SCAN_PAGE = 500

# KEYS[1] the circuit's hash; ARGV: channel, state JSON, origin, the newest version the writer knows (a Redis
# that lost its data must not restart the versions below what the replicas already hold). Returns the version.
_WRITE_SCRIPT = """
local version = math.max(tonumber(redis.call('HGET', KEYS[1], 'version') or '0'), tonumber(ARGV[4])) + 1
redis.call('HSET', KEYS[1], 'version', version, 'state', ARGV[2], 'origin', ARGV[3])
local message = '{"o":' .. cjson.encode(ARGV[3]) .. ',"d":{"v":' .. version .. ',"s":' .. ARGV[2] .. '}}'
redis.call('PUBLISH', ARGV[1], message)
return version
"""

# KEYS[1] the lock; ARGV: owner, now (ms, caller's wall clock), interval (ms). 1 when taken, 0 when held.
_CLAIM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held then
  local held_until = tonumber(string.match(held, '^(%d+)'))
  if held_until and held_until > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], (tonumber(ARGV[2]) + tonumber(ARGV[3])) .. ' ' .. ARGV[1], 'PX', ARGV[3])
return 1
"""


def _circuit_id(key: CircuitKey) -> str:
    return json.dumps([key.provider, key.model, key.key_id], separators=(",", ":"))


def circuit_hash_name(prefix: str, key: CircuitKey) -> str:
    """The Redis hash holding ``key``'s shared state (``version``, ``state``, ``origin``)."""
    return f"{prefix}circuit:{_circuit_id(key)}"


def _key_of(state: dict[str, Any]) -> CircuitKey:
    return CircuitKey(str(state["provider"]), str(state["model"]), str(state["key_id"]))


class SharedCircuits:
    def __init__(self, registry: CircuitBreakerRegistry, shared: SharedState, bus: SharedBus, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock
        self._shared = shared
        self._bus = bus
        self._write = shared.client.register_script(_WRITE_SCRIPT)
        self._claim = shared.client.register_script(_CLAIM_SCRIPT)
        self._versions: dict[CircuitKey, int] = {}  # the newest version known here, per circuit
        self._pending: dict[CircuitKey, None] = {}  # local changes to write, in order (a dict as an ordered set)
        self._unsynced: set[CircuitKey] = set()  # changed here while Redis was down
        self._is_resync_due = False  # Redis answers again: the writer resyncs before writing
        self._writing: CircuitKey | None = None
        self._deferred: dict[CircuitKey, tuple[int, dict[str, Any]]] = {}  # arrived while writing that circuit
        self._is_applying = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # remote states applied here (tests, metrics)
        self.writes = 0  # local changes sent to Redis (tried), counted as they start

    @property
    def pending_writes(self) -> int:
        """Local changes not written yet (the one being written included)."""
        return len(self._pending) + (self._writing is not None)

    def start(self) -> None:
        """Listen to local transitions and to the other replicas; call after ``load``."""
        self._registry.on_change(self._on_local_change)
        self._shared.on_change(self._on_shared_change)
        self._bus.subscribe(CIRCUITS_CHANNEL, self._on_message)
        self._bus.on_resync(self._resync_quietly)
        self._task = asyncio.create_task(self._run_writer(), name="bkvy-shared-circuits")

    async def stop(self) -> None:
        """Write what is pending (once, bounded by each call's timeout), then stop the writer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._write_pending()

    async def load(self) -> int:
        """The stored states, at start-up. Returns how many were applied; 0 when Redis is down (local state)."""
        try:
            return await self.resync()
        except SharedStateDown:
            log.warning("shared_circuits_not_loaded", extra={"reason": self._shared.down_reason})
            return 0

    async def resync(self) -> int:
        """Apply every stored state newer than the one known here, then write the changes made here while Redis
        was down (those no other replica has overwritten since), and those Redis no longer has. Raises
        SharedStateDown."""
        applied, stored = 0, await self._read_all()
        for version, state in stored:
            applied += self._receive(version, state)
        # a Redis that restarted without its data: what this replica holds is the state to store again
        self._unsynced |= self._versions.keys() - {_key_of(state) for _version, state in stored}
        for key in sorted(self._unsynced):
            self._pending[key] = None
        self._unsynced.clear()
        if self._pending:
            self._wake.set()
        return applied

    async def _resync_quietly(self) -> None:
        await self.resync()

    async def claim_probe(self, key: CircuitKey, interval_seconds: float) -> bool:
        """Whether this replica probes ``key`` in this interval: the first to ask takes the lock. True when Redis
        is down (each replica probes on its own then, as without Redis)."""
        name = f"{self._shared.prefix}probe:{_circuit_id(key)}"
        now_ms, interval_ms = int(self._clock.wall() * 1000), max(1, int(interval_seconds * 1000))
        args: list[str | int] = [self._shared.replica_id, now_ms, interval_ms]
        try:
            return bool(await self._shared.call(lambda client: self._claim(keys=[name], args=args, client=client)))
        except SharedStateDown:
            return True

    def _on_local_change(self, snapshot: CircuitSnapshot) -> None:
        if self._is_applying:
            return  # a state from another replica: publishing it again would echo
        self._pending[snapshot.key] = None
        self._wake.set()

    def _on_shared_change(self, is_up: bool) -> None:
        if is_up:  # a write failed since the last resync leaves its change unsynced, whatever the bus did
            self._is_resync_due = True
            self._wake.set()

    def _on_message(self, data: dict[str, Any]) -> None:
        try:
            version, state = int(data["v"]), data["s"]
            if not isinstance(state, dict):
                raise TypeError("state")
            self._receive(version, state)
        except (KeyError, TypeError, ValueError):
            log.warning("shared_circuit_message_malformed")

    def _receive(self, version: int, state: dict[str, Any]) -> int:
        """Apply ``state`` when ``version`` is newer than the one known here. Returns 1 when applied."""
        key = _key_of(state)
        if version <= self._versions.get(key, 0):
            return 0
        if key == self._writing:  # our own write may come out newer: decide once its version is known
            self._deferred[key] = max((version, state), self._deferred.get(key, (0, state)), key=lambda v: v[0])
            return 0
        self._versions[key] = version
        self._pending.pop(key, None)  # a newer state from elsewhere wins over a change not written yet
        self._unsynced.discard(key)
        self._is_applying = True
        try:
            is_applied = self._registry.apply_shared(state) is not None
        except (KeyError, TypeError, ValueError):
            log.warning("shared_circuit_state_skipped", extra={"provider": key.provider, "key_id": key.key_id})
            return 0
        finally:
            self._is_applying = False
        self.applied += is_applied
        return int(is_applied)

    async def _run_writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._is_resync_due:
                await self._resync_unsynced()
            await self._write_pending()

    async def _resync_unsynced(self) -> None:
        """Read what the other replicas stored, then queue the changes whose write failed (none: nothing to do).
        A failure leaves them unsynced: the state is down, and its coming up makes the resync due again."""
        self._is_resync_due = False
        if self._unsynced:
            with contextlib.suppress(SharedStateDown):
                await self.resync()

    async def _write_pending(self) -> None:
        while self._pending:
            key = next(iter(self._pending))
            del self._pending[key]
            self._writing = key
            try:
                await self._write_one(key)
            finally:
                self._writing = None
                deferred = self._deferred.pop(key, None)
            if deferred is not None:
                self._receive(*deferred)

    async def _write_one(self, key: CircuitKey) -> None:
        self.writes += 1
        state = json.dumps(self._registry.export_circuit(key), separators=(",", ":"))
        keys = [circuit_hash_name(self._shared.prefix, key)]
        known = self._versions.get(key, 0)
        args: list[str | int] = [self._bus.channel_name(CIRCUITS_CHANNEL), state, self._shared.replica_id, known]
        try:
            version = int(await self._shared.call(lambda client: self._write(keys=keys, args=args, client=client)))
        except SharedStateDown:
            self._unsynced.add(key)  # written by ``resync`` once Redis is back
            return
        self._versions[key] = max(version, self._versions.get(key, 0))

    async def _read_all(self) -> list[tuple[int, dict[str, Any]]]:
        """Every stored circuit: (version, state). Each page is one bounded call. Raises SharedStateDown."""
        pattern, cursor, found = f"{self._shared.prefix}circuit:*", 0, []
        while True:
            cursor, names = await self._shared.call(
                lambda client, at=cursor: client.scan(at, match=pattern, count=_SCAN_PAGE)  # type: ignore[misc]
            )
            if names:
                found += await self._shared.call(lambda client, page=names: _read_hashes(client, page))  # type: ignore[misc]
            if not cursor:
                return found


async def _read_hashes(client: Redis, names: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(name, "version", "state")
        rows = await pipe.execute()
    found = []
    for version, state in rows:
        if version is None or state is None:
            continue
        try:
            entry = json.loads(state)
            _key_of(entry)  # a state must name its circuit
            found.append((int(version), entry))
        except (ValueError, KeyError, TypeError):
            log.warning("shared_circuit_state_unreadable")
    return found
