"""Routing strategies per route (issue 18 §3): routing.json ``"strategies"`` and the ``"adaptive"`` knobs.

A route is an intelligence level (``"low"``, ``"medium"``, ``"high"``) or a scenario (``"scenario:NAME"``); its
strategy is ``"cost"`` (today's ranking, the default) or ``"adaptive"`` (the bandit, ``core/routing/bandit.py``).
The arms of an adaptive route are the (provider, model) pairs it may route to: a level's models and those of every
tier above it (its fallback groups), or a scenario's entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bkvy.models.types import IntelligenceLevel

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig

COST = "cost"
ADAPTIVE = "adaptive"
STRATEGY_NAMES = (COST, ADAPTIVE)
SCENARIO_PREFIX = "scenario:"
MAX_ADAPTIVE_ROUTES = 64  # bounds the bandit's state: routes x arms posteriors at most
MAX_ARMS_PER_ROUTE = 64

Pair = tuple[str, str]  # (provider, model)


class AdaptiveKnobs(BaseModel):
    """routing.json ``"adaptive"``: how the bandit learns (docs/CONFIGURATION.md, "Adaptive choice")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discount: float = Field(default=0.98, gt=0.0, lt=1.0)  # per update of the route: memory ~ 1/(1-discount)
    cost_penalty: float = Field(default=0.2, ge=0.0, le=1.0)  # reward lost at cost_scale_usd (no request weights)
    latency_penalty: float = Field(default=0.3, ge=0.0, le=1.0)  # reward lost at latency_scale_seconds
    cost_scale_usd: float = Field(default=0.01, gt=0.0)  # a call costing this much (or more) takes the whole penalty
    latency_scale_seconds: float = Field(default=10.0, gt=0.0)  # an answer this slow takes the whole penalty
    sync_interval_seconds: float = Field(default=1.0, gt=0.0, le=60.0)  # REDIS_URL: exchange with the fleet


def route_key(level: IntelligenceLevel | None, scenario: str | None) -> str | None:
    """The strategies key of a request routed by ``level`` or ``scenario``; None for direct routing."""
    if scenario is not None:
        return SCENARIO_PREFIX + scenario
    return level.value if level is not None else None


def adaptive_arms(config: GatewayConfig) -> dict[str, tuple[Pair, ...]]:
    """Every adaptive route of ``config`` and its arms, in config order (empty when no route is adaptive)."""
    arms: dict[str, tuple[Pair, ...]] = {}
    for key, strategy in config.routing.strategies.items():
        if strategy != ADAPTIVE:
            continue
        if key.startswith(SCENARIO_PREFIX):
            entries = config.routing.scenarios.get(key[len(SCENARIO_PREFIX) :], [])
            pairs = [(entry.provider, entry.model) for entry in entries]
        else:
            rank = IntelligenceLevel(key).rank
            pairs = [
                (provider_name, model_name)
                for provider_name, provider in config.providers.items()
                for model_name, model in provider.models.items()
                if model.intelligence_tier is not None and model.intelligence_tier.rank >= rank
            ]
        arms[key] = tuple(dict.fromkeys(pairs))
    return arms


def strategy_problem(key: str, strategy: str, scenarios: set[str]) -> str | None:
    """Why ``"strategies": {key: strategy}`` is refused (with its fix), or None when it is valid."""
    if strategy not in STRATEGY_NAMES:
        return f"unknown strategy {strategy!r}. Fix: use one of {list(STRATEGY_NAMES)}"
    if key.startswith(SCENARIO_PREFIX):
        name = key[len(SCENARIO_PREFIX) :]
        if name not in scenarios:
            return f"unknown scenario {name!r}. Fix: use one of {sorted(scenarios)} after 'scenario:'"
        return None
    if key not in IntelligenceLevel._value2member_map_:
        levels = [level.value for level in IntelligenceLevel]
        return f"unknown route {key!r}. Fix: use a level ({', '.join(levels)}) or 'scenario:NAME'"
    return None


def strategy_problems(config: GatewayConfig) -> str | None:
    """The first refused ``"strategies"`` entry as ``"strategies.KEY: why. Fix: ..."``, or None."""
    scenarios = set(config.routing.scenarios)
    for key, strategy in config.routing.strategies.items():
        problem = strategy_problem(key, strategy, scenarios)
        if problem is not None:
            return f"strategies.{key}: {problem}"
    arms = adaptive_arms(config)
    if len(arms) > MAX_ADAPTIVE_ROUTES:
        return f"strategies: more than {MAX_ADAPTIVE_ROUTES} adaptive routes. Fix: make fewer routes adaptive"
    for key, pairs in arms.items():
        if len(pairs) > MAX_ARMS_PER_ROUTE:
            return (
                f"strategies.{key}: {len(pairs)} models, more than the {MAX_ARMS_PER_ROUTE} an adaptive route "
                "may choose between. Fix: use 'cost' here, or an adaptive scenario of fewer models"
            )
    return None
