"""Circuit states on disk, so a restart keeps open circuits open (SPEC §6).

``CircuitStore`` writes atomically (temp file in the same directory, then ``os.replace``) in a thread;
``DebouncedSaver`` batches the many transitions of a bad minute into one write per ``delay_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from bkvy.clock import Clock
from bkvy.utils.atomic_files import write_text_atomic

log = logging.getLogger(__name__)

StateFn = Callable[[], dict[str, Any]]


class StateSink(Protocol):
    async def save(self, state: dict[str, Any]) -> None: ...


class CircuitStore:
    """One JSON file holding ``CircuitBreakerRegistry.to_dict()`` output."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically; raises OSError when the disk refuses."""
        await asyncio.to_thread(self._write, json.dumps(state, separators=(",", ":")))

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when missing, unreadable, corrupt or of the wrong shape. Never raises."""
        if not self._path.exists():
            return None
        try:
            state = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("circuit_state_unreadable", extra={"path": str(self._path)})
            return None
        if not _has_expected_shape(state):
            log.warning("circuit_state_wrong_shape", extra={"path": str(self._path)})
            return None
        return state

    def _write(self, text: str) -> None:
        write_text_atomic(self._path, text)


class DebouncedSaver:
    """Saves the latest state at most once per ``delay_seconds``; ``flush`` writes what is pending now."""

    def __init__(self, store: StateSink, clock: Clock, delay_seconds: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._delay_seconds = delay_seconds
        self._state_fn: StateFn | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def is_pending(self) -> bool:
        return self._state_fn is not None

    def schedule(self, state_fn: StateFn) -> None:
        """Save ``state_fn()`` after the delay; it is called at write time, so the newest state wins.

        Must be called from the event loop.
        """
        self._state_fn = state_fn
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save_later())

    async def flush(self) -> None:
        """Write any pending state now (e.g. on shutdown) and stop the timer."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._save_pending()

    async def _save_later(self) -> None:
        while self._state_fn is not None:
            await self._clock.sleep(self._delay_seconds)
            # shielded: a flush that cancels the timer must not cut a write in half
            await asyncio.shield(self._save_pending())

    async def _save_pending(self) -> None:
        async with self._lock:
            state_fn, self._state_fn = self._state_fn, None
            if state_fn is None:
                return
            try:
                await self._store.save(state_fn())
            except OSError as error:
                log.warning("circuit_state_save_failed", extra={"errno": error.errno})


def _has_expected_shape(state: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(state, dict)
        and isinstance(state.get("circuits"), list)
        and all(isinstance(entry, dict) for entry in state["circuits"])
        and isinstance(state.get("auth_blocked", []), list)
    )
