"""Embedding models are never candidates for chat, and chat models never for embeddings."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import build_config
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.errors import NotAChatModel, NotAnEmbeddingModel
from bkvy.models.types import IntelligenceLevel, RoutingMethod

PROVIDERS = {
    "openai": {
        "keys": {"k1": {"api_key": "x"}, "k2": {"api_key": "y"}},
        "models": {
            "gpt": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1},
            "emb": {"capabilities": ["embeddings"], "input_cost_per_1k": 0.01},
        },
    }
}
ROUTING = {
    "scenarios": {"chat": [{"provider": "openai", "model": "gpt"}], "index": [{"provider": "openai", "model": "emb"}]}
}
TABLE = RouteTable.compile(build_config(PROVIDERS, ROUTING, {}))


def _models(groups) -> set[str]:
    return {entry.key.model for group in groups for entry in group}


def test_tiers_hold_chat_models_only() -> None:
    assert TABLE.tiers.keys() == {IntelligenceLevel.LOW.rank}
    assert _models(TABLE.groups_for(RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW))) == {"gpt"}


def test_embeddings_get_the_embedding_model_by_name_or_scenario_on_every_key() -> None:
    direct = TABLE.groups_for(RouteRequest(RoutingMethod.DIRECT, provider="openai", model="emb", wants_embeddings=True))
    assert {entry.key.key_id for entry in direct[0]} == {"k1", "k2"}
    scenario = TABLE.groups_for(RouteRequest(RoutingMethod.SCENARIO, scenario="index", wants_embeddings=True))
    assert _models(scenario) == {"emb"}


@pytest.mark.parametrize(
    "request_",
    [
        RouteRequest(RoutingMethod.DIRECT, provider="openai", model="gpt", wants_embeddings=True),
        RouteRequest(RoutingMethod.SCENARIO, scenario="chat", wants_embeddings=True),
        RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.MEDIUM, wants_embeddings=True),
    ],
)
def test_chat_models_and_levels_are_refused_for_embeddings(request_: RouteRequest) -> None:
    with pytest.raises(NotAnEmbeddingModel):
        TABLE.groups_for(request_)


@pytest.mark.parametrize(
    "request_",
    [
        RouteRequest(RoutingMethod.DIRECT, provider="openai", model="emb"),
        RouteRequest(RoutingMethod.SCENARIO, scenario="index"),
    ],
)
def test_an_embedding_model_is_refused_for_chat(request_: RouteRequest) -> None:
    with pytest.raises(NotAChatModel):
        TABLE.groups_for(request_)
