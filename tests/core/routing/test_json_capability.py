"""A json_schema response_format routes only to models with the "json" capability (issue 14, defect 3)."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import build_config
from bkvy.core.routing.plan import RouteRequest, plan_route
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.errors import UnsupportedResponseFormat
from bkvy.models.types import IntelligenceLevel, RoutingMethod


def _model(tier: str, cost: float, *capabilities: str) -> dict:
    return {"intelligence_tier": tier, "cost_per_1k_tokens": cost, "capabilities": list(capabilities)}


TABLE = RouteTable.compile(
    build_config(
        {
            "p": {
                "type": "openai",
                "base_url": "http://127.0.0.1:1",
                "keys": {"k": {"api_key": "x"}},
                "models": {
                    "cheap": _model("low", 0.1),
                    "cheap-json": _model("low", 0.5, "json", "tools"),
                    "mid": _model("medium", 1.0),
                    "big-json": _model("high", 5.0, "json"),
                },
            }
        },
        {"scenarios": {"plain": [{"provider": "p", "model": "cheap"}, {"provider": "p", "model": "mid"}]}},
        {},
    )
)


def _models(request: RouteRequest) -> list[str]:
    return [c.model for c in plan_route(request, TABLE, {}).candidates]


def test_without_a_schema_every_model_is_a_candidate() -> None:
    request = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)
    assert _models(request) == ["cheap", "cheap-json", "mid", "big-json"]


def test_a_schema_keeps_only_json_models_in_tier_order() -> None:
    request = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW, needs_json=True)
    assert _models(request) == ["cheap-json", "big-json"]
    medium = request._replace(level=IntelligenceLevel.MEDIUM)
    assert _models(medium) == ["big-json"]  # its own tier has none: a higher one serves


@pytest.mark.parametrize(
    "request_",
    [
        RouteRequest(RoutingMethod.DIRECT, provider="p", model="cheap", needs_json=True),
        RouteRequest(RoutingMethod.SCENARIO, scenario="plain", needs_json=True),
    ],
)
def test_no_json_model_left_is_400_unsupported_response_format(request_: RouteRequest) -> None:
    with pytest.raises(UnsupportedResponseFormat) as raised:
        plan_route(request_, TABLE, {})
    assert raised.value.status == 400 and raised.value.code == "unsupported_response_format"


def test_a_direct_json_model_is_kept() -> None:
    assert _models(RouteRequest(RoutingMethod.DIRECT, provider="p", model="big-json", needs_json=True)) == ["big-json"]
