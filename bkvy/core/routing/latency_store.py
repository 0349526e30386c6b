"""Learned latency on disk, so a restart keeps each model's p95 (issue 13) instead of relearning it.

One JSON file holding ``LatencyTracker.to_dict()``, written atomically in a thread like the circuit states
(``bkvy/core/circuits/store.py``, whose ``DebouncedSaver`` batches the writes). ``LatencyTracker.load_dict``
checks every field, so a file of another version or shape loads nothing rather than failing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bkvy.utils.json_file import JsonFile

log = logging.getLogger(__name__)


class LatencyStore:
    """One JSON file; ``save`` never raises on a refusing disk (it logs), ``load`` never raises."""

    def __init__(self, path: Path) -> None:
        self._file = JsonFile(path, "latency")

    async def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically in a thread; a disk error is logged and the next save tries again."""
        try:
            await self._file.write(state)
        except OSError as error:
            log.warning("latency_save_failed", extra={"errno": error.errno})

    def load(self) -> object | None:
        """The saved JSON value, or None when missing, unreadable or corrupt (blocking: start-up only)."""
        return self._file.read()
