"""routing.json "strategies" and "adaptive": what validates, what is refused (file, JSON path, fix)."""

from __future__ import annotations

from typing import Any

import pytest

from bkvy.core.config.gateway import ConfigError, GatewayConfig, build_config
from bkvy.core.config.strategies import MAX_ARMS_PER_ROUTE, adaptive_arms, route_key
from bkvy.models.types import IntelligenceLevel


def _model(tier: str) -> dict[str, Any]:
    return {"intelligence_tier": tier, "cost_per_1k_tokens": 0.1}


PROVIDERS = {
    "a": {"type": "openai", "base_url": "http://127.0.0.1:1", "keys": {"k": {"api_key": "x"}},
          "models": {"small": _model("low"), "mid": _model("medium"), "big": _model("high")}},
    "b": {"type": "anthropic", "base_url": "http://127.0.0.1:2", "keys": {"k": {"api_key": "y"}},
          "models": {"tiny": _model("low")}},
}  # fmt: skip
SCENARIOS = {"chat": [{"provider": "b", "model": "tiny", "priority": 1}, {"provider": "a", "model": "small"}]}


def _config(routing: dict[str, Any], providers: dict[str, Any] | None = None) -> GatewayConfig:
    return build_config(providers or PROVIDERS, {"scenarios": SCENARIOS, **routing}, {}, routing_file="routing.json")


def test_no_strategies_is_cost_everywhere_with_default_knobs() -> None:
    config = _config({})
    assert config.routing.strategies == {}
    assert adaptive_arms(config) == {}
    assert config.routing.adaptive.discount == 0.98


def test_adaptive_routes_list_their_arms() -> None:
    config = _config({"strategies": {"medium": "adaptive", "scenario:chat": "adaptive", "low": "cost"}})
    assert adaptive_arms(config) == {
        "medium": (("a", "mid"), ("a", "big")),  # its tier and every tier above: its fallback groups
        "scenario:chat": (("b", "tiny"), ("a", "small")),
    }


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [
        ({"low": "greedy"}, "routing.json: strategies.low: unknown strategy 'greedy'. Fix: use one of"),
        ({"auto": "adaptive"}, "routing.json: strategies.auto: unknown route 'auto'. Fix: use a level"),
        ({"scenario:nope": "adaptive"}, "routing.json: strategies.scenario:nope: unknown scenario 'nope'. Fix:"),
    ],
)
def test_unknown_level_scenario_or_strategy_is_refused(strategies: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        _config({"strategies": strategies})
    assert str(error.value).startswith(expected)


@pytest.mark.parametrize(
    ("knobs", "path"),
    [
        ({"discount": 1.0}, "adaptive.discount"),
        ({"discount": 0}, "adaptive.discount"),
        ({"cost_penalty": 1.5}, "adaptive.cost_penalty"),
        ({"latency_scale_seconds": 0}, "adaptive.latency_scale_seconds"),
        ({"sync_interval_seconds": 0}, "adaptive.sync_interval_seconds"),
        ({"epsilon": 0.1}, "adaptive.epsilon"),
    ],
)
def test_bad_knobs_are_refused_naming_their_path(knobs: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=f"^routing.json: {path}: "):
        _config({"adaptive": knobs})


def test_too_many_arms_on_one_adaptive_route_is_refused() -> None:
    models = {f"m{i}": _model("low") for i in range(MAX_ARMS_PER_ROUTE + 1)}
    providers = {"a": {**PROVIDERS["a"], "models": models}}
    with pytest.raises(ConfigError, match=r"strategies\.low: 65 models.*Fix: use 'cost'"):
        build_config(providers, {"strategies": {"low": "adaptive"}}, {}, routing_file="routing.json")


def test_route_key_names_a_level_or_a_scenario() -> None:
    assert route_key(IntelligenceLevel.HIGH, None) == "high"
    assert route_key(None, "chat") == "scenario:chat"
    assert route_key(None, None) is None
