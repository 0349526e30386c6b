import asyncio
import csv
import os
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest

from bkvy.clock import FakeClock
from bkvy.utils.records import COLUMNS, TransactionRecord, utc_timestamp
from bkvy.utils.transaction_log import RowRenderer, TransactionLog, neutralise_cell, restore_cell
from tests.utils.csv_rows import to_row

NOV_14_NOON = datetime(2023, 11, 14, 12, 0, tzinfo=UTC).timestamp()


class WallClock(FakeClock):
    """A FakeClock whose wall time is set directly, independent of the monotonic time."""

    def __init__(self, wall_seconds: float) -> None:
        super().__init__()
        self.wall_seconds = wall_seconds

    def wall(self) -> float:
        return self.wall_seconds


def make_record(index: int, wall_seconds: float = NOV_14_NOON, **overrides: object) -> TransactionRecord:
    values: dict[str, object] = {
        "timestamp": utc_timestamp(wall_seconds),
        "request_id": f"req-{index}",
        "client_id": "team-a",
        "routing_method": "intelligence",
        "intelligence_level": "low",
        "success": True,
        "provider_used": "openai",
        "model_used": "gpt-4o-mini",
        "api_key_used": "k1",
        "total_time_ms": 123.5,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_estimate": 1.5e-05,
        "fallback_attempts": 0,
    }
    values.update(overrides)
    return TransactionRecord(**values)  # type: ignore[arg-type]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# The header every bkvy wrote before issue 13 added ``hedged``: files with it are still on disk.
PRE_HEDGING_COLUMNS = (
    "timestamp",
    "request_id",
    "client_id",
    "routing_method",
    "intelligence_level",
    "scenario",
    "requested_provider",
    "requested_model",
    "max_wait_seconds",
    "success",
    "provider_used",
    "model_used",
    "api_key_used",
    "total_time_ms",
    "queue_wait_ms",
    "rate_limit_wait_ms",
    "input_tokens",
    "output_tokens",
    "cost_estimate",
    "finish_reason",
    "decision_reason",
    "error_type",
    "error_message",
    "fallback_attempts",
    "alternatives_tried",
)


def test_columns_follow_record_field_order() -> None:
    assert COLUMNS[:3] == ("timestamp", "request_id", "client_id")
    row = to_row(make_record(1))
    assert len(row) == len(COLUMNS)
    assert row[COLUMNS.index("success")] == "true"
    assert row[COLUMNS.index("requested_model")] == ""
    assert row[COLUMNS.index("max_wait_seconds")] == ""
    assert row[COLUMNS.index("hedged")] == "false"


def test_columns_are_only_ever_appended() -> None:
    assert COLUMNS[: len(PRE_HEDGING_COLUMNS)] == PRE_HEDGING_COLUMNS
    assert COLUMNS[len(PRE_HEDGING_COLUMNS) :] == (
        "hedged",  # issue 13
        "domain",  # issue 18, ``auto``
        "classification_confidence",
        "classification_features",
        "tenant",  # issue 19, the client key's tenant
        "policy_action",  # issue 19
        "policy_rule",
        "pii_kinds",
        "cache_hit",  # issue 20, the response cache
        "cache_saved_usd",
        "alternatives_outcomes",  # issue 20 §3, replay's error episodes
    )


def _write_pre_hedging_file(path: Path, request_ids: list[str]) -> bytes:
    lines = [",".join(PRE_HEDGING_COLUMNS)]
    for request_id in request_ids:
        cells = dict(zip(COLUMNS, to_row(make_record(0, fallback_attempts=1)), strict=True))
        cells["request_id"] = request_id
        lines.append(",".join(cells[name] for name in PRE_HEDGING_COLUMNS))
    text = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    path.write_bytes(text)
    return text


@pytest.mark.asyncio
async def test_a_file_with_the_old_header_is_set_aside_never_appended_to(tmp_path: Path) -> None:
    old_text = _write_pre_hedging_file(tmp_path / "transactions.csv", ["old-1", "old-2"])
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON + 60))
    log.record(make_record(1, NOV_14_NOON + 60, hedged=True))
    await log.stop()

    assert (tmp_path / "transactions-2023-11-14.1.csv").read_bytes() == old_text  # untouched
    current = read_csv(tmp_path / "transactions.csv")
    assert current[0] == list(COLUMNS) and [row[1] for row in current[1:]] == ["req-1"]
    assert current[1][COLUMNS.index("hedged")] == "true"
    recent = await asyncio.to_thread(log.read_recent, 10)
    assert [row["request_id"] for row in recent] == ["req-1", "old-2", "old-1"]
    assert "hedged" not in recent[1] and recent[1]["fallback_attempts"] == "1"  # by name, never shifted
    everything = await asyncio.to_thread(lambda: list(log.iter_rows(NOV_14_NOON - 1)))
    assert [row["request_id"] for row in everything] == ["old-1", "old-2", "req-1"]


@pytest.mark.asyncio
async def test_a_file_with_our_header_is_appended_to_after_a_restart(tmp_path: Path) -> None:
    first = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    first.record(make_record(1))
    await first.stop()
    second = TransactionLog(tmp_path, WallClock(NOV_14_NOON + 60))
    second.record(make_record(2, NOV_14_NOON + 60))
    await second.stop()

    assert [row[1] for row in read_csv(tmp_path / "transactions.csv")] == ["request_id", "req-1", "req-2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["transactions.csv"]


@pytest.mark.asyncio
async def test_n_records_give_n_rows_under_the_header(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    await log.start()
    for index in range(7):
        log.record(make_record(index))
    await log.stop()

    rows = read_csv(tmp_path / "transactions.csv")
    assert rows[0] == list(COLUMNS)
    assert [row[COLUMNS.index("request_id")] for row in rows[1:]] == [f"req-{i}" for i in range(7)]
    assert rows[1] == to_row(make_record(0))


@pytest.mark.asyncio
async def test_stop_flushes_every_queued_row(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON), batch_size=64)
    await log.start()
    for index in range(5000):
        log.record(make_record(index, error_message=f'line one\nline, two "{index}"'))
    await log.stop()

    rows = read_csv(tmp_path / "transactions.csv")
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 5001
    assert all(len(row) == len(COLUMNS) for row in rows)
    assert {row[1] for row in rows[1:]} == {f"req-{i}" for i in range(5000)}
    assert log.written_count == 5000 and log.dropped_count == 0


async def let_tasks_run(ticks: int = 20) -> None:
    for _ in range(ticks):  # event-loop turns, no wall-clock time
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_writer_flushes_after_the_interval(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock, flush_interval_seconds=1.0)
    await log.start()
    log.record(make_record(1))
    await let_tasks_run()
    assert log.queued_count == 1
    clock.advance(1.0)
    await let_tasks_run()
    assert log.queued_count == 0  # taken by the writer, not by us
    await log.flush()  # waits for the writer's write to finish
    assert len(read_csv(tmp_path / "transactions.csv")) == 2
    await log.stop()


@pytest.mark.asyncio
async def test_writer_flushes_early_when_a_batch_is_full(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON), batch_size=10, flush_interval_seconds=60.0)
    await log.start()
    for index in range(10):
        log.record(make_record(index))
    await let_tasks_run()
    assert log.queued_count == 0
    await log.stop()
    assert len(read_csv(tmp_path / "transactions.csv")) == 11


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("@x", "'@x"),
        ("-cmd", "'-cmd"),
        ("\tx", "\\tx"),  # a control character is escaped first: no leading tab is left to quote
        ("\rx", "\\rx"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\r\nforged,row", "a\\r\\nforged,row"),
        ("nul\x00 del\x7f csi\x9b", "nul\\x00 del\\x7f csi\\x9b"),
        ("line\u2028sep\u2029 rtl\u202e", "line\\u2028sep\\u2029 rtl\\u202e"),
        ("back\\slash \\n", "back\\\\slash \\\\n"),
        ("=\x1b", "'=\\x1b"),
        ("-1+2", "'-1+2"),
        ("-", "'-"),
        ("-inf", "'-inf"),
        ("'=x", "''=x"),
        ("-1.5", "-1.5"),
        ("-2", "-2"),
        ("-2e-05", "-2e-05"),
        ("1.5", "1.5"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised_and_numbers_kept(cell: str, written: str) -> None:
    assert neutralise_cell(cell) == written
    assert restore_cell(written) == cell


@pytest.mark.asyncio
async def test_written_file_neutralises_and_reads_back(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    log.record(make_record(1, error_message='=HYPERLINK("http://x")', cost_estimate=-1.5, client_id="@evil"))
    await log.stop()

    row = read_csv(tmp_path / "transactions.csv")[1]
    assert row[COLUMNS.index("error_message")] == '\'=HYPERLINK("http://x")'
    assert row[COLUMNS.index("cost_estimate")] == "-1.5"
    assert row[COLUMNS.index("client_id")] == "'@evil"
    (recent,) = log.read_recent(10)
    assert recent["error_message"] == '=HYPERLINK("http://x")'
    assert recent["client_id"] == "@evil"


HOSTILE_SCENARIO = "a\x1b]0;pwned\x07\x1b[2J\rforged\n2026-01-01,fake,row\x00\u2028\u2029\x9b\u202e\\x1b"


@pytest.mark.asyncio
async def test_control_characters_are_written_as_visible_escapes(tmp_path: Path) -> None:
    """Issue 16: ESC, CR/LF, NUL, C1, U+2028 and bidi overrides from request text never reach the file raw, so
    ``cat`` or ``tail`` cannot run a terminal escape or show a forged line; the rows read back as they were."""
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    log.record(make_record(1, scenario=HOSTILE_SCENARIO, client_id="\tid", error_message="=\r\n@x"))
    log.record(make_record(2))
    await log.stop()

    raw = (tmp_path / "transactions.csv").read_bytes().decode("utf-8")
    lines = raw.split("\r\n")
    assert len(lines) == 4 and lines[-1] == ""  # the header, two rows, nothing forged between them
    text = "".join(lines)
    assert [
        char for char in text if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or char in "\u2028\u2029\u202e"
    ] == []
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\rforged\\n2026" in text
    recent = log.read_recent(10)
    assert [row["scenario"] for row in recent] == [make_record(2).scenario, HOSTILE_SCENARIO]
    assert recent[1]["client_id"] == "\tid" and recent[1]["error_message"] == "=\r\n@x"


@pytest.mark.asyncio
async def test_rotates_by_size_without_losing_or_splitting_rows(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON), max_bytes=4000, batch_size=5)
    for index in range(100):
        log.record(make_record(index))
        if index % 10 == 9:
            await log.flush()
    await log.stop()

    pieces = sorted(tmp_path.glob("transactions-2023-11-14.*.csv"), key=lambda p: int(p.suffixes[0][1:]))
    assert len(pieces) >= 3
    assert not (tmp_path / "transactions-2023-11-14.csv").exists()
    request_ids = []
    for path in [*pieces, tmp_path / "transactions.csv"]:
        rows = read_csv(path)
        assert rows[0] == list(COLUMNS)
        assert all(len(row) == len(COLUMNS) for row in rows)
        assert os.path.getsize(path) <= 4000
        request_ids += [row[1] for row in rows[1:]]
    assert request_ids == [f"req-{i}" for i in range(100)]


@pytest.mark.asyncio
async def test_rotates_at_utc_day_change(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock)
    for index in range(3):
        log.record(make_record(index))
    await log.flush()
    clock.wall_seconds = datetime(2023, 11, 15, 0, 0, 1, tzinfo=UTC).timestamp()
    for index in range(3, 5):
        log.record(make_record(index, clock.wall_seconds))
    await log.stop()

    yesterday = read_csv(tmp_path / "transactions-2023-11-14.csv")
    today = read_csv(tmp_path / "transactions.csv")
    assert [row[1] for row in yesterday] == ["request_id", "req-0", "req-1", "req-2"]
    assert [row[1] for row in today] == ["request_id", "req-3", "req-4"]


@pytest.mark.asyncio
async def test_restart_on_a_later_day_rotates_the_old_current_file(tmp_path: Path) -> None:
    first = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    first.record(make_record(1))
    await first.stop()

    second = TransactionLog(tmp_path, WallClock(NOV_14_NOON + 86_400))
    second.record(make_record(2, NOV_14_NOON + 86_400))
    await second.stop()

    assert [row[1] for row in read_csv(tmp_path / "transactions-2023-11-14.csv")] == ["request_id", "req-1"]
    assert [row[1] for row in read_csv(tmp_path / "transactions.csv")] == ["request_id", "req-2"]


@pytest.mark.asyncio
async def test_retention_deletes_rotated_files_older_than_retention_days(tmp_path: Path) -> None:
    names = [
        "transactions-2023-10-01.csv",
        "transactions-2023-10-14.3.csv",
        "transactions-2023-10-15.csv",
        "transactions-2023-11-01.1.csv",
        "notes.csv",
    ]
    for name in names:
        (tmp_path / name).write_text("x\n")
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON), retention_days=30)
    await log.start()
    await log.stop()

    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == ["notes.csv", "transactions-2023-10-15.csv", "transactions-2023-11-01.1.csv"]


@pytest.mark.asyncio
async def test_retention_runs_on_day_rotation(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock, retention_days=1)
    log.record(make_record(1))
    await log.flush()
    clock.wall_seconds += 86_400
    log.record(make_record(2, clock.wall_seconds))
    await log.flush()
    assert (tmp_path / "transactions-2023-11-14.csv").exists()
    clock.wall_seconds += 86_400  # 2023-11-16: the cutoff is 2023-11-15
    log.record(make_record(3, clock.wall_seconds))
    await log.stop()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["transactions-2023-11-15.csv", "transactions.csv"]


@pytest.mark.asyncio
async def test_record_never_raises_even_after_stop(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON), max_queued_rows=2)
    await log.start()
    await log.stop()
    for index in range(5):
        log.record(make_record(index))
    assert log.queued_count == 2 and log.dropped_count == 3
    await log.flush()
    assert len(read_csv(tmp_path / "transactions.csv")) == 3


@pytest.mark.asyncio
async def test_write_failure_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = TransactionLog(blocker / "logs", WallClock(NOV_14_NOON))
    log.record(make_record(1))
    await log.stop()
    assert log.dropped_count == 1 and log.written_count == 0


@pytest.mark.asyncio
async def test_read_recent_is_newest_first_across_files(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock)
    for index in range(3):
        log.record(make_record(index))
    await log.flush()
    clock.wall_seconds += 86_400
    for index in range(3, 5):
        log.record(make_record(index, clock.wall_seconds))
    await log.stop()

    recent = await asyncio.to_thread(log.read_recent, 4)
    assert [row["request_id"] for row in recent] == ["req-4", "req-3", "req-2", "req-1"]
    assert recent[0]["success"] == "true"


@pytest.mark.asyncio
async def test_iter_rows_filters_by_wall_time_oldest_first(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock)
    for index in range(4):
        log.record(make_record(index, NOV_14_NOON + index * 60))
    await log.flush()
    clock.wall_seconds += 86_400
    log.record(make_record(4, clock.wall_seconds))
    await log.stop()

    everything = await asyncio.to_thread(lambda: list(log.iter_rows(None)))
    since = await asyncio.to_thread(lambda: list(log.iter_rows(NOV_14_NOON + 120)))
    assert [row["request_id"] for row in everything] == [f"req-{i}" for i in range(5)]
    assert [row["request_id"] for row in since] == ["req-2", "req-3", "req-4"]


def test_read_helpers_skip_a_partly_written_last_row(tmp_path: Path) -> None:
    log = TransactionLog(tmp_path, WallClock(NOV_14_NOON))
    full_row = ",".join(to_row(make_record(1)))
    (tmp_path / "transactions.csv").write_text(",".join(COLUMNS) + "\r\n" + full_row + "\r\n" + "2023-11-14T12")
    assert [row["request_id"] for row in log.read_recent(5)] == ["req-1"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"success": False, "error_type": "all_candidates_failed", "error_message": 'says "no", then, sadly\nstops'},
        {"client_id": '=HYPERLINK("x")', "scenario": "+1", "requested_model": "-x", "error_message": "@sum"},
        {"requested_provider": "'=already", "alternatives_tried": "\tx", "decision_reason": "\rcr"},
        {"cost_estimate": -0.0, "total_time_ms": float("nan"), "queue_wait_ms": float("inf"), "max_wait_seconds": -2.5},
        {"input_tokens": None, "output_tokens": -3, "cost_estimate": 1e-21, "rate_limit_wait_ms": 0.1 + 0.2},
    ],
)
def test_rendered_line_is_what_csv_writes_for_the_neutralised_row(overrides: dict) -> None:
    """RowRenderer's fast path (numbers to the csv module, only text cells looked at) writes exactly the
    line of the plain definition: every cell formatted, every cell neutralised, one csv row."""
    rec = make_record(7, **overrides)
    expected = StringIO()
    csv.writer(expected).writerow([neutralise_cell(cell) for cell in to_row(rec)])
    render = RowRenderer()
    assert render(rec) == expected.getvalue()
    assert render(make_record(8)) != expected.getvalue()  # the buffer is reused, not appended to


@pytest.mark.asyncio
async def test_rows_survive_running_out_of_file_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 16: under EMFILE the writer could not open the file and dropped the batch.
    def no_descriptor_left(*args: object, **kwargs: object) -> object:
        raise OSError(24, "Too many open files")

    clock = WallClock(NOV_14_NOON)
    log = TransactionLog(tmp_path, clock, batch_size=100, flush_interval_seconds=1.0)
    await log.start()
    monkeypatch.setattr("bkvy.utils.transaction_log.open", no_descriptor_left, raising=False)
    for index in range(5):
        log.record(make_record(index))
    await log.flush()
    assert log.dropped_count == 0 and log.queued_count == 5 and log.written_count == 0
    clock.advance(1.0)  # the writer retries after its interval, still without a descriptor
    await let_tasks_run()
    await log.flush()  # waits for the writer's attempt
    assert log.dropped_count == 0 and log.queued_count == 5

    monkeypatch.undo()
    log.record(make_record(5))
    clock.advance(1.0)
    await let_tasks_run()
    await log.flush()
    await log.stop()
    rows = read_csv(tmp_path / "transactions.csv")
    assert [row[COLUMNS.index("request_id")] for row in rows[1:]] == [f"req-{i}" for i in range(6)]
    assert log.dropped_count == 0


@pytest.mark.asyncio
async def test_two_processes_with_their_own_stems_rotate_and_retain_only_their_own_files(tmp_path: Path) -> None:
    old = ["transactions.w1-2023-10-01.csv", "transactions-2023-10-01.csv", "transactions.w0-2023-10-01.csv"]
    for name in old:
        (tmp_path / name).write_text("x\n")
    clock = WallClock(NOV_14_NOON)
    mine = TransactionLog(tmp_path, clock, retention_days=30, stem="transactions.w0")
    other = TransactionLog(tmp_path, clock, retention_days=30, stem="transactions.w1")
    await mine.start()
    mine.record(make_record(1))
    other.record(make_record(2))
    await mine.flush()
    await other.flush()
    clock.wall_seconds += 86_400
    mine.record(make_record(3, clock.wall_seconds))
    await mine.stop()
    await other.stop()

    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == [
        "transactions-2023-10-01.csv",  # not w0's: kept
        "transactions.w0-2023-11-14.csv",
        "transactions.w0.csv",
        "transactions.w1-2023-10-01.csv",  # w1's own retention (at its start and rotations) did not run
        "transactions.w1.csv",
    ]
    assert [row[1] for row in read_csv(tmp_path / "transactions.w0-2023-11-14.csv")] == ["request_id", "req-1"]
    assert [row[1] for row in read_csv(tmp_path / "transactions.w1.csv")] == ["request_id", "req-2"]
