"""plan_route with the bandit's draws (``RouteRequest.samples``): ordered by draw, every filter still applies."""

from __future__ import annotations

from bkvy.core.routing.plan import CandidateKey, CandidateState, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.outcomes import DecisionReason, SkipReason
from bkvy.models.types import IntelligenceLevel, RoutingMethod
from tests.core.routing.test_plan import CONFIG, _low, _state

TABLE = RouteTable.compile(CONFIG)
SLOW, FAST = ("cheapco", "slow-cheap"), ("fastco", "fast-pricey")


def _pairs(plan) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(c.provider, c.model) for c in plan.candidates]


def test_fits_are_ordered_by_draw_highest_first() -> None:
    plan = plan_route(_low(samples={FAST: 0.9, SLOW: 0.2}), TABLE, {})
    assert _pairs(plan)[0] == FAST  # cost ranking would put slow-cheap first
    assert plan.decision_reason is DecisionReason.ADAPTIVE
    plan = plan_route(_low(samples={FAST: 0.1, SLOW: 0.8}), TABLE, {})
    assert _pairs(plan)[:2] == [SLOW, SLOW]  # both keys of the drawn model, then the other
    assert plan.candidates[0].reason is DecisionReason.ADAPTIVE


def test_higher_tiers_stay_after_and_say_so() -> None:
    plan = plan_route(_low(samples={FAST: 0.1, SLOW: 0.8, ("cheapco", "mid"): 1.0}), TABLE, {})
    assert _pairs(plan)[:3] == [SLOW, SLOW, FAST]  # the level's own group first, whatever the higher tier drew
    assert {c.reason for c in plan.candidates[3:]} == {DecisionReason.ADAPTIVE_HIGHER_TIER}


def test_the_deadline_still_puts_late_candidates_after() -> None:
    plan = plan_route(_low(max_wait=2.0, samples={FAST: 0.1, SLOW: 0.9}), TABLE, {})
    assert _pairs(plan)[0] == FAST  # slow-cheap (5 s) is outside the max wait, whatever it drew
    late = [c for c in plan.candidates if (c.provider, c.model) == SLOW]
    assert {c.reason for c in late} == {DecisionReason.OUTSIDE_ESTIMATE}


def test_an_open_circuit_is_skipped_whatever_it_drew() -> None:
    snapshot = {CandidateKey("fastco", "fast-pricey", "f1"): _state(0.5, is_closed=False, allows_request=False)}
    plan = plan_route(_low(samples={FAST: 1.0, SLOW: 0.0}), TABLE, snapshot)
    assert FAST not in _pairs(plan)
    assert [s.reason for s in plan.skipped] == [SkipReason.CIRCUIT_OPEN]


def test_fast_mode_stays_fastest_first() -> None:
    plan = plan_route(_low(samples={FAST: 0.0, SLOW: 1.0}, fast_mode=True), TABLE, {})
    assert _pairs(plan)[0] == FAST
    assert plan.decision_reason is DecisionReason.FASTEST_AVAILABLE


def test_flapping_candidates_go_last_whatever_they_drew() -> None:
    snapshot = {CandidateKey("fastco", "fast-pricey", "f1"): CandidateState(0.5, is_flapping=True)}
    plan = plan_route(_low(samples={FAST: 1.0, SLOW: 0.0}), TABLE, snapshot)
    assert _pairs(plan)[:3] == [SLOW, SLOW, FAST]


def test_a_scenario_is_ordered_by_draw_instead_of_priority() -> None:
    route = RouteRequest(RoutingMethod.SCENARIO, scenario="chain")
    assert _pairs(plan_route(route, TABLE, {}))[0] == SLOW  # priority 1
    plan = plan_route(route._replace(samples={FAST: 0.7, SLOW: 0.3}), TABLE, {})
    assert _pairs(plan)[0] == FAST
    assert plan.decision_reason is DecisionReason.ADAPTIVE


def test_without_samples_the_plan_is_todays() -> None:
    route = _low(max_wait=2.0)
    assert repr(plan_route(route, TABLE, {})) == repr(plan_route(route._replace(samples=None), TABLE, {}))
    assert plan_route(route, TABLE, {}).decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    assert RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW).samples is None
