"""The bandit's posteriors on disk (LOG_DIR/bandit_states.json), saved with the circuit states (issue 18 §3).

The same way as ``circuit_states.json`` (``core/circuits/store.py``): one JSON file written atomically (temp
file, ``os.replace``, 0600) in a thread, batched by a ``DebouncedSaver``, flushed at shutdown, read once at
start-up. With REDIS_URL the fleet's posteriors live in Redis instead (``core/shared/bandit.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bkvy.utils.atomic_files import write_text_atomic

log = logging.getLogger(__name__)


class BanditStore:
    """One JSON file holding ``BanditBook.to_dict()``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically in a thread; raises OSError when the disk refuses (the saver logs it)."""
        await asyncio.to_thread(write_text_atomic, self._path, json.dumps(state, separators=(",", ":")))

    def load(self) -> object | None:
        """The saved JSON value, or None when missing, unreadable or corrupt (blocking: start-up only)."""
        try:
            return json.loads(self._path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            log.warning("bandit_state_unreadable", extra={"path": str(self._path)})
            return None
