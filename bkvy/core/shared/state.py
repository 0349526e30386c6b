"""The one Redis connection of a process, and whether it is usable (issue 17).

Every call is bounded by ``REDIS_TIMEOUT_MS``. A call that times out or cannot connect marks the state down:
callers then get ``SharedStateDown`` at once (no round trip) and fall back to local state, while a background
task reconnects with backoff. Each transition is logged once; nothing is logged per request.

Each process announces itself with a heartbeat key (``<prefix>replica:<host>:<pid>:<random>``, with a TTL); the
number of live replicas is counted by the same background task and cached here, so a fallback divides its limits
by the last count seen without asking Redis on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bkvy.clock import Clock

__all__ = ["SharedState", "SharedStateDown", "new_replica_id", "raise_if_stopping", "stop_task"]

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 6.0  # three beats missed: the replica no longer counts
_MAX_BACKOFF_SECONDS = 5.0
_FAILURES = (RedisError, OSError, TimeoutError)


def raise_if_stopping() -> None:
    """redis-py may swallow a cancellation that lands mid-call (it races a read's own timeout) or turn it into a
    connection error: call this after a Redis call, and in an ``except`` of such errors, so a stop (cancel) is not
    lost or taken for an outage (a loop would then go on, and its ``stop`` wait for ever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task of the shared state and wait for it to end (None: nothing to stop)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class SharedStateDown(Exception):
    """Redis is unreachable or slow: use local state."""


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SharedState:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_seconds: float,
        clock: Clock,
        replica_id: str | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.prefix = prefix
        self.replica_id = replica_id or new_replica_id()
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._heartbeat_seconds = heartbeat_seconds
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # no hidden retries: one bounded try, then the fallback
            health_check_interval=0,
        )
        self.is_up = False
        self.down_reason: str | None = "not connected yet"
        self._live_replicas = 1
        self._is_down_logged = False
        self._listeners: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def client(self) -> Redis:
        return self._client

    def live_replicas(self) -> int:
        """Replicas (processes) seen alive at the last heartbeat, this one included; at least 1."""
        return self._live_replicas

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(is_up)`` at each transition between up and down."""
        self._listeners.append(callback)

    async def start(self) -> None:
        """One heartbeat (a failure only marks the state down: bkvy serves without Redis), then the background
        task that beats and, while down, reconnects with backoff."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="bkvy-shared-state")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.is_up:
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    await self._client.delete(self._heartbeat_key)
            except _FAILURES:
                pass
        await self._client.aclose()

    async def call(self, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """``operation(client)``, bounded by the timeout. Raises SharedStateDown when Redis is down or the
        call fails (the state turns down then)."""
        if not self.is_up:
            raise SharedStateDown(self.down_reason)
        try:
            # asyncio's own timer, not the injected clock: this bounds real I/O, whatever a test's clock says
            async with asyncio.timeout(self.timeout_seconds):
                result = await operation(self._client)
        except _FAILURES as error:
            raise_if_stopping()
            self._mark_down(error)
            raise SharedStateDown(self.down_reason) from None
        raise_if_stopping()  # a cancel that raced a read's timeout inside redis-py may have been swallowed
        return result

    @property
    def _heartbeat_key(self) -> str:
        return f"{self.prefix}replica:{self.replica_id}"

    async def beat(self) -> bool:
        """Announce this replica and count the live ones. Marks the state up or down; returns is_up."""
        try:
            async with asyncio.timeout(self.timeout_seconds * 4):  # a few round trips
                await self._client.set(self._heartbeat_key, "1", px=int(HEARTBEAT_TTL_SECONDS * 1000))
                count = 0
                async for _key in self._client.scan_iter(match=f"{self.prefix}replica:*", count=1000):
                    count += 1
        except _FAILURES as error:
            raise_if_stopping()
            self._mark_down(error)
            return False
        raise_if_stopping()
        self._live_replicas = max(1, count)
        self._mark_up()
        return True

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if self.is_up:
                backoff = 0.1
                await self._clock.sleep(self._heartbeat_seconds)
            else:
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            await self.beat()

    def _mark_down(self, error: BaseException) -> None:
        reason = f"redis unreachable or slow ({type(error).__name__})"
        was_up, has_logged, self.is_up, self.down_reason = self.is_up, self._is_down_logged, False, reason
        if has_logged:  # already down: once per transition, never per request
            return
        self._is_down_logged = True
        log.warning("shared_state_down", extra={"reason": reason, "live_replicas_last_seen": self._live_replicas})
        if was_up:
            self._notify()

    def _mark_up(self) -> None:
        if self.is_up:
            return
        self.is_up, self.down_reason, self._is_down_logged = True, None, False
        log.info("shared_state_up", extra={"replica": self.replica_id, "live_replicas": self._live_replicas})
        self._notify()

    def _notify(self) -> None:
        for callback in self._listeners:
            callback(self.is_up)
