"""routing.json ``"cache"`` and ``"cache_routes"`` (issue 20 §1): the response cache's bounds and where it applies.

``cache_routes`` keys: a level (``low``, ``medium``, ``high``), ``scenario:NAME`` or ``provider/model``; the value
``true`` caches that route's requests by default, ``false`` refuses caching there even when a request opts in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bkvy.models.types import IntelligenceLevel

SCENARIO_PREFIX = "scenario:"


class CacheSettings(BaseModel):
    """The cache's bounds and knobs. The defaults apply when routing.json has no ``"cache"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_seconds: float = Field(default=300.0, gt=0.0, le=30 * 86400.0)
    max_entries: int = Field(default=10_000, ge=1, le=10_000_000)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=64 * 1024**3)  # the sum of the stored replies
    # a larger reply (its encoded size, before compression) is not stored; at most 8 MiB
    max_entry_bytes: int = Field(default=1024 * 1024, ge=256, le=8 * 1024 * 1024)
    # "tenant": one scope per tenant (a key without one: its own); "key": per client key; "shared": one for all.
    scope: Literal["tenant", "key", "shared"] = "tenant"
    cache_sampled: bool = False  # true: requests with temperature > 0 are cached too


def cache_route_problem(key: str, scenarios: set[str], models: set[str]) -> str | None:
    """Why ``"cache_routes": {key: ...}`` is refused (with its fix), or None when ``key`` names a route."""
    if key.startswith(SCENARIO_PREFIX):
        name = key[len(SCENARIO_PREFIX) :]
        if name not in scenarios:
            return f"unknown scenario {name!r}. Fix: use one of {sorted(scenarios)} after 'scenario:'"
        return None
    if "/" in key:
        if key not in models:
            return f"unknown model {key!r}. Fix: use 'provider/model' as listed in providers.json"
        return None
    if key not in IntelligenceLevel._value2member_map_:
        levels = ", ".join(level.value for level in IntelligenceLevel)
        return f"unknown route {key!r}. Fix: use a level ({levels}), 'scenario:NAME' or 'provider/model'"
    return None
