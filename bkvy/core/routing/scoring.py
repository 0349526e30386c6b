"""How much each objective counts when candidates are ranked by score (issue 18 §2): the ``Weights``, and the
one pure function that scores candidates with them.

``weights_for`` turns a request's or a route's ``optimize`` ("cost", "latency", "quality", "balanced", or explicit
weights) into ``Weights``; ``None`` stands for "cost", today's ranking (cheapest within the deadline), which
needs no score at all. ``score_candidates`` normalises each component to 0–1 relative to the best candidate
being ranked (1 = best) and sums them by the weights (docs/ROUTING.md "Quality-aware scoring").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from bkvy.models.optimize import OPTIMIZE_NAMES, WEIGHT_NAMES, check_optimize

if TYPE_CHECKING:
    from bkvy.core.routing.plan import RouteRequest
    from bkvy.models.optimize import Optimize


class Weights(NamedTuple):
    """How much each normalised component counts in a candidate's score; they sum to 1."""

    cost: float
    latency: float
    quality: float
    load: float
    health: float


OPTIMIZE_PRESETS: dict[str, Weights] = {
    "latency": Weights(cost=0.1, latency=0.7, quality=0.1, load=0.05, health=0.05),
    "quality": Weights(cost=0.1, latency=0.1, quality=0.7, load=0.05, health=0.05),
    "balanced": Weights(cost=0.3, latency=0.3, quality=0.3, load=0.05, health=0.05),
}
if ("cost", *OPTIMIZE_PRESETS) != OPTIMIZE_NAMES or Weights._fields != WEIGHT_NAMES:  # the wire's names
    raise TypeError("OPTIMIZE_PRESETS and Weights must match bkvy.models.optimize")

_new_tuple = tuple.__new__  # a NamedTuple from its fields in order, without its Python __new__ (as in plan.py)

# A circuit's health before normalisation: closed, half-open (a probe may go), flapping (opened and closed
# again recently). Half-open and flapping together take the lower.
HEALTH_CLOSED, HEALTH_HALF_OPEN, HEALTH_FLAPPING = 1.0, 0.5, 0.25


def weights_for(optimize: str | Mapping[str, float] | None) -> Weights | None:
    """The weights ``optimize`` names: None for "cost" (and for None); a preset by name; explicit weights
    (any of the five components, each ≥ 0, at least one > 0) normalised to sum 1. Raises ValueError with a
    message fit for a 400 or a ConfigError."""
    if optimize is None or optimize == "cost":
        return None
    checked = check_optimize(optimize)
    if isinstance(checked, str):
        return OPTIMIZE_PRESETS[checked]
    total = sum(checked.values())
    return Weights(*(checked.get(name, 0.0) / total for name in Weights._fields))


def with_weights(route: RouteRequest, optimize: Optimize | None, defaults: Mapping[str, Optimize]) -> RouteRequest:
    """``route`` with the weights of the request's ``optimize``, else of routing.json's ``optimize`` for its level
    (``"low"``...) or scenario (``"scenario:NAME"``); the request wins, and "cost" means today's ranking."""
    if optimize is None:
        if not defaults:  # nothing configured: the request pays one test
            return route
        optimize = defaults.get(route_optimize_key(route) or "")
        if optimize is None:
            return route
    return route._replace(weights=weights_for(optimize))


def route_optimize_key(route: RouteRequest) -> str | None:
    """routing.json's ``optimize`` key for ``route``: its level, or ``scenario:NAME``; None for direct routing."""
    if route.scenario is not None:
        return f"scenario:{route.scenario}"
    return route.level.value if route.level is not None else None


class ScoreInputs(NamedTuple):
    """One candidate's raw values: lower is better for cost, latency and load; higher for quality, health."""

    cost_usd: float
    latency_seconds: float  # its estimate: waits + expected latency
    quality: float  # 0–1, for the request's domain when it has one
    load: float  # requests its key and model started in the last minute
    health: float  # HEALTH_CLOSED, HEALTH_HALF_OPEN or HEALTH_FLAPPING
    is_default_quality: bool = False  # the model declares no quality: its tier's default


COST_FLOOR_USD = 1e-6  # a request's cost below this counts as this (a free model included)
LATENCY_FLOOR_SECONDS = 0.001  # an estimate below 1 ms counts as 1 ms


class ScoreBreakdown(NamedTuple):
    """A candidate's score (0–1, higher first) and its normalised components (each 0–1, 1 = best)."""

    score: float
    cost: float
    latency: float
    quality: float
    load: float
    health: float
    is_default_quality: bool

    def components(self) -> dict[str, float]:
        return {name: round(getattr(self, name), 4) for name in Weights._fields}


def score_candidates(weights: Weights, inputs: Sequence[ScoreInputs]) -> list[ScoreBreakdown]:
    """Each candidate's score, in the order given. A component is relative to the best candidate of
    ``inputs``: best / value for cost, latency and (1 + load); value / best for quality and health; so the
    best gets 1, all-equal values all get 1, and a single candidate gets 1 everywhere. Cost and latency are
    floored (``COST_FLOOR_USD``, ``LATENCY_FLOOR_SECONDS``) before the ratio, so a free or instant candidate
    does not leave every other one 0: below the floor counts as the floor."""
    if not inputs:
        return []
    costs, latencies, qualities, loads, healths, _ = zip(*inputs, strict=True)
    cheapest, soonest, least_load = min(costs), min(latencies), 1.0 + min(loads)
    best_quality, best_health = max(qualities), max(healths)
    w_cost, w_latency, w_quality, w_load, w_health = weights
    breakdowns = []
    for cost_usd, latency_seconds, quality_raw, load_raw, health_raw, is_default_quality in inputs:
        cost = _lower_is_better(cheapest, cost_usd, COST_FLOOR_USD)
        latency = _lower_is_better(soonest, latency_seconds, LATENCY_FLOOR_SECONDS)
        load = least_load / (1.0 + load_raw)
        quality = _higher_is_better(best_quality, quality_raw)
        health = _higher_is_better(best_health, health_raw)
        score = w_cost * cost + w_latency * latency + w_quality * quality + w_load * load + w_health * health
        breakdown = (score, cost, latency, quality, load, health, is_default_quality)
        breakdowns.append(_new_tuple(ScoreBreakdown, breakdown))
    return breakdowns


def _lower_is_better(best: float, value: float, floor: float) -> float:
    # Floored, so a free (or instant) best does not make every other candidate 0: best / value would be 0 / x.
    best, value = max(best, floor), max(value, floor)
    return 1.0 if value <= best else best / value


def _higher_is_better(best: float, value: float) -> float:
    return 1.0 if value >= best else value / best
