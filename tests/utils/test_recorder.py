"""Records read back from the CSV (to warm the dashboard at start) equal what was written."""

from __future__ import annotations

from bkvy.core.execution.records import ExecutionRequest, RequestOutcome
from bkvy.core.routing.plan import RoutePlan, RouteRequest
from bkvy.models.errors import AllCandidatesFailed
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import GenerationOptions, RoutingMethod
from bkvy.utils.recorder import record_from_row, record_of
from bkvy.utils.records import COLUMNS, TransactionRecord
from bkvy.utils.transaction_log import neutralise_cell


def test_record_round_trips_through_a_csv_row() -> None:
    rec = TransactionRecord(timestamp="2023-11-14T22:13:20.000Z", request_id="abc", client_id="=cmd|x",
                            routing_method="direct", max_wait_seconds=2.5, success=True, provider_used="ollama",
                            total_time_ms=12.5, input_tokens=3, output_tokens=16, cost_estimate=-0.0,
                            error_message="-not a number", fallback_attempts=2, alternatives_tried="a/b/c")
    row = dict(zip(COLUMNS, (neutralise_cell(cell) for cell in rec.to_row())))
    assert record_from_row(row) == rec


def test_rows_that_are_not_records_are_skipped() -> None:
    assert record_from_row({"timestamp": "yesterday", "request_id": "x"}) is None
    assert record_from_row({"timestamp": "2023-11-14T22:13:20Z", "input_tokens": "many"}) is None


def test_the_decision_reason_is_recorded_as_its_plain_text() -> None:
    request = ExecutionRequest("abc", "team-a", RouteRequest(RoutingMethod.DIRECT, provider="p", model="m"), (),
                               GenerationOptions())
    outcome = RequestOutcome(request, None, AllCandidatesFailed("all 0 attempts failed"), (), 1.0, 0.0, 0.0,
                             plan=RoutePlan((), DecisionReason.NO_CANDIDATE_AVAILABLE))
    rec = record_of(outcome)
    assert type(rec.decision_reason) is str and "no_candidate_available" in rec.to_row()
