"""The ``embeddings`` capability in providers.json: what an embedding model needs, and what it may not have."""

from __future__ import annotations

from typing import Any

import pytest

from bkvy.core.config.gateway import ConfigError, build_config

CHAT = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1}
EMBED = {"capabilities": ["embeddings"], "input_cost_per_1k": 0.00002}


def _build(models: dict[str, Any], *, provider_type: str = "openai", routing: dict | None = None):
    providers = {"p": {"type": provider_type, "base_url": "http://127.0.0.1:1", "keys": {"k": {"api_key": "x"}}}}
    providers["p"]["models"] = models
    return build_config(providers, routing or {}, {})


def test_an_embedding_model_needs_no_tier_and_only_an_input_price() -> None:
    model = _build({"emb": EMBED, "chat": CHAT}).providers["p"].models["emb"]
    assert model.is_embedding_model and model.intelligence_tier is None
    assert (model.input_price_per_1k, model.output_price_per_1k) == (0.00002, 0.0)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"cost_per_1k_tokens": 0.1}, "intelligence_tier is required"),
        ({**EMBED, "intelligence_tier": "low"}, "takes no intelligence_tier"),
        ({**EMBED, "capabilities": ["embeddings", "tools"]}, "only capability"),
        ({**EMBED, "supports_thinking": True}, "only capability"),
        ({"capabilities": ["embeddings"]}, "give input_cost_per_1k"),
        ({**EMBED, "capabilities": ["embedding"]}, "capabilities"),
    ],
)
def test_wrong_models_are_refused_naming_the_path(model: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _build({"m": model})
    assert "p.models.m" in str(raised.value) and words in str(raised.value)


def test_anthropic_has_no_embeddings_api() -> None:
    with pytest.raises(ConfigError) as raised:
        _build({"emb": EMBED, "chat": CHAT}, provider_type="anthropic")
    assert "anthropic has no embeddings API" in str(raised.value)


@pytest.mark.parametrize("provider_type", ["openai", "openai_compatible", "gemini", "ollama"])
def test_every_other_type_embeds(provider_type: str) -> None:
    assert _build({"emb": EMBED}, provider_type=provider_type).providers["p"].models["emb"].is_embedding_model


def test_a_scenario_mixing_chat_and_embedding_models_is_refused() -> None:
    routing = {"scenarios": {"mixed": [{"provider": "p", "model": "chat"}, {"provider": "p", "model": "emb"}]}}
    with pytest.raises(ConfigError) as raised:
        _build({"emb": EMBED, "chat": CHAT}, routing=routing)
    assert "scenarios.mixed.1.model" in str(raised.value) and "Fix" in str(raised.value)
