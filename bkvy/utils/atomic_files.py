"""Whole-file writes that a crash never leaves half done: a temp file in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from bkvy.utils.private_files import ensure_private_dir


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (blocking: call it through ``asyncio.to_thread``). The file is
    0600 (``mkstemp``'s mode), its folder 0700."""
    ensure_private_dir(path.parent)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)  # only still there when the write or the replace failed
