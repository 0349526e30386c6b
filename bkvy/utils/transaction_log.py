r"""The transaction log (SPEC §7): one CSV row per request, written off the request path.

``record`` renders the row to CSV text (~5 µs, on the event loop, after the reply was sent) and appends
it to an in-memory queue. A writer task flushes the queue every ``flush_interval_seconds`` (sooner once
``batch_size`` rows wait) in a thread, so a request never waits on disk; ``stop`` flushes everything still
queued, so a clean shutdown loses no row. The thread only joins and writes text: rendering a whole batch
there would hold the GIL for milliseconds and stall the event loop that long.

Files in ``log_dir``::

    transactions.csv                  the current file, rows of the current UTC day
    transactions-YYYY-MM-DD.N.csv     pieces of that day cut when the current file would exceed max_bytes
    transactions-YYYY-MM-DD.csv       the last piece of that day, cut at the UTC day change

With shared state (REDIS_URL) each process writes its own files under its own stem, e.g. ``transactions.w0.csv``
and ``transactions.w0-YYYY-MM-DD.csv`` (``utils.process_slot``): two processes never append to, rotate or
delete each other's files.

Rotated files older than ``retention_days`` are deleted at start and on every rotation. A current file whose
header is not ``COLUMNS`` (written by an older bkvy, before a column was added) is set aside whole as a
``.N`` piece of its first row's day before the first write, so a row is never appended under a header that
names other columns; readers take each file's own header, so old files stay readable.

CSV injection: a cell a spreadsheet would read as a formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR)
gets a leading ``'``, except a plain negative decimal (``-1.5``, ``-2e-05``): that is read as a number,
and our numeric columns need it. ``+1`` is escaped: we never write a leading ``+``, so it came from request
text. ``'=x`` gets one more quote too, so ``restore_cell`` undoes the escaping exactly.

Terminal and line forgery (issue 16): control characters (C0, DEL, C1), the Unicode line and paragraph
separators and the bidirectional controls are written as visible escapes (``\x1b``, ``\n``, ``\r``, ``\t``,
``\u2028``), and ``\`` as ``\\``, in every cell, before the formula check: ``cat`` or ``tail`` of the file
cannot run a terminal escape or show a forged line. ``restore_cell`` reads them back.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from bkvy.clock import Clock
from bkvy.utils.private_files import ensure_private_dir, open_private
from bkvy.utils.records import COLUMN_TYPES, COLUMNS, TransactionRecord, parse_timestamp, utc_day

log = logging.getLogger(__name__)

DEFAULT_STEM = "transactions"  # one process: transactions.csv; one per process: "transactions.w0" (issue 17)
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_A_LOOK = frozenset("=+-@\t\r'")  # first characters that may need escaping
_NEGATIVE_NUMBER = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ESCAPED_CELL = re.compile(r"^'+[=+\-@\t\r]")
# C0, DEL, C1 (0x9b is a CSI on some terminals), U+2028/2029, the bidi marks, embeddings, overrides, isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\\\\\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|[\\nrt])")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_SHORT_UNESCAPES = {escaped[1]: char for char, escaped in _SHORT_ESCAPES.items()}
_DAY_END_PIECE = 1_000_000_000  # sorts the unnumbered day file after its .N pieces
_SECONDS_PER_DAY = 86_400.0


def _escaped(found: re.Match[str]) -> str:
    char = found[0]
    return _SHORT_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _unescaped(found: re.Match[str]) -> str:
    text = found[0]
    return _SHORT_UNESCAPES[text[1]] if len(text) == 2 else chr(int(text[2:], 16))


def neutralise_cell(cell: str) -> str:
    """Control characters and ``\\`` as visible escapes; then ``'`` before a cell a spreadsheet would evaluate
    (plain negative numbers stay as they are)."""
    if _CONTROL.search(cell):
        cell = _CONTROL.sub(_escaped, cell)
    if not cell or cell[0] not in _NEEDS_A_LOOK:  # nearly every cell: nothing to escape
        return cell
    if _NEGATIVE_NUMBER.match(cell):
        return cell
    if cell.lstrip("'").startswith(_FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def restore_cell(cell: str) -> str:
    """Undo ``neutralise_cell``."""
    if _ESCAPED_CELL.match(cell):
        cell = cell[1:]
    return _ESCAPE.sub(_unescaped, cell) if "\\" in cell else cell


class TransactionLog:
    def __init__(
        self,
        log_dir: Path,
        clock: Clock,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        retention_days: int = 30,
        batch_size: int = 256,
        flush_interval_seconds: float = 1.0,
        max_queued_rows: int = 100_000,
        stem: str = DEFAULT_STEM,
    ) -> None:
        self._log_dir = Path(log_dir)
        self._stem = stem  # files: <stem>.csv, <stem>-YYYY-MM-DD[.N].csv; another stem's files are not ours
        self._rotated_name = re.compile(rf"^{re.escape(stem)}-(\d{{4}}-\d{{2}}-\d{{2}})(?:\.(\d+))?\.csv$")
        self._clock = clock
        self._max_bytes = max_bytes
        self._retention_days = retention_days
        self._batch_size = max(1, batch_size)
        self._flush_interval_seconds = flush_interval_seconds
        self._max_queued_rows = max_queued_rows
        self._queue: deque[str] = deque()  # rendered CSV lines
        self._render = RowRenderer()
        self._wakeup = asyncio.Event()
        self._flush_lock = asyncio.Lock()  # keeps batches in queue order
        self._file_lock = threading.Lock()  # one writer thread at a time, even if a flush is cancelled
        self._writer: asyncio.Task[None] | None = None
        self._is_running = False
        self._current_day: str | None = None  # UTC day of the rows in the current file; thread-owned
        self.written_count = 0
        self.dropped_count = 0

    @property
    def current_path(self) -> Path:
        return self._log_dir / f"{self._stem}.csv"

    @property
    def queued_count(self) -> int:
        return len(self._queue)

    # --- writing -------------------------------------------------------------------------------------

    def record(self, rec: TransactionRecord) -> None:
        """Queue one row. O(1); never blocks, never raises; drops (and counts) past ``max_queued_rows``.

        After ``stop`` rows still queue, and are written by the next ``flush``."""
        if len(self._queue) >= self._max_queued_rows:
            self.dropped_count += 1
            if self.dropped_count % 1000 == 1:
                log.warning("transaction_log_queue_full", extra={"dropped_count": self.dropped_count})
            return
        self._queue.append(self._render(rec))
        if len(self._queue) >= self._batch_size:
            self._wakeup.set()

    async def start(self) -> None:
        if self._writer is not None:
            return
        today = utc_day(self._clock.wall())
        await asyncio.to_thread(self._prepare_dir, today)
        self._is_running = True
        self._writer = asyncio.create_task(self._write_loop(), name="transaction-log-writer")

    async def stop(self) -> None:
        """Stop the writer and write every row queued so far."""
        self._is_running = False
        self._wakeup.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self._flush(is_final=True)

    async def flush(self) -> None:
        """Write every row queued now, in ``batch_size`` batches, in a thread. Rows a failed write could not
        take (no descriptor left: EMFILE; a full disk) go back to the queue's front for the next flush."""
        await self._flush(is_final=False)

    async def _flush(self, *, is_final: bool) -> bool:
        """False when a write failed; the final flush (``stop``) drops and counts what it could not write."""
        async with self._flush_lock:
            if not self._queue:
                return True
            lines = list(self._queue)
            self._queue.clear()
            today = utc_day(self._clock.wall())
            written_before = self.written_count
            try:
                await asyncio.to_thread(self._write_lines, lines, today)
            except (OSError, csv.Error) as exc:
                unwritten = lines[self.written_count - written_before :]
                if is_final:
                    self.dropped_count += len(unwritten)
                else:  # issue 16: rows were dropped while the process ran short of descriptors
                    self._queue.extendleft(reversed(unwritten))
                log.warning(
                    "transaction_log_write_failed",
                    extra={"rows": len(unwritten), "error": type(exc).__name__, "is_kept": not is_final},
                )
                return False
            return True

    async def _write_loop(self) -> None:
        while self._is_running:
            await self._wait_for_work()
            if not await self._flush(is_final=False):
                await self._wait_for_work(is_retry=True)  # retry after the interval, not in a tight loop

    async def _wait_for_work(self, *, is_retry: bool = False) -> None:
        if (len(self._queue) >= self._batch_size and not is_retry) or not self._is_running:
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(self._flush_interval_seconds))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        self._wakeup.clear()

    # --- file work: runs in a thread -------------------------------------------------------------------

    def _prepare_dir(self, today: str) -> None:
        ensure_private_dir(self._log_dir)
        self._apply_retention(today)

    def _write_lines(self, lines: list[str], today: str) -> None:
        with self._file_lock:
            ensure_private_dir(self._log_dir)
            self._rotate_if_new_day(today)
            for start in range(0, len(lines), self._batch_size):
                batch = lines[start : start + self._batch_size]
                self._write_batch("".join(batch), today)
                self.written_count += len(batch)

    def _write_batch(self, text: str, today: str) -> None:
        # A batch goes whole into one file with one write, so no row is ever split across files or torn.
        path = self.current_path
        size_bytes = path.stat().st_size if path.exists() else 0
        if size_bytes > 0 and size_bytes + len(text.encode("utf-8")) > self._max_bytes:
            self._rotate(today, is_size_cut=True)
            size_bytes = 0
        with open(path, "a", newline="", encoding="utf-8", opener=open_private) as handle:  # 0600
            handle.write(text if size_bytes > 0 else _render_header() + text)
            handle.flush()

    def _rotate_if_new_day(self, today: str) -> None:
        if self._current_day is None:
            has_our_header, first_day = _inspect(self.current_path)
            self._current_day = first_day or today
            if not has_our_header:  # a file from another schema: set it aside whole
                self._rotate(self._current_day, is_size_cut=True)
        if self._current_day != today:
            self._rotate(self._current_day, is_size_cut=False)
            self._current_day = today
            self._apply_retention(today)

    def _rotate(self, day: str, *, is_size_cut: bool) -> None:
        if not self.current_path.exists():
            return
        target = self._log_dir / f"{self._stem}-{day}.csv"
        if is_size_cut or target.exists():
            target = self._next_piece_path(day)
        os.replace(self.current_path, target)
        log.info("transaction_log_rotated", extra={"file": target.name})

    def _next_piece_path(self, day: str) -> Path:
        piece = 1
        while (self._log_dir / f"{self._stem}-{day}.{piece}.csv").exists():
            piece += 1
        return self._log_dir / f"{self._stem}-{day}.{piece}.csv"

    def _apply_retention(self, today: str) -> None:
        cutoff = (date.fromisoformat(today) - timedelta(days=self._retention_days)).isoformat()
        for day, _, path in self._rotated_files():
            if day >= cutoff:
                break
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("transaction_log_retention_failed", extra={"file": path.name, "error": str(exc)})

    def _rotated_files(self) -> list[tuple[str, int, Path]]:
        """Rotated files, oldest first: by day, then piece number, the day-end file last."""
        if not self._log_dir.is_dir():
            return []
        found = []
        for path in self._log_dir.iterdir():
            match = self._rotated_name.match(path.name)
            if match:
                piece = int(match.group(2)) if match.group(2) else _DAY_END_PIECE
                found.append((match.group(1), piece, path))
        return sorted(found)

    # --- reading: blocking, callers run these with asyncio.to_thread ------------------------------------

    def read_recent(self, limit: int) -> list[dict[str, str]]:
        """The last ``limit`` written rows, newest first. Blocking: call via ``asyncio.to_thread``.

        Rows still queued in memory are not included.
        """
        rows: list[dict[str, str]] = []
        newest_first = [self.current_path] + [path for _, _, path in reversed(self._rotated_files())]
        for path in newest_first:
            wanted = limit - len(rows)
            if wanted <= 0:
                break
            rows.extend(reversed(deque(_read_rows(path), maxlen=wanted)))
        return rows

    def iter_rows(self, since_wall: float | None = None) -> Iterator[dict[str, str]]:
        """Written rows, oldest first, whose timestamp is at or after ``since_wall`` (unix seconds).

        Blocking generator: consume it inside a thread, e.g.
        ``await asyncio.to_thread(lambda: list(log.iter_rows(since)))``.
        """
        # A row stamped just before midnight may land in the next day's file, hence one day of slack.
        first_day = utc_day(since_wall - _SECONDS_PER_DAY) if since_wall is not None else ""
        paths = [path for day, _, path in self._rotated_files() if day >= first_day]
        for path in paths + [self.current_path]:
            for row in _read_rows(path):
                if since_wall is None:
                    yield row
                    continue
                stamp = parse_timestamp(row.get("timestamp", ""))
                if stamp is not None and stamp >= since_wall:
                    yield row


def _render_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(COLUMNS)
    return buffer.getvalue()


_TEXT_COLUMNS = tuple(i for i, kind in enumerate(COLUMN_TYPES.values()) if kind == "str")
_FLOAT_COLUMNS = tuple(i for i, kind in enumerate(COLUMN_TYPES.values()) if kind.startswith("float"))
_BOOL_COLUMNS = tuple(i for i, kind in enumerate(COLUMN_TYPES.values()) if kind == "bool")


class RowRenderer:
    """A record -> one CSV line, text cells neutralised against formulas. Numbers are formatted by the csv
    module (floats by ``repr``, None as an empty cell); a non-finite float is not data and stays empty.
    Numbers are ours, never request text, so only text cells are looked at. Not thread-safe (one buffer)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def __call__(self, rec: TransactionRecord) -> str:
        cells: list[object] = list(rec)
        for index in _TEXT_COLUMNS:
            cell = cells[index]
            if cell and cell[0] in _NEEDS_A_LOOK:  # type: ignore[index]
                cells[index] = neutralise_cell(cell)  # type: ignore[arg-type]
        for index in _FLOAT_COLUMNS:
            value = cells[index]
            if value is not None and not math.isfinite(value):  # type: ignore[arg-type]
                cells[index] = None
        for index in _BOOL_COLUMNS:
            cells[index] = "true" if cells[index] else "false"
        line = self._line(cells)
        text = line[:-2]  # without the line's own \r\n
        # isprintable is False for every character _CONTROL names (Cc, Cf, Zl, Zp) and runs in C: 0.1 µs per
        # row, where _CONTROL.search took 0.9 µs (benchmarks/scrubber_micro.py). Numbers hold none of them.
        if "\\" in text or not text.isprintable():
            for index in _TEXT_COLUMNS:
                cells[index] = neutralise_cell(rec[index])  # type: ignore[arg-type]
            line = self._line(cells)
        return line

    def _line(self, cells: list[object]) -> str:
        buffer = self._buffer
        self._writer.writerow(cells)
        line = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return line


def _inspect(path: Path) -> tuple[bool, str | None]:
    """(has our header, UTC day of the first row) of an existing log file; (True, None) if absent or empty."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            first_row = next(reader, None)
    except FileNotFoundError:
        return True, None
    except (OSError, csv.Error, UnicodeDecodeError):
        return False, None
    if header is None:
        return True, None
    stamp = parse_timestamp(first_row[0]) if first_row else None
    return tuple(header) == COLUMNS, utc_day(stamp) if stamp is not None else None


def _read_rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            for cells in reader:
                if len(cells) == len(header):  # skips a row the writer is still appending
                    yield {name: restore_cell(cell) for name, cell in zip(header, cells, strict=False)}
    except FileNotFoundError:  # rotated away between listing and opening
        return
    except csv.Error as exc:
        log.warning("transaction_log_unreadable", extra={"file": path.name, "error": str(exc)})
