"""config/tenants.json (issue 19 §3): validated once; every error names the file, the JSON path and a fix."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import ConfigError, build_config
from bkvy.core.config.tenants import check_tenants, tenant_rules
from bkvy.models.policy import DataClass

MODELS = {"openai/gpt-4o-mini", "ollama/llama3"}
PROVIDERS = {
    "openai": {
        "type": "openai",
        "base_url": "http://127.0.0.1:9",
        "keys": {"k1": {"api_key": "sk-test"}},
        "models": {"gpt-4o-mini": {"input_cost_per_1k": 0.1, "output_cost_per_1k": 0.2, "intelligence_tier": "low"}},
    }
}


def test_a_full_tenant_validates_into_its_rules() -> None:
    tenants = check_tenants(
        {
            "acme": {
                "name": "Acme",
                "monthly_budget_usd": 100,
                "alert_threshold_percent": 80,
                "allowed_models": ["openai/gpt-4o-mini", "ollama/llama3"],
                "blocked_models": ["ollama/llama3"],
                "preferred_models": ["openai/gpt-4o-mini"],
                "allowed_regions": ["eu-west-1"],
                "allowed_data_classes": ["internal", "confidential"],
                "policy": ["pii-to-private"],
                "rpm": 60,
                "tpm": 100000,
            }
        },
        MODELS,
        "tenants.json",
    )
    rules = tenant_rules("acme", tenants["acme"])
    assert rules.allowed_models == frozenset(MODELS) and rules.blocked_models == frozenset({"ollama/llama3"})
    assert rules.preferred_models == ("openai/gpt-4o-mini",) and rules.allowed_regions == frozenset({"eu-west-1"})
    assert rules.allowed_data_classes == frozenset({DataClass.INTERNAL, DataClass.CONFIDENTIAL})
    assert rules.policy == ("pii-to-private",)
    assert tenant_rules("bare", check_tenants({"bare": {}}, MODELS, "t")["bare"]).allowed_models is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], "tenants.json: must be an object of tenants"),
        ({"a b": {}}, "tenants.json: 'a b': tenant ids use"),
        ({"acme": {"rpm": 0}}, "tenants.json: acme.rpm: Input should be greater than or equal to 1. Fix:"),
        ({"acme": {"rpm": "10"}}, "tenants.json: acme.rpm:"),
        ({"acme": {"colour": "red"}}, "tenants.json: acme.colour: Extra inputs are not permitted"),
        (
            {"acme": {"allowed_models": ["gpt-4o"]}},
            "tenants.json: acme.allowed_models: 'gpt-4o' is not 'provider/model'",
        ),
        ({"acme": {"preferred_models": ["openai/gpt-5"]}}, "acme.preferred_models: 'openai/gpt-5' is not a configured"),
        ({"acme": {"allowed_data_classes": ["secret"]}}, "tenants.json: acme.allowed_data_classes.0:"),
        ({"acme": {"alert_threshold_percent": 120}}, "tenants.json: acme.alert_threshold_percent:"),
        ({"acme": {"policy": ["has space"]}}, "acme.policy: 'has space' is not a rule name"),
    ],
)
def test_invalid_tenants_name_file_path_and_fix(raw: object, expected: str) -> None:
    with pytest.raises(ValueError) as error:
        check_tenants(raw, MODELS, "tenants.json")
    assert expected in str(error.value)


def test_build_config_raises_config_error_and_defaults_to_no_tenants() -> None:
    assert build_config(PROVIDERS, {}, {}).tenants == {}
    assert build_config(PROVIDERS, {}, {}, tenants_raw={"acme": {}}).tenants["acme"].rpm is None
    with pytest.raises(ConfigError, match=r"^/etc/bkvy/tenants.json: acme.allowed_models: 'x/y' is not a configured"):
        build_config(
            PROVIDERS, {}, {}, tenants_raw={"acme": {"allowed_models": ["x/y"]}}, tenants_file="/etc/bkvy/tenants.json"
        )


def _write_config(tmp_path, tenants: dict, policy: dict | None) -> None:
    import json

    (tmp_path / "providers.json").write_text(json.dumps(PROVIDERS))
    (tmp_path / "tenants.json").write_text(json.dumps(tenants))
    if policy is not None:
        (tmp_path / "policy.json").write_text(json.dumps(policy))


def test_a_tenants_policy_names_rules_of_policy_json(tmp_path) -> None:
    from bkvy.core.config.gateway import load_config

    rule = {"name": "pii-to-private", "match": {"pii": True}, "action": "block"}
    _write_config(tmp_path, {"acme": {"policy": ["pii-to-private"]}}, {"rules": [rule]})
    assert load_config(tmp_path, {}).tenants["acme"].policy == ("pii-to-private",)
    _write_config(tmp_path, {"acme": {"policy": ["no-such-rule"]}}, {"rules": [rule]})
    with pytest.raises(ConfigError, match=r"tenants.json: acme.policy: unknown rule 'no-such-rule'. Fix: use one of"):
        load_config(tmp_path, {})
    (tmp_path / "policy.json").unlink()
    with pytest.raises(ConfigError, match=r"acme.policy: unknown rule 'no-such-rule'.*there is none"):
        load_config(tmp_path, {})


def test_a_tenants_default_data_class_is_one_it_allows() -> None:
    tenants = check_tenants({"acme": {"data_class": "confidential"}}, MODELS, "tenants.json")
    assert tenant_rules("acme", tenants["acme"]).data_class is DataClass.CONFIDENTIAL
    with pytest.raises(ValueError, match="not in allowed_data_classes"):
        check_tenants({"acme": {"data_class": "restricted", "allowed_data_classes": ["public"]}}, MODELS, "t.json")
