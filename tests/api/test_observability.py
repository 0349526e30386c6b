"""The wiring from a request's outcome (core) to its record and metrics (utils)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bkvy.api import observability
from bkvy.api.observability import observe_outcome, record_of
from bkvy.clock import FakeClock
from bkvy.core.execution.records import ExecutionRequest, RequestOutcome
from bkvy.core.routing.plan import RoutePlan, RouteRequest
from bkvy.models.errors import AllCandidatesFailed
from bkvy.models.outcomes import Attempt, AttemptOutcome, DecisionReason
from bkvy.models.types import GenerationOptions, RoutingMethod
from bkvy.utils.metrics import GatewayMetrics
from bkvy.utils.recorder import Records
from tests.utils.csv_rows import to_row

KEYS = [("p0", "m", "k"), ("p1", "m", "k"), ("p2", "m", "k")]


def _failed_outcome() -> RequestOutcome:
    request = ExecutionRequest(
        "req1", "tester", RouteRequest(RoutingMethod.SCENARIO, scenario="s"), (), GenerationOptions()
    )
    attempts = (
        Attempt("p0", "m", "k", AttemptOutcome.SKIPPED_CIRCUIT_OPEN, 0.0),
        Attempt("p1", "m", "k", AttemptOutcome.SERVER, 5.0, status=503),
        Attempt("p2", "m", "k", AttemptOutcome.TIMEOUT, 7.0),
    )
    return RequestOutcome(
        request,
        None,
        AllCandidatesFailed("all 2 attempts failed"),
        attempts,
        12.0,
        0.0,
        1_700_000_000.0,
        plan=RoutePlan((), DecisionReason.SCENARIO_PRIORITY),
    )


def test_record_counts_only_sent_attempts_as_tried() -> None:
    rec = record_of(_failed_outcome())
    assert rec.fallback_attempts == 1
    assert rec.alternatives_tried == "p1/m/k;p2/m/k"
    assert (rec.success, rec.error_type, rec.decision_reason) == (False, "all_candidates_failed", "scenario_priority")


def test_without_a_sink_no_record_is_built_but_metrics_count(monkeypatch: pytest.MonkeyPatch) -> None:
    def _no_record(outcome: RequestOutcome) -> None:
        raise AssertionError("a record was built with no sink to take it")

    monkeypatch.setattr(observability, "record_of", _no_record)
    records = Records(clock=FakeClock(), metrics=GatewayMetrics(KEYS))
    observe_outcome(records, _failed_outcome())
    families = {f.name: f for f in text_string_to_metric_families(records.metrics.render().decode())}
    attempts = {s.labels["provider"]: s.labels["outcome"] for s in families["bkvy_upstream_attempts"].samples}
    assert attempts == {"p0": "skipped_circuit_open", "p1": "server", "p2": "timeout"}
    [request] = [s for s in families["bkvy_llm_requests"].samples if s.name == "bkvy_llm_requests_total"]
    assert request.labels == {
        "routing_method": "scenario",
        "provider": "none",
        "model": "none",
        "outcome": "all_candidates_failed",
    }


def test_the_decision_reason_is_recorded_as_its_plain_text() -> None:
    request = ExecutionRequest(
        "abc", "team-a", RouteRequest(RoutingMethod.DIRECT, provider="p", model="m"), (), GenerationOptions()
    )
    outcome = RequestOutcome(
        request,
        None,
        AllCandidatesFailed("all 0 attempts failed"),
        (),
        1.0,
        0.0,
        0.0,
        plan=RoutePlan((), DecisionReason.NO_CANDIDATE_AVAILABLE),
    )
    rec = record_of(outcome)
    assert type(rec.decision_reason) is str and "no_candidate_available" in to_row(rec)
