"""Records read back from the CSV (to warm the dashboard at start) equal what was written."""

from __future__ import annotations

from bkvy.utils.recorder import record_from_row
from bkvy.utils.records import COLUMNS, TransactionRecord
from bkvy.utils.transaction_log import neutralise_cell
from tests.utils.csv_rows import to_row


def test_record_round_trips_through_a_csv_row() -> None:
    rec = TransactionRecord(
        timestamp="2023-11-14T22:13:20.000Z",
        request_id="abc",
        client_id="=cmd|x",
        routing_method="direct",
        max_wait_seconds=2.5,
        success=True,
        provider_used="ollama",
        total_time_ms=12.5,
        input_tokens=3,
        output_tokens=16,
        cost_estimate=-0.0,
        error_message="-not a number",
        fallback_attempts=2,
        alternatives_tried="a/b/c",
        hedged=True,
    )
    row = dict(zip(COLUMNS, (neutralise_cell(cell) for cell in to_row(rec)), strict=False))
    assert record_from_row(row) == rec


def test_rows_that_are_not_records_are_skipped() -> None:
    assert record_from_row({"timestamp": "yesterday", "request_id": "x"}) is None
    assert record_from_row({"timestamp": "2023-11-14T22:13:20Z", "input_tokens": "many"}) is None


def test_a_row_from_before_the_hedged_column_reads_as_not_hedged() -> None:
    rec = TransactionRecord(timestamp="2023-11-14T22:13:20.000Z", request_id="old", success=True, fallback_attempts=1)
    row = {name: cell for name, cell in zip(COLUMNS, to_row(rec), strict=True) if name != "hedged"}
    assert "hedged" not in row
    assert record_from_row(row) == rec
    assert record_from_row({**row, "hedged": "true"}) == rec._replace(hedged=True)


def test_a_row_from_before_the_classification_columns_reads_with_them_empty() -> None:
    rec = TransactionRecord(timestamp="2023-11-14T22:13:20.000Z", request_id="old", intelligence_level="high")
    new_columns = {"domain", "classification_confidence", "classification_features"}
    row = {name: cell for name, cell in zip(COLUMNS, to_row(rec), strict=True) if name not in new_columns}
    assert record_from_row(row) == rec
    classified = {**row, "domain": "code", "classification_confidence": "0.82", "classification_features": "math"}
    assert record_from_row(classified) == rec._replace(
        domain="code", classification_confidence=0.82, classification_features="math"
    )
