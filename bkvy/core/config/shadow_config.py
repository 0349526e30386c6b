"""routing.json ``"shadow"`` (issue 20 §2): per route, the models that get a sampled copy of its requests.

Its shape is checked by pydantic (``ShadowRoute``); ``check_shadow_config`` checks what it refers to. Each problem
is a ValueError whose message starts with the JSON path and ends with the fix; ``gateway.py`` adds the file name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bkvy.core.config.scoring_config import check_chat_model
from bkvy.core.config.strategies import strategy_problem

if TYPE_CHECKING:
    from bkvy.core.config.gateway import ProviderConfig, RoutingConfig

MAX_SHADOW_MODELS = 8  # per route: each sampled request costs one call per shadow model


class ShadowRoute(BaseModel):
    """One route's shadows: ``models`` ("provider/model") and the share of its requests they get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = Field(min_length=1, max_length=MAX_SHADOW_MODELS)
    sample_percent: float = Field(ge=0.0, le=100.0)


def check_shadow_config(providers: dict[str, ProviderConfig], routing: RoutingConfig) -> None:
    """Each key is a level or ``scenario:NAME`` of this config; each model a configured chat model, listed once.
    Raises ValueError naming the JSON path and the fix."""
    scenarios = set(routing.scenarios)
    for key, route in routing.shadow.items():
        problem = strategy_problem(key, "cost", scenarios)  # the same route keys as "strategies"
        if problem is not None:
            raise ValueError(f"shadow.{key}: {problem}")
        for index, name in enumerate(route.models):
            check_chat_model(providers, name, f"shadow.{key}.models.{index}")
        if len(set(route.models)) != len(route.models):
            raise ValueError(f"shadow.{key}.models: a model is listed twice. Fix: list each model once")
