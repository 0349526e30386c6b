"""A small change bus over Redis pub/sub (issue 17): one subscriber connection per process.

Channels are named ``<prefix>bus:<channel>``; the process subscribes once to the pattern ``<prefix>bus:*`` and
hands each message to the local callbacks of its channel, so a part may subscribe at any time without a round
trip. A message is JSON ``{"o": origin, "d": data}``: ``origin`` is the sender's replica id, and a process never
dispatches its own messages (no echo).

Redis pub/sub keeps nothing: what was published while this process was disconnected is lost. So the background
task reconnects with backoff and, once subscribed again (and at the first subscription), runs every resync
callback, which re-reads the stored state. Publishing goes through ``SharedState.call`` (bounded); when Redis is
down it returns False and the caller keeps its local state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bkvy.clock import Clock
from bkvy.core.shared.state import SharedState, SharedStateDown, raise_if_stopping

__all__ = ["BusCallback", "ResyncCallback", "SharedBus"]

log = logging.getLogger(__name__)

BusCallback = Callable[[dict[str, Any]], Awaitable[None] | None]  # the message's data
ResyncCallback = Callable[[], Awaitable[None]]
_MAX_BACKOFF_SECONDS = 5.0
_FAILURES = (RedisError, OSError, TimeoutError)


class SharedBus:
    def __init__(self, shared: SharedState, url: str, *, clock: Clock) -> None:
        self._shared = shared
        self._clock = clock
        # its own connection: a subscriber blocks on reads, which REDIS_TIMEOUT_MS must not cut
        self._client: Redis = Redis.from_url(
            url, socket_connect_timeout=max(shared.timeout_seconds, 1.0), socket_keepalive=True
        )
        self._pattern = f"{shared.prefix}bus:*"
        self._callbacks: dict[str, list[BusCallback]] = {}
        self._resyncs: list[ResyncCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Future[None]] = set()
        self._is_resync_pending = False
        shared.on_change(self._on_shared_change)
        self._is_down_logged = False
        self.is_subscribed = False
        self.subscriptions = 0  # successful (re)subscriptions, each followed by a resync

    def channel_name(self, channel: str) -> str:
        return f"{self._shared.prefix}bus:{channel}"

    def subscribe(self, channel: str, callback: BusCallback) -> None:
        """Call ``callback(data)`` for each message another process publishes on ``channel``."""
        self._callbacks.setdefault(self.channel_name(channel), []).append(callback)

    def on_resync(self, callback: ResyncCallback) -> None:
        """Await ``callback()`` after each (re)subscription: messages sent while disconnected were lost."""
        self._resyncs.append(callback)

    def envelope(self, data: dict[str, Any]) -> str:
        """The wire form of a message from this process (also for Lua scripts that publish themselves)."""
        return json.dumps({"o": self._shared.replica_id, "d": data}, separators=(",", ":"))

    async def publish(self, channel: str, data: dict[str, Any]) -> bool:
        """Publish ``data`` to every other process; False when Redis is down (the caller stays local)."""
        name, message = self.channel_name(channel), self.envelope(data)
        try:
            await self._shared.call(lambda client: client.publish(name, message))
        except SharedStateDown:
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bkvy-shared-bus")

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._handlers) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._pattern)
                await self._on_subscribed()
                backoff = 0.1
                await self._listen(pubsub)
            except _FAILURES as error:
                self._on_lost(error)
            finally:
                self.is_subscribed = False
                try:
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
                except _FAILURES:
                    pass
            raise_if_stopping()
            await self._clock.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def _on_subscribed(self) -> None:
        self.is_subscribed = True
        if self._is_down_logged:
            self._is_down_logged = False
            log.info("shared_bus_resubscribed")
        # Redis answers again: do not wait for the heartbeat to notice. A pooled connection from before the outage
        # fails once (and is dropped), hence a second try.
        if not await self._shared.beat():
            await self._shared.beat()
        raise_if_stopping()
        await self._resync()
        self.subscriptions += 1

    async def _resync(self) -> None:
        self._is_resync_pending = False
        for resync in self._resyncs:
            try:
                await resync()
            except SharedStateDown:
                self._is_resync_pending = True  # again when the shared state is up (_on_shared_change)

    def _on_shared_change(self, is_up: bool) -> None:
        if is_up and self._is_resync_pending and self.is_subscribed:
            self._track(asyncio.ensure_future(self._resync()))

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") == "pmessage":
                self._dispatch(message["channel"], message["data"])

    def _dispatch(self, channel: bytes | str, raw: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        callbacks = self._callbacks.get(name)
        if not callbacks:
            return
        try:
            message = json.loads(raw)
            origin, data = message["o"], message["d"]
        except (ValueError, TypeError, KeyError):
            log.warning("shared_bus_message_malformed", extra={"channel": name})
            return
        if origin == self._shared.replica_id or not isinstance(data, dict):
            return
        for callback in callbacks:
            result = callback(data)
            if result is not None:  # a coroutine: run it beside the listener, which must keep reading
                self._track(asyncio.ensure_future(result))

    def _track(self, task: asyncio.Future[None]) -> None:
        self._handlers.add(task)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Future[None]) -> None:
        self._handlers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("shared_bus_handler_failed", extra={"error": type(task.exception()).__name__})

    def _on_lost(self, error: BaseException) -> None:
        if not self._is_down_logged:
            self._is_down_logged = True
            log.warning("shared_bus_disconnected", extra={"error": type(error).__name__})
