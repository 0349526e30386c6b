"""plan_route is pure: snapshots are built by hand, no HTTP, no event loop."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import build_config
from bkvy.core.config.pricing import cost_usd
from bkvy.core.routing.plan import CandidateKey, CandidateState, RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.errors import NoCandidates, UnknownKey, UnknownModel, UnknownProvider, UnknownScenario
from bkvy.models.outcomes import DecisionReason, SkipReason
from bkvy.models.types import ErrorClass, IntelligenceLevel, RoutingMethod


def _model(tier: str, cost: float, latency_ms: float = 1000) -> dict:
    return {"intelligence_tier": tier, "cost_per_1k_tokens": cost, "expected_latency_ms": latency_ms}


CONFIG = build_config(
    {
        "cheapco": {
            "type": "openai",
            "base_url": "http://127.0.0.1:1",
            "keys": {"c1": {"api_key": "x"}, "c2": {"api_key": "y"}},
            "models": {"slow-cheap": _model("low", 0.1, 5000), "mid": _model("medium", 1.0)},
        },
        "fastco": {
            "type": "anthropic",
            "base_url": "http://127.0.0.1:2",
            "keys": {"f1": {"api_key": "z"}},
            "models": {"fast-pricey": _model("low", 1.0, 500), "big": _model("high", 5.0)},
        },
    },
    {
        "scenarios": {
            "chain": [
                {"provider": "fastco", "model": "fast-pricey", "priority": 2},
                {"provider": "cheapco", "model": "slow-cheap", "priority": 1},
            ]
        }
    },
    {},
)


def _low(max_wait: float | None = None, **kw) -> RouteRequest:
    return RouteRequest(
        RoutingMethod.INTELLIGENCE,
        level=IntelligenceLevel.LOW,
        max_wait_seconds=max_wait,
        input_tokens_estimate=100,
        output_tokens_estimate=100,
        **kw,
    )


def _state(latency: float, **kw) -> CandidateState:
    return CandidateState(expected_latency_seconds=latency, **kw)


def _names(plan) -> list[tuple[str, str]]:
    return [(c.model, c.key_id) for c in plan.candidates]


def test_intelligence_picks_cheapest_when_it_fits_the_deadline():
    plan = plan_route(_low(max_wait=10), RouteTable.compile(CONFIG), {})
    assert plan.decision_reason == "cheapest_within_estimate"
    assert plan.candidates[0].model == "slow-cheap"


def test_intelligence_picks_fastest_when_nothing_cheap_fits():
    plan = plan_route(_low(max_wait=0.2), RouteTable.compile(CONFIG), {})
    assert plan.decision_reason == "fastest_available"
    assert plan.candidates[0].model == "fast-pricey"


def test_cheapest_within_estimate_skips_candidates_too_slow_for_deadline():
    plan = plan_route(_low(max_wait=2), RouteTable.compile(CONFIG), {})
    assert plan.candidates[0].model == "fast-pricey"
    assert plan.candidates[0].reason == "cheapest_within_estimate"
    assert [c.reason for c in plan.candidates if c.model == "slow-cheap"] == ["outside_estimate"] * 2


def test_tier_filtering_puts_higher_tiers_after_own_tier_only():
    plan = plan_route(_low(), RouteTable.compile(CONFIG), {})
    tiers = [c.model for c in plan.candidates]
    assert tiers[:3] == ["slow-cheap", "slow-cheap", "fast-pricey"]
    assert set(tiers[3:]) == {"mid", "big"}
    assert all(c.reason.endswith("_higher_tier") for c in plan.candidates[3:])
    high = plan_route(
        RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.HIGH), RouteTable.compile(CONFIG), {}
    )
    assert [c.model for c in high.candidates] == ["big"]


def test_rate_limited_candidate_is_charged_its_wait():
    snapshot = {
        CandidateKey("cheapco", "slow-cheap", "c1"): _state(5.0, rate_limit_wait_seconds=4.0),
        CandidateKey("cheapco", "slow-cheap", "c2"): _state(5.0, rate_limit_wait_seconds=4.0),
    }
    plan = plan_route(_low(max_wait=6), RouteTable.compile(CONFIG), snapshot)
    assert plan.candidates[0].model == "fast-pricey"
    late = [c for c in plan.candidates if c.model == "slow-cheap"]
    assert late and all(c.estimate_seconds == pytest.approx(9.0) for c in late)


def test_rate_limited_candidate_beyond_max_wait_is_skipped_with_its_wait():
    snapshot = {CandidateKey("fastco", "fast-pricey", "f1"): _state(0.5, rate_limit_wait_seconds=30.0)}
    plan = plan_route(_low(max_wait=10), RouteTable.compile(CONFIG), snapshot)
    assert ("fast-pricey", "f1") not in _names(plan)
    assert plan.rate_limit_retry_after_seconds == 30.0


def test_no_max_wait_means_no_waiting_for_a_full_window():
    snapshot = {CandidateKey("fastco", "fast-pricey", "f1"): _state(0.5, rate_limit_wait_seconds=0.1)}
    plan = plan_route(_low(), RouteTable.compile(CONFIG), snapshot)
    assert ("fast-pricey", "f1") not in _names(plan)


def test_ties_spread_across_keys_by_recent_use():
    used = {
        CandidateKey("cheapco", "slow-cheap", "c1"): _state(5.0, used_in_minute=3),
        CandidateKey("cheapco", "slow-cheap", "c2"): _state(5.0, used_in_minute=1),
    }
    assert plan_route(_low(), RouteTable.compile(CONFIG), used).candidates[0].key_id == "c2"
    used[CandidateKey("cheapco", "slow-cheap", "c2")] = _state(5.0, used_in_minute=4)
    assert plan_route(_low(), RouteTable.compile(CONFIG), used).candidates[0].key_id == "c1"


def test_scenario_follows_priority_not_listing_order():
    plan = plan_route(RouteRequest(RoutingMethod.SCENARIO, scenario="chain"), RouteTable.compile(CONFIG), {})
    assert plan.decision_reason == "scenario_priority"
    assert [c.model for c in plan.candidates] == ["slow-cheap", "slow-cheap", "fast-pricey"]


def test_scenario_prefers_the_key_without_a_wait_within_an_entry():
    snapshot = {CandidateKey("cheapco", "slow-cheap", "c1"): _state(5.0, rate_limit_wait_seconds=2.0)}
    plan = plan_route(
        RouteRequest(RoutingMethod.SCENARIO, scenario="chain", max_wait_seconds=5), RouteTable.compile(CONFIG), snapshot
    )
    assert _names(plan)[:2] == [("slow-cheap", "c2"), ("slow-cheap", "c1")]


def test_direct_names_one_model_and_optionally_one_key():
    plan = plan_route(
        RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="mid"), RouteTable.compile(CONFIG), {}
    )
    assert plan.decision_reason == "direct" and {c.key_id for c in plan.candidates} == {"c1", "c2"}
    one = plan_route(
        RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="mid", key_id="c2"), RouteTable.compile(CONFIG), {}
    )
    assert _names(one) == [("mid", "c2")]


@pytest.mark.parametrize(
    "request_, error",
    [
        (RouteRequest(RoutingMethod.SCENARIO, scenario="nope"), UnknownScenario),
        (RouteRequest(RoutingMethod.DIRECT, provider="nope", model="mid"), UnknownProvider),
        (RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="nope"), UnknownModel),
        (RouteRequest(RoutingMethod.DIRECT, provider="cheapco", model="mid", key_id="nope"), UnknownKey),
    ],
)
def test_unknown_names_raise_404_errors(request_, error):
    with pytest.raises(error):
        plan_route(request_, RouteTable.compile(CONFIG), {})


def test_no_model_at_or_above_tier_raises_no_candidates():
    config = build_config({"openai": {"keys": {"k": {"api_key": "x"}}, "models": {"m": _model("low", 1)}}}, {}, {})
    with pytest.raises(NoCandidates):
        plan_route(
            RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.HIGH), RouteTable.compile(config), {}
        )


def test_open_circuit_is_skipped_and_flapping_is_ranked_last():
    snapshot = {
        CandidateKey("cheapco", "slow-cheap", "c1"): _state(
            5.0, is_closed=False, allows_request=False, open_reason=ErrorClass.SERVER
        ),
        CandidateKey("cheapco", "slow-cheap", "c2"): _state(5.0, is_flapping=True),
    }
    plan = plan_route(_low(), RouteTable.compile(CONFIG), snapshot)
    assert ("slow-cheap", "c1") not in _names(plan)
    assert [s.reason for s in plan.skipped] == ["circuit_open"]
    own_tier = [c for c in plan.candidates if "higher" not in c.reason]
    assert own_tier[-1].key_id == "c2"


def test_panic_mode_picks_the_circuit_that_recovers_soonest():
    keys = [
        CandidateKey("cheapco", "slow-cheap", "c1"),
        CandidateKey("cheapco", "slow-cheap", "c2"),
        CandidateKey("fastco", "fast-pricey", "f1"),
    ]
    snapshot = {
        key: _state(1.0, is_closed=False, allows_request=False, open_reason=ErrorClass.SERVER, open_until=100.0 + i)
        for i, key in enumerate(reversed(keys))
    }
    plan = plan_route(RouteRequest(RoutingMethod.SCENARIO, scenario="chain"), RouteTable.compile(CONFIG), snapshot)
    assert plan.decision_reason == "panic_mode"
    assert _names(plan) == [("fast-pricey", "f1")]


def test_no_panic_mode_when_a_key_is_open_for_auth():
    keys = [
        CandidateKey("cheapco", "slow-cheap", "c1"),
        CandidateKey("cheapco", "slow-cheap", "c2"),
        CandidateKey("fastco", "fast-pricey", "f1"),
    ]
    snapshot = {key: _state(1.0, is_closed=False, allows_request=False, open_reason=ErrorClass.AUTH) for key in keys}
    plan = plan_route(RouteRequest(RoutingMethod.SCENARIO, scenario="chain"), RouteTable.compile(CONFIG), snapshot)
    assert plan.candidates == ()


def test_fast_mode_uses_closed_circuits_only_and_fastest_first():
    snapshot = {CandidateKey("cheapco", "slow-cheap", "c1"): _state(5.0, is_closed=False)}
    plan = plan_route(_low(max_wait=100, fast_mode=True), RouteTable.compile(CONFIG), snapshot)
    assert plan.decision_reason == "fastest_available"
    assert plan.candidates[0].model == "fast-pricey"
    assert ("slow-cheap", "c1") not in _names(plan)


def test_reasons_are_typed_and_read_as_their_wire_text():
    plan = plan_route(
        _low(max_wait=2),
        RouteTable.compile(CONFIG),
        {CandidateKey("cheapco", "mid", "c1"): _state(1.0, is_closed=False, allows_request=False)},
    )
    assert plan.decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE
    assert {c.reason for c in plan.candidates} == {
        DecisionReason.CHEAPEST_WITHIN_ESTIMATE,
        DecisionReason.OUTSIDE_ESTIMATE,
        DecisionReason.CHEAPEST_WITHIN_ESTIMATE_HIGHER_TIER,
    }
    assert all(type(c.reason) is DecisionReason for c in plan.candidates)
    assert [s.reason for s in plan.skipped] == [SkipReason.CIRCUIT_OPEN]
    assert type(plan.skipped[0].reason) is SkipReason
    assert "'cheapest_within_estimate'" in repr(plan)


def test_when_nothing_fits_the_max_wait_every_candidate_is_ranked_fastest():
    plan = plan_route(_low(max_wait=0.2), RouteTable.compile(CONFIG), {})
    own_tier = [c for c in plan.candidates if c.model in ("slow-cheap", "fast-pricey")]
    assert [c.model for c in own_tier] == ["fast-pricey", "slow-cheap", "slow-cheap"]
    assert {c.reason for c in own_tier} == {DecisionReason.FASTEST_AVAILABLE}
    assert {c.reason for c in plan.candidates[3:]} == {DecisionReason.FASTEST_AVAILABLE_HIGHER_TIER}


def test_a_candidate_carries_its_live_state_by_field_name():
    state = _state(
        2.0, rate_limit_wait_seconds=0.5, queue_wait_seconds=0.25, used_in_minute=7, last_used=42.0, is_flapping=True
    )
    plan = plan_route(
        _low(max_wait=10), RouteTable.compile(CONFIG), {CandidateKey("cheapco", "slow-cheap", "c2"): state}
    )
    c2 = next(c for c in plan.candidates if c.key_id == "c2" and c.model == "slow-cheap")
    assert (c2.provider, c2.model, c2.key_id) == ("cheapco", "slow-cheap", "c2")
    assert (c2.rate_limit_wait_seconds, c2.queue_wait_seconds, c2.wait_seconds) == (0.5, 0.25, 0.75)
    assert (c2.expected_latency_seconds, c2.estimate_seconds) == (2.0, 2.75)
    assert (c2.used_in_minute, c2.last_used, c2.is_flapping, c2.rank) == (7, 42.0, True, 0)


def test_the_cost_estimate_is_the_one_cost_formula():
    plan = plan_route(_low(), RouteTable.compile(CONFIG), {})
    prices = {
        (name, model_name): (model.input_price_per_1k, model.output_price_per_1k)
        for name, provider in CONFIG.providers.items()
        for model_name, model in provider.models.items()
    }
    for c in plan.candidates:
        assert c.estimated_cost_usd == cost_usd(100, 100, *prices[(c.provider, c.model)])
    assert len({c.estimated_cost_usd for c in plan.candidates}) > 1


def test_the_panic_candidate_carries_its_cost_estimate():
    snapshot = {
        key: _state(1.0, is_closed=False, allows_request=False, open_reason=ErrorClass.TIMEOUT, open_until=200.0 - i)
        for i, key in enumerate(
            [
                CandidateKey("cheapco", "slow-cheap", "c1"),
                CandidateKey("cheapco", "slow-cheap", "c2"),
                CandidateKey("fastco", "fast-pricey", "f1"),
            ]
        )
    }
    plan = plan_route(
        RouteRequest(RoutingMethod.SCENARIO, scenario="chain", input_tokens_estimate=100, output_tokens_estimate=100),
        RouteTable.compile(CONFIG),
        snapshot,
    )
    model = CONFIG.providers["fastco"].models["fast-pricey"]
    assert [(c.key_id, c.reason, c.rank) for c in plan.candidates] == [("f1", DecisionReason.PANIC_MODE, 1)]
    assert plan.candidates[0].estimated_cost_usd == cost_usd(
        100, 100, model.input_price_per_1k, model.output_price_per_1k
    )
