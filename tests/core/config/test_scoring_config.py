"""providers.json ``quality`` and routing.json ``optimize`` / ``domain_models``: a ConfigError naming the file,
the JSON path and the fix (issue 18 §2)."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import ConfigError, build_config

CHAT = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1}
EMBED = {"capabilities": ["embeddings"], "input_cost_per_1k": 0.01}


def _providers(quality: object = None) -> dict:
    chat = CHAT if quality is None else {**CHAT, "quality": quality}
    return {"openai": {"keys": {"k1": {"api_key": "x"}}, "models": {"gpt": chat, "emb": EMBED}}}


SCENARIOS = {"scenarios": {"support": [{"provider": "openai", "model": "gpt"}]}}


def _build(providers: dict, routing: dict) -> None:
    build_config(providers, routing, {}, providers_file="providers.json", routing_file="routing.json")


def test_valid_quality_optimize_and_domain_models_load() -> None:
    routing = {
        **SCENARIOS,
        "optimize": {"low": "quality", "scenario:support": {"cost": 1, "latency": 1}},
        "domain_models": {"code": ["openai/gpt"]},
    }
    config = build_config(_providers({"overall": 0.8, "code": 0.9}), routing, {})
    assert config.providers["openai"].models["gpt"].quality == {"overall": 0.8, "code": 0.9}
    assert config.routing.optimize["low"] == "quality"
    assert build_config(_providers(0.5), {}, {}).providers["openai"].models["gpt"].quality == 0.5


@pytest.mark.parametrize(
    ("quality", "fragment"),
    [
        (1.5, "openai.models.gpt.quality: Value error, quality must be between 0 and 1"),
        ({"overall": -0.1}, "quality.overall must be between 0 and 1"),
        ({"poetry": 0.5}, "unknown quality domain 'poetry'; use ['overall', 'code'"),
        ({}, 'give at least "overall"'),
        ("high", "quality must be a number"),
        (True, "quality must be a number"),
    ],
)
def test_bad_quality_names_the_path_and_the_fix(quality: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _build(_providers(quality), {})
    assert str(raised.value).startswith("providers.json: openai.models.gpt.quality")
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("routing", "fragment"),
    [
        ({"optimize": {"low": "cheapest"}}, "routing.json: optimize.low: Value error, optimize must be one of"),
        ({"optimize": {"low": {"speed": 1}}}, "routing.json: optimize.low: Value error, unknown weight 'speed'"),
        ({"optimize": {"low": {"cost": -1}}}, "must be between 0 and 1e+06"),
        ({"optimize": {"low": {"cost": 1e308, "latency": 1e308}}}, "must be between 0 and 1e+06"),
        ({"optimize": {"low": {"cost": 0}}}, "at least one weight must be above 0"),
        ({"optimize": {"auto": "quality"}}, "routing.json: optimize.auto: unknown key. Fix: use one of"),
        ({"optimize": {"scenario:nope": "quality"}}, "optimize.scenario:nope: unknown scenario 'nope'. Fix:"),
        ({"domain_models": {"poetry": ["openai/gpt"]}}, "routing.json: domain_models.poetry: unknown domain. Fix:"),
        ({"domain_models": {"code": ["openai/nope"]}}, "domain_models.code.0: 'openai/nope' is not a configured"),
        ({"domain_models": {"code": ["gpt"]}}, "Fix: use 'provider/model', one of ['openai/emb', 'openai/gpt']"),
        ({"domain_models": {"code": ["openai/emb"]}}, "'openai/emb' is an embedding model. Fix: list chat models"),
        ({"domain_models": {"code": "openai/gpt"}}, "routing.json: domain_models.code: Input should be a valid list"),
    ],
)
def test_bad_routing_scoring_names_the_path_and_the_fix(routing: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _build(_providers(), {**SCENARIOS, **routing})
    assert fragment in str(raised.value)
