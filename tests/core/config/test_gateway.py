"""Config validation: one clear message naming the file, the JSON path and the fix."""

from __future__ import annotations

import json

import pytest

from bkvy.core.config.gateway import ConfigError, build_config, load_config
from bkvy.core.config.settings import load_settings
from bkvy.models.types import ProviderType

MODEL = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1}


def _providers(**overrides) -> dict:
    base = {
        "openai": {
            "keys": {"openai_key_1": {"api_key": "${OPENAI_API_KEY}", "rate_limits": {"gpt": {"rpm": 10}}}},
            "models": {"gpt": MODEL},
        }
    }
    base["openai"].update(overrides)
    return base


def test_type_and_base_url_are_implied_by_the_provider_name():
    config = build_config(_providers(), {}, {"OPENAI_API_KEY": "secret"})
    provider = config.providers["openai"]
    assert provider.type is ProviderType.OPENAI and provider.base_url == "https://api.openai.com"
    assert provider.keys["openai_key_1"].api_key == "secret"


def test_missing_env_variable_names_the_field_and_the_fix():
    with pytest.raises(ConfigError) as raised:
        build_config(_providers(), {}, {})
    message = str(raised.value)
    assert "openai.keys.openai_key_1.api_key" in message and "OPENAI_API_KEY" in message and "Fix" in message


@pytest.mark.parametrize(
    "providers, fragment",
    [
        ({"mystery": {"keys": {"k": {"api_key": "x"}}, "models": {"m": MODEL}}}, "mystery.type"),
        ({"vllm": {"type": "openai_compatible", "models": {"m": MODEL}}}, "vllm.base_url"),
        (
            _providers(models={"gpt": {"intelligence_tier": "genius", "cost_per_1k_tokens": 1}}),
            "openai.models.gpt.intelligence_tier",
        ),
        (_providers(models={"gpt": {"intelligence_tier": "low"}}), "cost_per_1k_tokens"),
        (_providers(base_url="ftp://x"), "openai.base_url"),
        (_providers(keys={}), "openai.keys"),
        (_providers(keys={"k": {"api_key": "x", "rate_limits": {"other": {"rpm": 1}}}}), "rate_limits"),
        (_providers(keys={"k": {"api_key": "x", "rate_limits": {"gpt": {"rpm": 0}}}}), "rpm"),
        (_providers(models={"gpt": {**MODEL, "endpoint": "http://evil/x"}}), "endpoint"),
        ({}, "non-empty"),
    ],
)
def test_invalid_provider_config_names_the_json_path(providers, fragment):
    with pytest.raises(ConfigError) as raised:
        build_config(providers, {}, {"OPENAI_API_KEY": "x"})
    assert fragment in str(raised.value)
    assert str(raised.value).startswith("providers.json")


def test_scenario_with_unknown_model_names_the_entry():
    routing = {"scenarios": {"s": [{"provider": "openai", "model": "nope", "priority": 1}]}}
    with pytest.raises(ConfigError) as raised:
        build_config(_providers(), routing, {"OPENAI_API_KEY": "x"})
    assert "routing.json: scenarios.s.0.model" in str(raised.value)


def test_ollama_needs_no_key():
    config = build_config({"ollama": {"models": {"llama": MODEL}}}, {}, {})
    assert config.providers["ollama"].keys["default"].api_key == ""


def test_load_config_reports_bad_json_with_line_and_column(tmp_path):
    (tmp_path / "providers.json").write_text('{"openai": ', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, {})
    assert "providers.json: invalid JSON at line 1" in str(raised.value)


def test_load_config_reports_a_missing_file_with_the_fix(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, {})
    assert "providers.example.json" in str(raised.value)


def test_example_config_is_valid(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "config"
    for name in ("providers", "routing"):
        (tmp_path / f"{name}.json").write_text((root / f"{name}.example.json").read_text())
    environ = {v: "x" for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY")}
    config = load_config(tmp_path, environ)
    assert config.routing.scenarios
    assert json.loads((root / "providers.example.json").read_text())


def test_settings_read_spec_variables_with_defaults():
    settings = load_settings(
        {"CIRCUIT_FAILURE_THRESHOLD": "4", "DASHBOARD_ALLOWED_IPS": "10.0.0.0/8, ::1", "TRANSACTION_LOGGING": "true"}
    )
    assert settings.circuit_failure_threshold == 4 and settings.transaction_logging
    assert settings.dashboard_allowed_ips == ("10.0.0.0/8", "::1")
    assert settings.port == 10006 and settings.request_hard_timeout_seconds == 120


@pytest.mark.parametrize(
    "environ, variable",
    [({"TRANSACTION_LOGGING": "maybe"}, "TRANSACTION_LOGGING"), ({"BKVY_PORT": "99999"}, "BKVY_PORT")],
)
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    assert variable in str(raised.value)
