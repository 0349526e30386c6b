"""What ``optimize`` and a model's ``quality`` may be (issue 18 §2): one rule each, for request bodies
(400/422) and for providers.json / routing.json (ConfigError) alike.

``core.routing.scoring.weights_for`` turns a checked ``optimize`` into ``Weights``; this module only says what
is valid, so that the schemas (models) and the config (core.config) can both use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

# The classifier's domains (issue 18 §1); a model's quality may be given per domain.
DOMAINS = ("code", "math", "reasoning", "creative", "extraction", "chat")
OPTIMIZE_NAMES = ("cost", "latency", "quality", "balanced")
WEIGHT_NAMES = ("cost", "latency", "quality", "load", "health")
_OPTIMIZE_HELP = f"optimize must be one of {list(OPTIMIZE_NAMES)} or an object of weights {list(WEIGHT_NAMES)}"


_MAX_WEIGHT = 1e6  # weights are normalised to sum 1: a larger one adds nothing (and their sum could overflow)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number")
    return float(value)


def check_optimize(value: object) -> str | dict[str, float]:
    """``value`` as a preset name or a mapping of weights (each ≥ 0, at least one > 0; not yet normalised).
    Raises ValueError with a message fit for a 422 or a ConfigError."""
    if isinstance(value, str):
        if value not in OPTIMIZE_NAMES:
            raise ValueError(_OPTIMIZE_HELP)
        return value
    if not isinstance(value, Mapping):
        raise ValueError(_OPTIMIZE_HELP)
    unknown = set(value) - set(WEIGHT_NAMES)
    if unknown:
        raise ValueError(f"unknown weight {sorted(map(str, unknown))[0]!r}; weights are {list(WEIGHT_NAMES)}")
    weights = {name: _number(weight, f"weight {name!r}") for name, weight in value.items()}
    if any(weight < 0 or weight > _MAX_WEIGHT for weight in weights.values()):
        raise ValueError(f"weights must be between 0 and {_MAX_WEIGHT:g} (only their ratios count)")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one weight must be above 0")
    return weights


def check_quality(value: object) -> float | dict[str, float]:
    """A model's quality: a number in 0–1, or ``{"overall": x, "<domain>": y, ...}`` (each 0–1, domains from
    ``DOMAINS``). Raises ValueError naming the fix."""
    if not isinstance(value, Mapping):
        return _unit(_number(value, "quality"), "quality")
    allowed = ("overall", *DOMAINS)
    unknown = [str(name) for name in value if name not in allowed]
    if unknown:
        raise ValueError(f"unknown quality domain {unknown[0]!r}; use {list(allowed)}")
    if not value:
        raise ValueError('give at least "overall", e.g. {"overall": 0.8}')
    return {name: _unit(_number(score, f"quality.{name}"), f"quality.{name}") for name, score in value.items()}


def _unit(number: float, what: str) -> float:
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1 (normalise leaderboard scores to 0–1)")
    return number


_WEIGHTS_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "number", "minimum": 0} for name in WEIGHT_NAMES},
    "additionalProperties": False,
}
Optimize = Annotated[
    str | dict[str, float],
    PlainValidator(check_optimize),
    WithJsonSchema({"anyOf": [{"enum": list(OPTIMIZE_NAMES)}, _WEIGHTS_SCHEMA]}),
]
_UNIT_SCHEMA: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}
Quality = Annotated[
    float | dict[str, float],
    PlainValidator(check_quality),
    WithJsonSchema(
        {
            "anyOf": [
                _UNIT_SCHEMA,
                {
                    "type": "object",
                    "properties": {name: _UNIT_SCHEMA for name in ("overall", *DOMAINS)},
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
