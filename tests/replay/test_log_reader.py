"""Reading transaction logs for replay: old headers, foreign files, date windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bkvy.replay.log_reader import ReplayInputError, parse_bound, read_logs
from bkvy.utils.records import COLUMNS, TransactionRecord
from bkvy.utils.transaction_log import RowRenderer


def write_log(path: Path, records: list[TransactionRecord], columns: tuple[str, ...] = COLUMNS) -> Path:
    """A log file as the transaction log writes it (its row renderer), cut to ``columns``."""
    render = RowRenderer()
    lines = [",".join(columns)]
    for record in records:
        cells = render(record).rstrip("\r\n").split(",")
        lines.append(",".join(cells[: len(columns)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record(stamp: str, request_id: str = "r1") -> TransactionRecord:
    return TransactionRecord(stamp, request_id, success=True, provider_used="openai", model_used="gpt-4o")


def test_a_file_from_before_newer_columns_reads_with_their_defaults(tmp_path: Path) -> None:
    old_columns = COLUMNS[: COLUMNS.index("hedged")]
    path = write_log(tmp_path / "old.csv", [record("2026-11-30T10:00:00.000Z")], old_columns)
    (read,) = read_logs([path])
    assert (read.request_id, read.success, read.model_used) == ("r1", True, "gpt-4o")
    assert read.alternatives_outcomes == "" and read.hedged is False


def test_records_of_several_files_come_back_oldest_first_within_the_window(tmp_path: Path) -> None:
    first = write_log(tmp_path / "a.csv", [record("2026-11-30T10:00:00.000Z", "late")])
    second = write_log(
        tmp_path / "b.csv", [record("2026-11-29T23:59:59.000Z", "early"), record("2026-12-01T00:00:00.000Z", "next")]
    )
    assert [r.request_id for r in read_logs([first, second])] == ["early", "late", "next"]
    window = read_logs(
        [first, second], since=parse_bound("2026-11-30", is_end=False), until=parse_bound("2026-11-30", is_end=True)
    )
    assert [r.request_id for r in window] == ["late"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name,age\nx,1\n", "not a transaction log (no timestamp, request_id, success column)"),
        ("", "not a transaction log"),
        (",".join(COLUMNS) + "\n2026-11-30T10:00:00Z,r1\n", "bad.csv:2: 2 cells under a header of"),
        ("timestamp,request_id,success\nyesterday,r1,true\n", "bad.csv:2: a cell does not read as its column's type"),
    ],
)
def test_a_foreign_or_torn_file_is_refused_naming_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReplayInputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_logs([path])


def test_a_binary_or_missing_file_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "log.gz"
    binary.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    with pytest.raises(ReplayInputError, match="not UTF-8"):
        read_logs([binary])
    with pytest.raises(ReplayInputError, match="cannot read"):
        read_logs([tmp_path / "missing.csv"])


def test_bounds_take_dates_and_times() -> None:
    assert parse_bound("2026-11-30", is_end=True) - parse_bound("2026-11-30", is_end=False) == 86400.0
    assert parse_bound("2026-11-30T12:00:00Z", is_end=True) == parse_bound("2026-11-30", is_end=False) + 43200.0
    with pytest.raises(ReplayInputError, match="not a date"):
        parse_bound("last week", is_end=False)
