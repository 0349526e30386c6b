"""``LOG_DIR/shadow_stats.json``: the shadow book's numbers, written atomically in a thread (never any text)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bkvy.core.shadow.book import ShadowBook
from bkvy.utils.json_file import JsonFile

log = logging.getLogger(__name__)

SHADOW_STATS_FILE = "shadow_stats.json"


class ShadowStore:
    """One JSON file; ``save`` logs a refusing disk (the next save tries again), ``load`` never raises."""

    def __init__(self, path: Path) -> None:
        self._file = JsonFile(path, "shadow_stats")

    async def save(self, state: dict[str, Any]) -> None:
        try:
            await self._file.write(state)
        except OSError as error:
            log.warning("shadow_stats_save_failed", extra={"errno": error.errno})

    def load(self) -> ShadowBook:
        """The saved book, or an empty one when missing, unreadable or corrupt (blocking: start-up only)."""
        saved = self._file.read()
        return ShadowBook() if saved is None else ShadowBook.from_dict(saved)
