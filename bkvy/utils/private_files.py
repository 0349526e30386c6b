"""State files only bkvy's own user may read: files 0600, directories 0700, whatever the umask (issue 16).

Everything bkvy keeps under LOG_DIR (transaction CSVs, daily statistics, circuit and latency state, the
client-key database) names clients, keys and spend. A file is created with its mode (no window at the umask's
mode) and a looser one left by an older version is tightened when bkvy opens it. A directory bkvy creates is
0700; an existing one is tightened only when this user owns it and it is not a shared sticky one (``/tmp``).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents 0700; tighten ``path`` if this user owns it. Blocking."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another writer: tightened below if it is ``path``
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode went through the umask
    _tighten_dir(Path(path))


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` with mode 0600 when it creates; an existing file of ours with a looser mode is tightened.
    An ``opener`` for ``open()``: ``open(path, "a", opener=open_private)``."""
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        _tighten_file(descriptor, path)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def make_private_file(path: Path) -> None:
    """Create ``path`` empty (0600) if it is missing, else tighten it: before a library (SQLite) opens it."""
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))


def _tighten_file(descriptor: int, path: str | os.PathLike[str]) -> None:
    info = os.fstat(descriptor)
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        log.info("state_file_mode_tightened", extra={"file": str(path), "mode": "0600"})


def _tighten_dir(path: Path) -> None:
    info = path.stat()
    is_shared = bool(info.st_mode & stat.S_ISVTX)
    if info.st_mode & 0o077 and info.st_uid == os.geteuid() and not is_shared:
        os.chmod(path, PRIVATE_DIR_MODE)
        log.info("state_dir_mode_tightened", extra={"dir": str(path), "mode": "0700"})


def tighten_if_present(path: Path) -> None:
    """Tighten ``path`` to 0600 if it exists (a companion file another program created, e.g. SQLite's)."""
    try:
        os.close(open_private(path, os.O_RDONLY))
    except FileNotFoundError:
        pass
