"""Ranking by score and domain preference in ``plan_route`` (issue 18 §2): snapshots built by hand."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import build_config
from bkvy.core.routing.plan import CandidateKey, CandidateState, RoutePlan, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.core.routing.scoring import weights_for
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import IntelligenceLevel, RoutingMethod


def _model(tier: str, cost: float, latency_ms: float, quality: object = None) -> dict:
    model = {"intelligence_tier": tier, "cost_per_1k_tokens": cost, "expected_latency_ms": latency_ms}
    return model if quality is None else {**model, "quality": quality}


CONFIG = build_config(
    {
        "acme": {
            "type": "openai",
            "base_url": "http://127.0.0.1:1",
            "keys": {"a1": {"api_key": "x"}, "a2": {"api_key": "y"}},
            "models": {
                "cheap": _model("low", 0.1, 2000, 0.6),
                "fast": _model("low", 0.4, 500, {"overall": 0.7, "code": 0.9}),
                "smart": _model("low", 1.0, 4000, 0.95),
                "big": _model("high", 2.0, 1000),  # no quality: its tier's default
            },
        },
    },
    {
        "scenarios": {
            "chain": [
                {"provider": "acme", "model": "cheap", "priority": 1},
                {"provider": "acme", "model": "smart", "priority": 1},
                {"provider": "acme", "model": "fast", "priority": 2},
            ]
        },
        "domain_models": {"code": ["acme/fast"], "math": ["acme/smart", "acme/cheap"]},
    },
    {},
)
TABLE = RouteTable.compile(CONFIG)


def _low(optimize: object = None, max_wait: float | None = None, **kw: object) -> RouteRequest:
    return RouteRequest(
        RoutingMethod.INTELLIGENCE,
        level=IntelligenceLevel.LOW,
        max_wait_seconds=max_wait,
        input_tokens_estimate=100,
        output_tokens_estimate=100,
        weights=weights_for(optimize),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _models(plan: RoutePlan) -> list[str]:
    return list(dict.fromkeys(c.model for c in plan.candidates))


def test_without_weights_the_plan_is_todays() -> None:
    plan = plan_route(_low(), TABLE, {})
    assert _models(plan) == ["cheap", "fast", "smart", "big"]
    assert plan.decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    assert plan.scores is None


@pytest.mark.parametrize(
    ("optimize", "first"),
    [("cost", "cheap"), ("quality", "smart"), ("latency", "fast"), ("balanced", "fast"), ({"cost": 1}, "cheap")],
)
def test_optimize_picks_its_objective_first(optimize: object, first: str) -> None:
    plan = plan_route(_low(optimize), TABLE, {})
    assert _models(plan)[0] == first


def test_scored_plan_says_so_and_keeps_each_breakdown() -> None:
    plan = plan_route(_low("quality"), TABLE, {})
    assert plan.decision_reason is DecisionReason.HIGHEST_SCORE_WITHIN_ESTIMATE
    assert plan.candidates[0].reason is DecisionReason.HIGHEST_SCORE_WITHIN_ESTIMATE
    assert plan.candidates[-1].model == "big"  # the higher tier still comes after the level's own
    assert plan.candidates[-1].reason is DecisionReason.HIGHEST_SCORE_WITHIN_ESTIMATE_HIGHER_TIER
    smart = plan.scores[CandidateKey("acme", "smart", "a1")]  # type: ignore[index]
    assert (smart.quality, smart.is_default_quality) == (1.0, False)
    assert plan.scores[CandidateKey("acme", "big", "a1")].is_default_quality  # type: ignore[index]
    assert plan.scores[CandidateKey("acme", "big", "a1")].score == pytest.approx(1.0)  # alone in its group


def test_deadline_stays_hard_under_weights() -> None:
    plan = plan_route(_low("quality", max_wait=2.5), TABLE, {})
    assert _models(plan) == ["fast", "cheap", "smart", "big"]  # smart (4 s) is late: after all that fit
    late = [c for c in plan.candidates if c.model == "smart"]
    assert {c.reason for c in late} == {DecisionReason.OUTSIDE_ESTIMATE}
    assert CandidateKey("acme", "smart", "a1") not in plan.scores  # type: ignore[operator]


def test_fast_mode_stays_fastest_first() -> None:
    plan = plan_route(_low("quality", fast_mode=True), TABLE, {})
    assert _models(plan)[0] == "fast"
    assert plan.decision_reason is DecisionReason.FASTEST_AVAILABLE


def test_ties_go_to_the_least_used_key() -> None:
    used = {CandidateKey("acme", "smart", "a1"): CandidateState(expected_latency_seconds=4.0, used_in_minute=3)}
    plan = plan_route(_low({"quality": 1}), TABLE, used)
    assert [(c.model, c.key_id) for c in plan.candidates[:2]] == [("smart", "a2"), ("smart", "a1")]


def test_a_half_open_circuit_lowers_the_health_component() -> None:
    half_open = {CandidateKey("acme", "fast", "a1"): CandidateState(expected_latency_seconds=0.5, is_closed=False)}
    plan = plan_route(_low({"health": 1, "latency": 1}), TABLE, half_open)
    assert [(c.model, c.key_id) for c in plan.candidates[:2]] == [("fast", "a2"), ("fast", "a1")]
    assert plan.scores[CandidateKey("acme", "fast", "a1")].health == 0.5  # type: ignore[index]


def test_quality_is_read_for_the_requests_domain() -> None:
    weights = {"quality": 1}
    table = RouteTable.compile(
        CONFIG.model_copy(update={"routing": CONFIG.routing.model_copy(update={"domain_models": {}})})
    )
    assert _models(plan_route(_low(weights), table, {}))[0] == "smart"
    assert _models(plan_route(_low(weights, domain="code"), table, {}))[0] == "smart"  # 0.95 overall > 0.9
    scores = plan_route(_low(weights, domain="code"), table, {}).scores
    assert scores[CandidateKey("acme", "fast", "a1")].quality == pytest.approx(0.9 / 0.95)  # type: ignore[index]


def _scenario(optimize: object = None) -> RouteRequest:
    return RouteRequest(RoutingMethod.SCENARIO, scenario="chain", weights=weights_for(optimize))  # type: ignore[arg-type]


def test_scenario_keeps_priority_and_scores_within_equal_priority() -> None:
    assert _models(plan_route(_scenario(), TABLE, {})) == ["cheap", "smart", "fast"]
    plan = plan_route(_scenario("quality"), TABLE, {})
    assert _models(plan) == ["smart", "cheap", "fast"]  # fast: best on latency, but priority 2
    assert plan.decision_reason is DecisionReason.SCENARIO_PRIORITY
    assert _models(plan_route(_scenario("latency"), TABLE, {})) == ["cheap", "smart", "fast"]


def test_domain_models_come_first_in_their_listed_order() -> None:
    plan = plan_route(_low(domain="math"), TABLE, {})
    assert _models(plan) == ["smart", "cheap", "fast", "big"]
    assert plan.decision_reason is DecisionReason.DOMAIN_PREFERRED
    assert [c.reason for c in plan.candidates[:4]] == [DecisionReason.DOMAIN_PREFERRED] * 4
    assert plan.candidates[4].reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    assert plan.scores is None  # preferred, not scored


def test_domain_models_only_reorder_what_fits() -> None:
    plan = plan_route(_low(domain="math", max_wait=2.5), TABLE, {})
    assert _models(plan) == ["cheap", "fast", "smart", "big"]


def test_domain_models_lead_a_scored_plan() -> None:
    plan = plan_route(_low("latency", domain="code"), TABLE, {})
    assert plan.decision_reason is DecisionReason.DOMAIN_PREFERRED
    assert _models(plan)[0] == "fast"
    assert plan.scores is not None


def test_a_domain_without_domain_models_changes_nothing() -> None:
    assert _models(plan_route(_low(domain="chat"), TABLE, {})) == ["cheap", "fast", "smart", "big"]
    plan = plan_route(_low(domain="chat"), TABLE, {})
    assert plan.decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE


def test_a_domain_alone_leaves_the_cost_plan_byte_for_byte() -> None:
    unset = plan_route(_low(max_wait=2.5), TABLE, {})
    for domain in ("chat", "reasoning"):  # no domain_models for either
        plan = plan_route(_low(max_wait=2.5, domain=domain), TABLE, {})
        assert plan.rows == unset.rows and plan.decision_reason is unset.decision_reason and plan.scores is None
