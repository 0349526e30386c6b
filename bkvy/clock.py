"""Injectable time. Everything that waits or measures takes a ``Clock``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> object: ...  # the callback will not run (a no-op once it has run)


class Clock(Protocol):
    def now(self) -> float: ...  # monotonic seconds
    def wall(self) -> float: ...  # unix seconds, for records and persistence
    async def sleep(self, seconds: float) -> None: ...
    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]: ...  # raises TimeoutError on expiry
    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer: ...  # from the running loop


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timeout(self, seconds: float) -> Deadline:
        return Deadline(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)


class Deadline:
    """``asyncio.timeout``'s contract in fewer steps, for the two deadlines every request enters: ``seconds``
    after entering, the task is cancelled, and leaving the block turns that cancellation into TimeoutError.
    A cancellation from outside stays a cancellation. (asyncio.Timeout's state machine and rescheduling cost
    ~6 µs per use on the benchmark machine; this costs one timer handle.)"""

    __slots__ = ("_seconds", "_task", "_handle", "_is_expired", "_cancelling")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._is_expired = False

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = task.get_loop()
        self._handle = loop.call_at(loop.time() + self._seconds, self._expire)
        return self

    def _expire(self) -> None:
        self._is_expired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: object
    ) -> None:
        self._handle.cancel()
        if self._is_expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


class FakeClock:
    """A clock that moves only when told to. ``sleep`` parks until ``advance`` passes its deadline."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, future))
        await future

    @asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        """Like ``asyncio.timeout`` but driven by ``advance``: cancels the task, raises TimeoutError."""
        task = asyncio.current_task()
        assert task is not None
        expired = False
        deadline: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def _expire(_: asyncio.Future[None]) -> None:
            nonlocal expired
            if not deadline.cancelled():
                expired = True
                task.cancel()

        deadline.add_done_callback(_expire)
        self._sleepers.append((self._now + max(0.0, seconds), deadline))
        if seconds <= 0:
            self.advance(0)
        try:
            yield
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            if not deadline.done():
                deadline.cancel()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """``callback`` once ``advance`` passes ``seconds`` from now (run by the loop, like a timer handle)."""
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer.add_done_callback(lambda done: None if done.cancelled() else callback())
        self._sleepers.append((self._now + max(0.0, seconds), timer))
        if seconds <= 0:
            self.advance(0)
        return timer

    @property
    def sleeper_count(self) -> int:
        return sum(1 for _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """The earliest ``now()`` a sleeper, timeout or timer waits for; None when none waits. What a driver of
        virtual time (``bkvy.replay``) advances to when every task is parked."""
        return min((deadline for deadline, future in self._sleepers if not future.done()), default=None)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        still_waiting = []
        for deadline, future in self._sleepers:
            if future.done():
                continue
            if deadline <= self._now:
                future.set_result(None)
            else:
                still_waiting.append((deadline, future))
        self._sleepers = still_waiting
