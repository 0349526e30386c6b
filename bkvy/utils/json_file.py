"""One JSON value in one file: written atomically (temp file + rename) in a thread, read once at start-up.

What the learned latency (``core/routing/latency_store.py``), the bandit's posteriors
(``core/routing/bandit_store.py``) and the shadow book (``core/shadow/store.py``) keep on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bkvy.utils.atomic_files import write_text_atomic

log = logging.getLogger(__name__)


class JsonFile:
    """``label`` names it in the log (``<label>_unreadable``)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self._label = label

    async def write(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically in a thread. Raises OSError when the disk refuses."""
        await asyncio.to_thread(write_text_atomic, self.path, json.dumps(state, separators=(",", ":")))

    def read(self) -> object | None:
        """The saved JSON value, or None when missing, unreadable or corrupt (blocking: start-up only)."""
        try:
            saved: object = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            log.warning(f"{self._label}_unreadable", extra={"path": str(self.path)})
            return None
        return saved
