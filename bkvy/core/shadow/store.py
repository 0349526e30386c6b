"""``LOG_DIR/shadow_stats.json``: the shadow book's numbers, written atomically in a thread (never any text)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bkvy.core.shadow.book import ShadowBook
from bkvy.utils.atomic_files import write_text_atomic

log = logging.getLogger(__name__)

SHADOW_STATS_FILE = "shadow_stats.json"


class ShadowStore:
    """One JSON file; ``save`` logs a refusing disk (the next save tries again), ``load`` never raises."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def save(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, separators=(",", ":"))
        try:
            await asyncio.to_thread(write_text_atomic, self._path, text)
        except OSError as error:
            log.warning("shadow_stats_save_failed", extra={"errno": error.errno})

    def load(self) -> ShadowBook:
        """The saved book, or an empty one when missing, unreadable or corrupt (blocking: start-up only)."""
        try:
            return ShadowBook.from_dict(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return ShadowBook()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            log.warning("shadow_stats_unreadable", extra={"path": str(self._path)})
            return ShadowBook()
