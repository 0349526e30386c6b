"""explain_route is pure: snapshots built by hand, no HTTP, no event loop (issue 18 §5)."""

from __future__ import annotations

from bkvy.core.config.gateway import build_config
from bkvy.core.routing.explain import ExcludedBy, explain_route
from bkvy.core.routing.plan import CandidateKey, CandidateState, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod


def _model(tier: str, cost: float, latency_ms: float = 1000, capabilities: tuple[str, ...] = ()) -> dict:
    return {
        "intelligence_tier": tier,
        "cost_per_1k_tokens": cost,
        "expected_latency_ms": latency_ms,
        "capabilities": list(capabilities),
    }


CONFIG = build_config(
    {
        "cheapco": {
            "type": "openai",
            "base_url": "http://127.0.0.1:1",
            "keys": {"c1": {"api_key": "x"}, "c2": {"api_key": "y"}},
            "models": {
                "slow-cheap": _model("low", 0.1, 5000),
                "vectors": {"capabilities": ["embeddings"], "input_cost_per_1k": 0.01},
            },
        },
        "fastco": {
            "type": "anthropic",
            "base_url": "http://127.0.0.1:2",
            "keys": {"f1": {"api_key": "z"}},
            "models": {"fast-pricey": _model("low", 1.0, 500, ("json",)), "big": _model("high", 5.0)},
        },
    },
    {
        "scenarios": {
            "chain": [
                {"provider": "fastco", "model": "fast-pricey", "priority": 1},
                {"provider": "cheapco", "model": "slow-cheap", "priority": 2},
            ],
            "index": [{"provider": "cheapco", "model": "vectors", "priority": 1}],
        }
    },
    {},
)
TABLE = RouteTable.compile(CONFIG)
CHEAP_1 = CandidateKey("cheapco", "slow-cheap", "c1")
CHEAP_2 = CandidateKey("cheapco", "slow-cheap", "c2")
FAST = CandidateKey("fastco", "fast-pricey", "f1")
BIG = CandidateKey("fastco", "big", "f1")
NOW = 1000.0


def _low(**kw) -> RouteRequest:
    return RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, **kw)


def _open(reason: ErrorClass = ErrorClass.SERVER, seconds: float = 30.0) -> CandidateState:
    return CandidateState(1.0, is_closed=False, allows_request=False, open_reason=reason, open_until=NOW + seconds)


def _by_key(explanation) -> dict[tuple[str, str, str], object]:
    return {(c.provider, c.model, c.key_id): c for c in explanation.candidates}


def test_lists_the_plans_order_and_chooses_its_first():
    request = _low()
    explanation = explain_route(request, TABLE, {}, now=NOW)
    plan = plan_route(request, TABLE, {})
    assert [(c.provider, c.model, c.key_id) for c in explanation.candidates] == [
        (c.provider, c.model, c.key_id) for c in plan.candidates
    ]
    assert [c.position for c in explanation.candidates] == list(range(1, len(plan.candidates) + 1))
    chosen = explanation.chosen
    assert chosen is not None and (chosen.provider, chosen.model) == ("cheapco", "slow-cheap")
    assert explanation.decision_reason is plan.decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    assert any("cheapest within the estimate" in r for r in chosen.reasons)
    assert any(r.startswith("cost $") for r in chosen.reasons) and "circuit closed" in chosen.reasons


def test_open_circuit_is_excluded_by_circuit_with_its_reason_and_time_left():
    explanation = explain_route(_low(), TABLE, {CHEAP_1: _open(seconds=12.0)}, now=NOW)
    row = _by_key(explanation)[CHEAP_1]
    assert row.excluded_by is ExcludedBy.CIRCUIT and row.position is None
    assert row.reasons == ("circuit open (server) for 12.0 s more",)
    assert explanation.chosen is not None and explanation.chosen.key_id == "c2"


def test_not_closed_circuit_in_fast_mode_is_excluded_by_circuit():
    half_open = CandidateState(1.0, is_closed=False, allows_request=True)
    explanation = explain_route(_low(fast_mode=True), TABLE, {FAST: half_open}, now=NOW)
    assert _by_key(explanation)[FAST].excluded_by is ExcludedBy.CIRCUIT


def test_rate_limit_wait_past_max_wait_is_excluded_by_limit():
    waiting = CandidateState(5.0, rate_limit_wait_seconds=40.0)
    explanation = explain_route(_low(max_wait_seconds=10.0), TABLE, {CHEAP_1: waiting}, now=NOW)
    row = _by_key(explanation)[CHEAP_1]
    assert row.excluded_by is ExcludedBy.LIMIT
    assert "40.00 s" in row.reasons[0]


def test_estimate_past_max_wait_is_excluded_by_deadline_but_still_tried_after_the_others():
    explanation = explain_route(_low(max_wait_seconds=1.0), TABLE, {}, now=NOW)
    rows = _by_key(explanation)
    assert explanation.chosen is not None and explanation.chosen.model == "fast-pricey"
    late = rows[CHEAP_1]
    assert late.excluded_by is ExcludedBy.DEADLINE and late.position is not None and late.position > 1
    assert any("tried after every candidate that fits" in r for r in late.reasons)


def test_a_model_without_json_is_excluded_by_capability_for_a_json_schema():
    explanation = explain_route(_low(needs_json=True), TABLE, {}, now=NOW)
    rows = _by_key(explanation)
    assert rows[CHEAP_1].excluded_by is ExcludedBy.CAPABILITY and "json" in rows[CHEAP_1].reasons[0]
    assert explanation.chosen is not None and explanation.chosen.model == "fast-pricey"


def test_chosen_is_null_when_no_candidate_can_serve():
    request = RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="slow-cheap", needs_json=True)
    explanation = explain_route(request, TABLE, {}, now=NOW)
    assert explanation.chosen is None
    assert {c.excluded_by for c in explanation.candidates} == {ExcludedBy.CAPABILITY}
    assert explanation.decision_reason is DecisionReason.NO_CANDIDATE_AVAILABLE


def test_an_embedding_scenario_on_chat_is_excluded_by_capability_not_an_error():
    explanation = explain_route(RouteRequest(RoutingMethod.SCENARIO, scenario="index"), TABLE, {}, now=NOW)
    assert explanation.chosen is None
    assert [c.excluded_by for c in explanation.candidates] == [ExcludedBy.CAPABILITY, ExcludedBy.CAPABILITY]


def test_chosen_is_null_when_every_circuit_is_open_for_auth():
    snapshot = {key: _open(ErrorClass.AUTH) for key in (CHEAP_1, CHEAP_2, FAST, BIG)}
    explanation = explain_route(_low(), TABLE, snapshot, now=NOW)
    assert explanation.chosen is None
    assert {c.excluded_by for c in explanation.candidates} == {ExcludedBy.CIRCUIT}


def test_panic_mode_chooses_the_soonest_recovery_and_lists_the_rest_as_circuit():
    snapshot = {CHEAP_1: _open(seconds=5), CHEAP_2: _open(seconds=50), FAST: _open(seconds=60), BIG: _open()}
    explanation = explain_route(_low(), TABLE, snapshot, now=NOW)
    assert explanation.chosen is not None and explanation.chosen.key_id == "c1"
    assert explanation.decision_reason is DecisionReason.PANIC_MODE
    assert len(explanation.candidates) == 4
    assert [c.excluded_by for c in explanation.candidates[1:]] == [ExcludedBy.CIRCUIT] * 3


def test_direct_with_a_key_id_lists_only_that_key():
    request = RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="slow-cheap", key_id="c2")
    explanation = explain_route(request, TABLE, {}, now=NOW)
    assert [(c.key_id, c.position) for c in explanation.candidates] == [("c2", 1)]
    assert explanation.decision_reason is DecisionReason.DIRECT


def test_input_a_wire_format_cannot_carry_is_excluded_by_capability_and_skipped_by_chosen():
    explanation = explain_route(_low(), TABLE, {}, now=NOW, accepts_input=lambda key: key.provider != "cheapco")
    rows = _by_key(explanation)
    assert rows[CHEAP_1].excluded_by is ExcludedBy.CAPABILITY and rows[CHEAP_1].position is None
    assert explanation.chosen is not None and explanation.chosen.provider == "fastco"
    assert explanation.chosen.position == 1


def test_policy_is_a_reserved_exclusion():
    assert ExcludedBy.POLICY.value == "policy"


def test_adaptive_samples_show_in_the_reasons():
    explanation = explain_route(_low(samples={("cheapco", "slow-cheap"): 0.25}), TABLE, {}, now=NOW)
    assert any("bandit draw 0.250" in r for r in _by_key(explanation)[CHEAP_1].reasons)


def test_a_scenario_keeps_its_order_past_max_wait_and_says_so_without_deadline():
    request = RouteRequest(RoutingMethod.SCENARIO, scenario="chain", max_wait_seconds=1.0)
    explanation = explain_route(request, TABLE, {}, now=NOW)
    assert [c.model for c in explanation.candidates] == ["fast-pricey", "slow-cheap", "slow-cheap"]
    late = _by_key(explanation)[CHEAP_1]
    assert late.excluded_by is None and "estimate past max_wait_seconds (1 s)" in late.reasons


def test_a_scored_plan_shows_each_candidates_score_and_components():
    from bkvy.core.routing.scoring import weights_for

    request = _low(weights=weights_for("latency"))
    explanation = explain_route(request, TABLE, {}, now=NOW)
    chosen = explanation.chosen
    assert chosen is not None and (chosen.provider, chosen.model) == ("fastco", "fast-pricey")  # 0.5 s against 5 s
    for candidate in explanation.candidates:
        assert candidate.score is not None and 0.0 <= candidate.score <= 1.0
        assert set(candidate.score_components or {}) == {"cost", "latency", "quality", "load", "health"}
        assert any(reason.startswith("score ") for reason in candidate.reasons)
    assert chosen.score_components is not None and chosen.score_components["latency"] == 1.0


def test_a_cost_plan_has_no_score():
    explanation = explain_route(_low(), TABLE, {}, now=NOW)
    assert all(c.score is None and c.score_components is None for c in explanation.candidates)


def test_an_adaptive_plan_follows_the_draws_and_names_them():
    request = _low(samples={("fastco", "fast-pricey"): 0.9, ("cheapco", "slow-cheap"): 0.2})
    explanation = explain_route(request, TABLE, {}, now=NOW)
    chosen = explanation.chosen
    assert chosen is not None and chosen.model == "fast-pricey"
    assert explanation.decision_reason is DecisionReason.ADAPTIVE
    assert any("bandit draw 0.900" in reason for reason in chosen.reasons)
