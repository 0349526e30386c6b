"""A pub/sub subscriber of one channel, with a resync on each (re)subscription (docs/SCALING.md).

A message published while this process was not subscribed is lost by Redis' pub/sub; so, once subscribed
(and only then, so that nothing published in between is missed), ``on_resync`` reads the state again. A broken
connection is reconnected with backoff; the subscriber never stops a request and logs once per outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from bkvy.core.shared.state import SharedState, SharedStateDown, raise_if_stopping

__all__ = ["Subscriber"]

log = logging.getLogger(__name__)

_FAILURES = (RedisError, OSError, TimeoutError, SharedStateDown)
_POLL_SECONDS = 1.0  # how long one read waits for a message; a message wakes it at once
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 5.0


class Subscriber:
    def __init__(
        self,
        state: SharedState,
        channel: str,
        *,
        on_message: Callable[[bytes], None],
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._state = state
        self._channel = channel
        self._on_message = on_message
        self._on_resync = on_resync
        self._task: asyncio.Task[None] | None = None
        self._is_down_logged = False
        self._backoff_seconds = _FIRST_BACKOFF_SECONDS
        self.is_subscribed = asyncio.Event()  # set while subscribed and resynced

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bkvy-shared-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except _FAILURES as error:
                raise_if_stopping()
                self.is_subscribed.clear()
                if not self._is_down_logged:
                    self._is_down_logged = True
                    log.warning("shared_subscriber_down", extra={"error": type(error).__name__})
            # real time, not the injected clock: this paces reconnects to a real server, whatever a test's clock says
            await asyncio.sleep(self._backoff_seconds)
            self._backoff_seconds = min(self._backoff_seconds * 2, _MAX_BACKOFF_SECONDS)

    async def _listen(self) -> None:
        pubsub = self._state.client.pubsub()
        try:
            async with asyncio.timeout(self._state.timeout_seconds * 4):
                await pubsub.subscribe(self._channel)
            await self._on_resync()
            self.is_subscribed.set()
            self._backoff_seconds = _FIRST_BACKOFF_SECONDS
            if self._is_down_logged:
                self._is_down_logged = False
                log.info("shared_subscriber_up", extra={"channel": self._channel})
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL_SECONDS)
                raise_if_stopping()  # a cancel racing the read's own timeout can be swallowed inside redis-py
                if message is not None and message.get("type") == "message":
                    self._on_message(message["data"])
        finally:
            self.is_subscribed.clear()
            try:  # bounded: a connection cut mid-read can leave the close waiting
                async with asyncio.timeout(self._state.timeout_seconds * 4):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            except _FAILURES:
                pass
