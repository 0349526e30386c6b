"""The wiring from a request's outcome (core) to its record and metrics (utils)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bkvy.api import observability
from bkvy.api.observability import observe_outcome, record_of
from bkvy.clock import FakeClock
from bkvy.core.execution.records import ExecutionRequest, ExecutionResult, RequestOutcome
from bkvy.core.routing.plan import Candidate, RoutePlan, RouteRequest
from bkvy.models.errors import AllCandidatesFailed, ClientDisconnected, HardTimeout
from bkvy.models.outcomes import Attempt, AttemptOutcome, DecisionReason, HedgeOutcome
from bkvy.models.types import Completion, FinishReason, GenerationOptions, RoutingMethod, Usage
from bkvy.utils.metrics import GatewayMetrics
from bkvy.utils.recorder import Records
from bkvy.utils.records import COLUMNS
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


def _request() -> ExecutionRequest:
    route = RouteRequest(RoutingMethod.SCENARIO, scenario="s")
    return ExecutionRequest("req2", "tester", route, (), GenerationOptions())


def _served(attempts: tuple[Attempt, ...], hedges: tuple[HedgeOutcome, ...], cost_usd: float) -> RequestOutcome:
    winner = next(a for a in attempts if a.outcome is AttemptOutcome.SUCCESS)
    plan = RoutePlan((), DecisionReason.SCENARIO_PRIORITY)
    candidate = Candidate(
        provider=winner.provider,
        model=winner.model,
        key_id=winner.key_id,
        rate_limit_wait_seconds=0.0,
        queue_wait_seconds=0.0,
        expected_latency_seconds=0.1,
        is_flapping=False,
        wait_seconds=0.0,
        used_in_minute=0,
        last_used=0.0,
        estimate_seconds=0.1,
        rank=0,
        estimated_cost_usd=0.0,
        reason=DecisionReason.SCENARIO_PRIORITY,
    )
    completion = Completion("hi", Usage(10, 20), FinishReason.STOP)
    is_hedged = any(h in (HedgeOutcome.WON, HedgeOutcome.LOST) for h in hedges)
    result = ExecutionResult(completion, candidate, plan, attempts, 1100.0, 0.0, cost_usd, is_hedged)
    return RequestOutcome(_request(), result, None, attempts, 1100.0, 0.0, 1_700_000_000.0, plan=plan, hedges=hedges)


def _hedge_won() -> RequestOutcome:
    attempts = (
        Attempt("p0", "m", "k", AttemptOutcome.HEDGE_LOST, 1100.0, cost_usd=0.25),
        Attempt("p1", "m", "k", AttemptOutcome.SUCCESS, 100.0, is_hedge=True, cost_usd=1.0),
    )
    return _served(attempts, (HedgeOutcome.WON,), 1.25)


def _samples(records: Records) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(records.metrics.render().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def test_a_hedge_that_won_is_recorded_as_hedged_and_not_as_a_retry() -> None:
    rec = record_of(_hedge_won())
    assert (rec.hedged, rec.fallback_attempts, rec.provider_used) == (True, 0, "p1")
    assert rec.alternatives_tried == "p0/m/k"  # the loser was tried
    assert rec.cost_estimate == 1.25  # the loser's bill included
    assert to_row(rec)[COLUMNS.index("hedged")] == "true"


def test_a_retry_beside_a_lost_hedge_counts_once_as_each() -> None:
    attempts = (
        Attempt("p0", "m", "k", AttemptOutcome.SERVER, 5.0, status=503),
        Attempt("p1", "m", "k", AttemptOutcome.SUCCESS, 1100.0),
        Attempt("p2", "m", "k", AttemptOutcome.HEDGE_LOST, 100.0, is_hedge=True),
    )
    rec = record_of(_served(attempts, (HedgeOutcome.LOST,), 1.0))
    assert (rec.hedged, rec.fallback_attempts) == (True, 1)


@pytest.mark.parametrize("hedges", [(), (HedgeOutcome.SKIPPED_BUDGET,), (HedgeOutcome.SKIPPED_NO_CANDIDATE,)])
def test_a_request_no_hedge_raced_is_not_hedged(hedges: tuple[HedgeOutcome, ...]) -> None:
    attempts = (Attempt("p0", "m", "k", AttemptOutcome.SUCCESS, 5.0),)
    assert record_of(_served(attempts, hedges, 1.0)).hedged is False
    assert record_of(_failed_outcome()._replace(hedges=hedges)).hedged is False


def test_a_failed_request_records_what_its_lost_hedge_was_billed() -> None:
    attempts = (
        Attempt("p0", "m", "k", AttemptOutcome.CANCELLED_HARD_TIMEOUT, 2000.0),
        Attempt("p1", "m", "k", AttemptOutcome.HEDGE_LOST, 900.0, is_hedge=True, cost_usd=0.5),
    )
    outcome = _failed_outcome()._replace(attempts=attempts, error=HardTimeout("deadline"), hedges=(HedgeOutcome.LOST,))
    rec = record_of(outcome)
    assert (rec.success, rec.hedged, rec.cost_estimate, rec.fallback_attempts) == (False, True, 0.5, 0)
    assert record_of(_failed_outcome()).cost_estimate is None  # nothing billed: no cost


def test_hedges_are_counted_for_served_and_failed_requests() -> None:
    records = Records(clock=FakeClock(), metrics=GatewayMetrics(KEYS))
    hedges_of = {h.value: (("outcome", h.value),) for h in HedgeOutcome}
    assert {o: _samples(records)[("bkvy_hedges_total", labels)] for o, labels in hedges_of.items()} == dict.fromkeys(
        hedges_of, 0.0
    )
    observe_outcome(records, _hedge_won())
    observe_outcome(records, _failed_outcome()._replace(hedges=(HedgeOutcome.SKIPPED_BUDGET,)))
    observe_outcome(records, _failed_outcome()._replace(hedges=(HedgeOutcome.LOST, HedgeOutcome.SKIPPED_BUDGET)))
    samples = _samples(records)
    assert {o: samples[("bkvy_hedges_total", labels)] for o, labels in hedges_of.items()} == {
        "won": 1.0,
        "lost": 1.0,
        "skipped_budget": 2.0,
        "skipped_no_candidate": 0.0,
    }
    assert 'bkvy_hedges_total{outcome="won"} 1.0' in records.metrics.render().decode()


def test_a_lost_hedge_is_billed_to_its_own_model() -> None:
    records = Records(clock=FakeClock(), metrics=GatewayMetrics(KEYS))
    observe_outcome(records, _hedge_won())
    samples = _samples(records)
    assert samples[("bkvy_cost_usd_total", (("model", "m"), ("provider", "p0")))] == pytest.approx(0.25)
    assert samples[("bkvy_cost_usd_total", (("model", "m"), ("provider", "p1")))] == pytest.approx(1.0)


def test_a_client_that_left_mid_attempt_records_the_attempts_provider_and_model() -> None:
    attempts = (
        Attempt("p0", "m", "k", AttemptOutcome.SERVER, 5.0, status=503),
        Attempt("p1", "m1", "k1", AttemptOutcome.CLIENT_DISCONNECTED, 900.0),
    )
    error = ClientDisconnected("the client closed the connection")
    rec = record_of(_failed_outcome()._replace(attempts=attempts, error=error))
    assert (rec.provider_used, rec.model_used, rec.api_key_used) == ("p1", "m1", "k1")
    assert (rec.success, rec.error_type) == (False, "client_disconnected")
    assert record_of(_failed_outcome()).provider_used == ""  # any other failure: no provider served it
