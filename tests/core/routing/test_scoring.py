"""``score_candidates``: the one pure scoring function (issue 18 §2), and ``with_weights``."""

from __future__ import annotations

import pytest

from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.score_rank import DEFAULT_QUALITY, model_quality
from bkvy.core.routing.scoring import (
    HEALTH_CLOSED,
    HEALTH_FLAPPING,
    HEALTH_HALF_OPEN,
    OPTIMIZE_PRESETS,
    ScoreInputs,
    Weights,
    score_candidates,
    weights_for,
    with_weights,
)
from bkvy.models.types import IntelligenceLevel, RoutingMethod

CHEAP = ScoreInputs(cost_usd=0.001, latency_seconds=2.0, quality=0.6, load=0, health=HEALTH_CLOSED)
FAST = ScoreInputs(cost_usd=0.004, latency_seconds=0.5, quality=0.7, load=0, health=HEALTH_CLOSED)
SMART = ScoreInputs(cost_usd=0.010, latency_seconds=4.0, quality=0.95, load=0, health=HEALTH_CLOSED)
FLEET = [CHEAP, FAST, SMART]
ONLY = {name: Weights(*(1.0 if f == name else 0.0 for f in Weights._fields)) for name in Weights._fields}


def _best(weights: Weights, inputs: list[ScoreInputs]) -> ScoreInputs:
    scores = [b.score for b in score_candidates(weights, inputs)]
    return inputs[scores.index(max(scores))]


def test_components_are_relative_to_the_best_candidate() -> None:
    cheap, fast, smart = score_candidates(OPTIMIZE_PRESETS["balanced"], FLEET)
    assert (cheap.cost, fast.cost, smart.cost) == pytest.approx((1.0, 0.25, 0.1))
    assert (cheap.latency, fast.latency, smart.latency) == pytest.approx((0.25, 1.0, 0.125))
    assert (cheap.quality, fast.quality, smart.quality) == pytest.approx((0.6 / 0.95, 0.7 / 0.95, 1.0))
    assert cheap.load == fast.load == smart.load == 1.0


def test_score_is_the_weighted_sum_of_the_components() -> None:
    weights = Weights(0.2, 0.2, 0.2, 0.2, 0.2)
    for b in score_candidates(weights, FLEET):
        assert b.score == pytest.approx(0.2 * (b.cost + b.latency + b.quality + b.load + b.health))


@pytest.mark.parametrize(
    ("optimize", "winner"), [("quality", SMART), ("latency", FAST), ("balanced", FAST)], ids=["q", "l", "b"]
)
def test_each_preset_prefers_its_objective(optimize: str, winner: ScoreInputs) -> None:
    weights = weights_for(optimize)
    assert weights is not None
    assert _best(weights, FLEET) == winner


@pytest.mark.parametrize(("component", "winner"), [("cost", CHEAP), ("latency", FAST), ("quality", SMART)])
def test_explicit_weights_on_one_component_pick_its_best(component: str, winner: ScoreInputs) -> None:
    weights = weights_for({component: 5})
    assert weights == ONLY[component]
    assert _best(weights, FLEET) == winner


def test_load_and_health_lower_the_score() -> None:
    busy = CHEAP._replace(load=9)
    half_open = CHEAP._replace(health=HEALTH_HALF_OPEN)
    flapping = CHEAP._replace(health=HEALTH_FLAPPING)
    idle, busy_b = score_candidates(ONLY["load"], [CHEAP, busy])
    assert (idle.load, busy_b.load) == (1.0, 0.1)
    closed, half, flap = score_candidates(ONLY["health"], [CHEAP, half_open, flapping])
    assert closed.score > half.score > flap.score


def test_all_equal_values_score_one_everywhere() -> None:
    breakdowns = score_candidates(OPTIMIZE_PRESETS["balanced"], [CHEAP, CHEAP, CHEAP])
    assert [b.score for b in breakdowns] == pytest.approx([1.0, 1.0, 1.0])
    assert breakdowns[0] == breakdowns[1] == breakdowns[2]


def test_a_single_candidate_scores_one() -> None:
    (only,) = score_candidates(OPTIMIZE_PRESETS["quality"], [SMART])
    assert only.score == pytest.approx(1.0)
    assert only.components() == {"cost": 1.0, "latency": 1.0, "quality": 1.0, "load": 1.0, "health": 1.0}


def test_no_candidates_no_scores() -> None:
    assert score_candidates(OPTIMIZE_PRESETS["quality"], []) == []


def test_a_free_candidate_does_not_zero_paid_ones_on_cost() -> None:
    # cost is floored at 1e-6 USD: a free model is the best, a paid one scores floor / its cost, not 0
    free, tiny, paid = score_candidates(
        ONLY["cost"], [CHEAP._replace(cost_usd=0.0), CHEAP._replace(cost_usd=2e-6), CHEAP._replace(cost_usd=1e-5)]
    )
    assert (free.cost, tiny.cost, paid.cost) == pytest.approx((1.0, 0.5, 0.1))
    assert 0.0 < paid.score <= tiny.score <= free.score <= 1.0


def test_an_instant_candidate_does_not_zero_the_others_on_latency() -> None:
    instant, quick = score_candidates(
        ONLY["latency"], [FAST._replace(latency_seconds=0.0), FAST._replace(latency_seconds=0.004)]
    )
    assert (instant.latency, quick.latency) == pytest.approx((1.0, 0.25))


def test_values_below_the_floor_tie() -> None:
    free, dust = score_candidates(ONLY["cost"], [CHEAP._replace(cost_usd=0.0), CHEAP._replace(cost_usd=1e-7)])
    assert free.cost == dust.cost == 1.0


def test_ties_score_equal() -> None:
    twin = CHEAP._replace(is_default_quality=True)
    first, second = score_candidates(OPTIMIZE_PRESETS["balanced"], [CHEAP, twin])
    assert first.score == second.score
    assert second.is_default_quality and not first.is_default_quality


def test_missing_quality_takes_the_tier_default_and_says_so() -> None:
    quality = model_quality(None, IntelligenceLevel.HIGH)
    assert (quality.overall, quality.is_default) == (DEFAULT_QUALITY[IntelligenceLevel.HIGH], True)
    assert model_quality(0.9, IntelligenceLevel.LOW) == (0.9, {}, False)
    per_domain = model_quality({"code": 0.95}, IntelligenceLevel.LOW)
    assert (per_domain.for_domain("code"), per_domain.for_domain("math")) == (0.95, DEFAULT_QUALITY["low"])
    assert per_domain.is_default
    declared = model_quality({"overall": 0.8, "math": 0.9}, IntelligenceLevel.LOW)
    assert (declared.for_domain(None), declared.for_domain("math"), declared.is_default) == (0.8, 0.9, False)


LOW = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)
SCENARIO = RouteRequest(RoutingMethod.SCENARIO, scenario="chain")


def test_with_weights_request_wins_over_the_configured_default() -> None:
    defaults = {"low": "quality", "scenario:chain": {"latency": 1}}
    assert with_weights(LOW, None, defaults).weights == OPTIMIZE_PRESETS["quality"]
    assert with_weights(LOW, "latency", defaults).weights == OPTIMIZE_PRESETS["latency"]
    assert with_weights(LOW, "cost", defaults).weights is None  # an explicit "cost" beats the level's default
    assert with_weights(SCENARIO, None, defaults).weights == ONLY["latency"]


def test_with_weights_without_any_optimize_keeps_the_route() -> None:
    assert with_weights(LOW, None, {}) is LOW
    assert with_weights(LOW, None, {"high": "quality"}) is LOW
    direct = RouteRequest(RoutingMethod.DIRECT, provider="p", model="m")
    assert with_weights(direct, None, {"low": "quality"}) is direct
