"""How much each objective counts when candidates are ranked by score (issue 18 §2): the ``Weights``.

``weights_for`` turns a request's or a route's ``optimize`` ("cost", "latency", "quality", "balanced", or explicit
weights) into ``Weights``; ``None`` stands for "cost", today's ranking (cheapest within the deadline), which
needs no score at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


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
OPTIMIZE_NAMES = ("cost", *OPTIMIZE_PRESETS)


def weights_for(optimize: str | Mapping[str, float] | None) -> Weights | None:
    """The weights ``optimize`` names: None for "cost" (and for None); a preset by name; explicit weights
    (any of the five components, each ≥ 0, at least one > 0) normalised to sum 1. Raises ValueError with a
    message fit for a 400 or a ConfigError."""
    if optimize is None or optimize == "cost":
        return None
    if isinstance(optimize, str):
        preset = OPTIMIZE_PRESETS.get(optimize)
        if preset is None:
            raise ValueError(f"optimize must be one of {list(OPTIMIZE_NAMES)} or an object of weights")
        return preset
    unknown = set(optimize) - set(Weights._fields)
    if unknown:
        raise ValueError(f"unknown weight {sorted(unknown)[0]!r}; weights are {list(Weights._fields)}")
    values = {name: float(optimize.get(name, 0.0)) for name in Weights._fields}
    if any(value < 0 for value in values.values()):
        raise ValueError("weights must not be negative")
    total = sum(values.values())
    if total <= 0:
        raise ValueError("at least one weight must be above 0")
    return Weights(**{name: value / total for name, value in values.items()})
