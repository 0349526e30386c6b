"""The bandit's posteriors on disk (LOG_DIR/bandit_states.json), saved with the circuit states (issue 18 §3).

The same way as ``circuit_states.json`` (``core/circuits/store.py``): one JSON file written atomically (temp
file, ``os.replace``, 0600) in a thread, batched by a ``DebouncedSaver``, flushed at shutdown, read once at
start-up. With REDIS_URL the fleet's posteriors live in Redis instead (``core/shared/bandit.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bkvy.utils.json_file import JsonFile


class BanditStore:
    """One JSON file holding ``BanditBook.to_dict()``."""

    def __init__(self, path: Path) -> None:
        self._file = JsonFile(path, "bandit_state")

    async def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically in a thread; raises OSError when the disk refuses (the saver logs it)."""
        await self._file.write(state)

    def load(self) -> object | None:
        """The saved JSON value, or None when missing, unreadable or corrupt (blocking: start-up only)."""
        return self._file.read()
