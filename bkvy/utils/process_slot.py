"""Which files of a shared LOG_DIR belong to this process (issue 17: workers and replicas).

With REDIS_URL several processes may share one LOG_DIR (``--workers N``). Each takes the lowest free slot
``w0``, ``w1``... by holding an exclusive ``flock`` on ``LOG_DIR/slots/w<N>.lock`` for its whole life (the
kernel drops it when the process dies, so a restarted worker takes its slot, and its files, again). The slot
names the process's own files (``transactions.w0.csv``, ``daily_stats.w0.json``) and keeps a random
``stats_id`` in ``w<N>.id``: the name under which the process publishes its statistics to Redis. That id lives
as long as the files whose totals it publishes, so a restart republishes the same totals under the same id
(never counted twice) and a fresh LOG_DIR starts a fresh id.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bkvy.utils.private_files import ensure_private_dir, open_private

__all__ = ["ProcessSlot", "release_slot", "take_slot"]

SLOTS_DIR = "slots"
_MAX_SLOTS = 1024


@dataclass(frozen=True, slots=True)
class ProcessSlot:
    name: str  # "w0": part of this process's file names
    stats_id: str  # random hex, stable while LOG_DIR is: this process's statistics in Redis
    lock_fd: int  # held open (and locked) until the process ends


def take_slot(log_dir: Path) -> ProcessSlot:
    """The lowest slot no other live process holds. Blocking file work: call at start-up (or in a thread).
    Raises OSError when LOG_DIR is not writable or every slot is taken."""
    slots_dir = Path(log_dir) / SLOTS_DIR
    ensure_private_dir(Path(log_dir))
    ensure_private_dir(slots_dir)
    for number in range(_MAX_SLOTS):
        name = f"w{number}"
        fd = os.open(slots_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return ProcessSlot(name, _stats_id(slots_dir / f"{name}.id"), fd)
    raise OSError(f"every one of {_MAX_SLOTS} process slots in {slots_dir} is taken")


def release_slot(slot: ProcessSlot) -> None:
    """Give the slot back (a stopped app in a process that lives on, as in tests)."""
    try:
        os.close(slot.lock_fd)
    except OSError:
        pass


def _stats_id(path: Path) -> str:
    try:
        existing = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        existing = ""
    if existing and existing.isalnum() and len(existing) <= 64:
        return existing
    fresh = secrets.token_hex(8)
    with open(path, "w", encoding="ascii", opener=open_private) as handle:
        handle.write(fresh)
    return fresh
