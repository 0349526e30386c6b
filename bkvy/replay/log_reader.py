"""Transaction log files (``utils.records``) back to records, for replay: each file read by its own header.

A file written before a column existed reads with that column at its default. A file that is not a
transaction log (no ``timestamp`` or ``success`` column, a torn row, a cell of the wrong type, not UTF-8)
is an error naming the file and the line: replay refuses rather than forecast from half a log.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bkvy.utils.recorder import record_from_row
from bkvy.utils.records import TransactionRecord, parse_timestamp

_REQUIRED_COLUMNS = ("timestamp", "request_id", "success")


class ReplayInputError(Exception):
    """A log file or an argument replay cannot use; the message names it and what to do."""


def parse_bound(text: str, *, is_end: bool) -> float:
    """``2026-11-30`` or an ISO 8601 time -> unix seconds. A bare date as ``--to`` means the end of that day.
    Raises ReplayInputError."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        moment = parse_timestamp(text)
        if moment is None:
            raise ReplayInputError(f"{text!r}: not a date (YYYY-MM-DD) or an ISO 8601 time") from None
        return moment
    return day.timestamp() + (86400.0 if is_end else 0.0)


def read_logs(
    paths: Iterable[Path], *, since: float | None = None, until: float | None = None
) -> list[TransactionRecord]:
    """Every record of ``paths`` with ``since <= timestamp < until``, oldest first. Raises ReplayInputError."""
    records: list[tuple[float, TransactionRecord]] = []
    for path in paths:
        for moment, record in _read_file(path):
            if (since is None or moment >= since) and (until is None or moment < until):
                records.append((moment, record))
    records.sort(key=lambda pair: pair[0])
    return [record for _, record in records]


def _read_file(path: Path) -> list[tuple[float, TransactionRecord]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return _read_rows(path, csv.reader(handle))
    except OSError as error:
        raise ReplayInputError(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ReplayInputError(f"{path}: not a transaction log (not UTF-8 text)") from None
    except csv.Error as error:
        raise ReplayInputError(f"{path}: not a transaction log (CSV: {error})") from None


def _read_rows(path: Path, reader: Iterable[list[str]]) -> list[tuple[float, TransactionRecord]]:
    rows = iter(reader)
    header = next(rows, None)
    missing = [name for name in _REQUIRED_COLUMNS if header is None or name not in header]
    if header is None or missing:
        raise ReplayInputError(
            f"{path}: not a transaction log (no {', '.join(missing)} column); pass LOG_DIR/transactions*.csv"
        )
    found: list[tuple[float, TransactionRecord]] = []
    for line, cells in enumerate(rows, start=2):
        if len(cells) != len(header):
            raise ReplayInputError(f"{path}:{line}: {len(cells)} cells under a header of {len(header)}")
        record = record_from_row(dict(zip(header, cells, strict=True)))
        moment = parse_timestamp(record.timestamp) if record is not None else None
        if record is None or moment is None:
            raise ReplayInputError(f"{path}:{line}: a cell does not read as its column's type")
        found.append((moment, record))
    return found
