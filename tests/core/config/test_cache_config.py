"""routing.json ``cache`` and ``cache_routes``: defaults, and a refusal naming the file, the path and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from bkvy.core.config.gateway import ConfigError, GatewayConfig, build_config

PROVIDERS = {
    "a": {"type": "openai", "base_url": "http://127.0.0.1:1", "keys": {"k": {"api_key": "x"}},
          "models": {"small": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1}}},
}  # fmt: skip
SCENARIOS = {"chat": [{"provider": "a", "model": "small", "priority": 1}]}


def _config(routing: dict[str, Any]) -> GatewayConfig:
    return build_config(PROVIDERS, {"scenarios": SCENARIOS, **routing}, {}, routing_file="routing.json")


def test_no_cache_block_has_the_defaults_and_no_routes() -> None:
    config = _config({})
    assert config.routing.cache.ttl_seconds == 300 and config.routing.cache.scope == "tenant"
    assert config.routing.cache_routes == {}


def test_cache_block_and_routes_validate() -> None:
    config = _config(
        {
            "cache": {"ttl_seconds": 60, "max_entries": 5, "max_bytes": 4096, "scope": "shared"},
            "cache_routes": {"low": True, "scenario:chat": False, "a/small": True},
        }
    )
    assert config.routing.cache.max_entries == 5 and config.routing.cache_routes["scenario:chat"] is False


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"cache_routes": {"lowest": True}}, "routing.json: cache_routes.lowest: unknown route 'lowest'. Fix:"),
        ({"cache_routes": {"scenario:nope": True}}, "cache_routes.scenario:nope: unknown scenario 'nope'. Fix:"),
        ({"cache_routes": {"a/big": True}}, "cache_routes.a/big: unknown model 'a/big'. Fix:"),
        ({"cache": {"ttl_seconds": 0}}, "cache.ttl_seconds"),
        ({"cache": {"max_entries": 0}}, "cache.max_entries"),
        ({"cache": {"scope": "global"}}, "cache.scope"),
        ({"cache": {"ttl": 5}}, "cache.ttl"),
    ],
)
def test_bad_cache_config_names_file_path_and_fix(routing: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(routing)
    assert expected in str(raised.value) and "routing.json" in str(raised.value)
