"""config/policy.json (issue 19): loaded beside providers.json, validated with the file, JSON path and fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bkvy.core.config.gateway import ConfigError, build_config, load_config
from bkvy.core.policy.engine import PolicyEngine

MODEL = {"cost_per_1k_tokens": 0.001, "intelligence_tier": "low"}
PROVIDERS = {
    "openai": {"keys": {"k": {"api_key": "x"}}, "models": {"gpt": {**MODEL, "region": "us"}}},
    "ollama": {"models": {"llama": {**MODEL, "region": "on-prem"}}},
    "vllm": {
        "type": "openai_compatible",
        "base_url": "http://127.0.0.1:1",
        "models": {"q": {**MODEL, "private": True}},
    },
}
ROUTING = {"scenarios": {"support": [{"provider": "openai", "model": "gpt"}]}}


def _write(tmp_path: Path, policy: Any) -> Path:
    (tmp_path / "providers.json").write_text(json.dumps(PROVIDERS))
    (tmp_path / "routing.json").write_text(json.dumps(ROUTING))
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    return tmp_path


def _rule(**overrides: Any) -> dict[str, Any]:
    return {"name": "r1", "match": {"pii": True}, "action": "require_private", **overrides}


def test_no_policy_file_means_no_policy(tmp_path: Path) -> None:
    (tmp_path / "providers.json").write_text(json.dumps(PROVIDERS))
    assert load_config(tmp_path, {}).policy is None


def test_policy_file_loads_with_the_config(tmp_path: Path) -> None:
    residency = {"name": "eu", "source_regions": ["eu"], "allowed_model_regions": ["on-prem"]}
    config = load_config(
        _write(tmp_path, {"rules": [_rule(scope={"scenarios": ["support"]})], "residency": [residency]})
    )
    assert config.policy is not None
    assert [rule.name for rule in config.policy.rules] == ["r1"]
    assert config.policy.residency[0].allowed_model_regions == ("on-prem",)


def test_private_defaults_to_ollama_and_is_settable() -> None:
    engine = PolicyEngine.compile(build_config(PROVIDERS, ROUTING, {}))
    places = {(m.provider, m.model): (m.is_private, m.region) for m in engine.models}
    assert places == {
        ("openai", "gpt"): (False, "us"),
        ("ollama", "llama"): (True, "on-prem"),
        ("vllm", "q"): (True, None),
    }


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"rules": [_rule(), _rule()]}, "rule name 'r1' is used twice"),
        ({"rules": [_rule(action="shout")]}, "rules.0.action"),
        ({"rules": [_rule(match={"pii_kinds": ["dna"]})]}, "rules.0.match.pii_kinds.0"),
        ({"rules": [_rule(match={"data_class": "secretish"})]}, "rules.0.match.data_class"),
        ({"rules": [_rule(match={})]}, "give exactly one of"),
        ({"rules": [_rule(scope={"scenarios": ["nope"]})]}, "rules.0.scope.scenarios: unknown scenario 'nope'"),
        ({"rules": [_rule(scope={"levels": ["huge"]})]}, "rules.0.scope.levels.0"),
        ({"rules": [_rule(allowed_regions=["eu"])]}, "rules.0.allowed_regions: only a"),
        ({"rules": [_rule(colour="red")]}, "rules.0.colour"),
        (
            {
                "residency": [
                    {
                        "name": "x",
                        "source_regions": ["eu"],
                        "allowed_model_regions": ["eu"],
                        "blocked_providers": ["acme"],
                    }
                ]
            },
            "residency.0.blocked_providers: unknown provider 'acme'",
        ),
    ],
)
def test_invalid_policy_names_file_path_and_fix(tmp_path: Path, policy: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, policy))
    assert "policy.json" in str(caught.value)
    assert fragment in str(caught.value)


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    _write(tmp_path, {})
    (tmp_path / "policy.json").write_text('{"rules": [}')
    with pytest.raises(ConfigError, match=r"policy.json: invalid JSON at line 1 column"):
        load_config(tmp_path)


def test_example_policy_is_valid_against_the_example_providers(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "config"
    for name in ("providers", "routing", "policy"):
        shutil.copy(root / f"{name}.example.json", tmp_path / f"{name}.json")
    environ = {v: "x" for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY")}
    config = load_config(tmp_path, environ)
    assert config.policy is not None and config.policy.residency
