"""Policy in the plan (issue 19): ``RouteRequest.allowed`` keeps ranking, failover, fast mode and panic inside
the allowed models; a tenant's ``preferred`` models come first among the fits. Snapshots built by hand."""

from __future__ import annotations

import pytest

from bkvy.core.routing.plan import CandidateKey, CandidateState, plan_route
from bkvy.models.errors import PolicyNoCandidate
from bkvy.models.outcomes import DecisionReason
from bkvy.models.types import ErrorClass
from tests.core.routing.test_score_rank import TABLE, _low, _models

ALLOWED = frozenset({("acme", "smart"), ("acme", "big")})


def _open(model: str, reason: ErrorClass = ErrorClass.SERVER) -> dict[CandidateKey, CandidateState]:
    state = CandidateState(1.0, is_closed=False, allows_request=False, open_reason=reason, open_until=5.0)
    return {CandidateKey("acme", model, key): state for key in ("a1", "a2")}


def test_only_allowed_models_are_ranked_in_every_tier() -> None:
    assert _models(plan_route(_low()._replace(allowed=ALLOWED), TABLE, {})) == ["smart", "big"]
    fast = _low()._replace(allowed=ALLOWED, fast_mode=True)
    assert _models(plan_route(fast, TABLE, {})) == ["smart", "big"]


def test_panic_mode_stays_inside_the_allowed_set() -> None:
    snapshot = {**_open("smart"), **_open("big")}
    plan = plan_route(_low()._replace(allowed=ALLOWED), TABLE, snapshot)
    assert plan.decision_reason is DecisionReason.PANIC_MODE
    assert {c.model for c in plan.candidates} <= {"smart", "big"}


def test_nothing_allowed_raises_policy_no_candidate() -> None:
    with pytest.raises(PolicyNoCandidate):
        plan_route(_low()._replace(allowed=frozenset({("other", "x")})), TABLE, {})


def test_tenant_preferred_models_come_first_among_the_fits() -> None:
    plan = plan_route(_low()._replace(preferred=(("acme", "smart"),)), TABLE, {})
    assert _models(plan) == ["smart", "cheap", "fast", "big"]
    assert plan.decision_reason is DecisionReason.TENANT_PREFERRED
    late = plan_route(_low(max_wait=2.5)._replace(preferred=(("acme", "smart"),)), TABLE, {})
    assert late.candidates[0].model == "cheap"  # smart's 4 s estimate does not fit: preference reorders the fits


def test_tenant_preferred_models_come_first_on_adaptive_routes_and_scenarios() -> None:
    from bkvy.core.config.gateway import build_config
    from bkvy.core.routing.plan import RouteRequest
    from bkvy.core.routing.route_table import RouteTable
    from bkvy.models.types import IntelligenceLevel, RoutingMethod

    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 1.0}
    providers = {"oai": {"type": "openai", "keys": {"k": {"api_key": "x"}}, "models": {"a": model, "b": model}}}
    chain = [{"provider": "oai", "model": "a", "priority": 1}, {"provider": "oai", "model": "b", "priority": 2}]
    table = RouteTable.compile(build_config(providers, {"scenarios": {"s": chain}}, {}))
    prefer_b = (("oai", "b"),)
    adaptive = RouteRequest(
        RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, preferred=prefer_b,
        samples={("oai", "a"): 0.9, ("oai", "b"): 0.1},
    )  # fmt: skip
    scenario = RouteRequest(RoutingMethod.SCENARIO, scenario="s", preferred=prefer_b)
    for request in (adaptive, scenario):
        plan = plan_route(request, table, {})
        assert [c.model for c in plan.candidates] == ["b", "a"]
        assert plan.decision_reason is DecisionReason.TENANT_PREFERRED
    assert [c.model for c in plan_route(adaptive._replace(preferred=()), table, {}).candidates] == ["a", "b"]
