"""Discounted Thompson sampling over the models of an adaptive route (issue 18 §3; docs/ROUTING.md).

Each arm, a (provider, model) of one route (a level or ``scenario:NAME``), keeps a Beta posterior as two
discounted masses: ``successes`` (rewards) and ``failures`` (1 - rewards), over a Beta(1, 1) prior. A reward is
fractional, in [0, 1] (``core/routing/reward.py``). Each update of a route first multiplies every arm's masses
by ``discount``, then adds the reward to the arm that served: the route remembers about 1/(1-discount) updates, so
an arm that degrades loses its share within a bounded number of requests and one left alone drifts back to the
prior and is tried again (Raj & Kalyani 2017, "Taming non-stationary bandits").

Pure: no clock, no I/O; randomness is an injected ``random.Random``. The same update runs in Redis as one Lua
script (``core/shared/bandit.py``), so replicas learn together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

Pair = tuple[str, str]  # (provider, model)
PRIOR = 1.0  # Beta(1, 1): uniform before any evidence
STATE_VERSION = 1


class Posterior(NamedTuple):
    """One arm's discounted evidence; its Beta is (PRIOR + successes, PRIOR + failures)."""

    successes: float = 0.0
    failures: float = 0.0

    @property
    def alpha(self) -> float:
        return PRIOR + self.successes

    @property
    def beta(self) -> float:
        return PRIOR + self.failures

    @property
    def mean(self) -> float:
        """Expected reward under the posterior."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def evidence(self) -> float:
        """Discounted number of updates it remembers (at most 1/(1-discount))."""
        return self.successes + self.failures


def discounted(arms: Mapping[Pair, Posterior], pair: Pair, reward: float, discount: float) -> dict[Pair, Posterior]:
    """The route's posteriors after one update: every arm discounted, then ``reward`` (clipped to [0, 1]) added
    to ``pair``. The one update rule (mirrored by the Lua script in core/shared/bandit.py)."""
    reward = min(1.0, max(0.0, reward))
    updated = {arm: Posterior(p.successes * discount, p.failures * discount) for arm, p in arms.items()}
    served = updated[pair]
    updated[pair] = Posterior(served.successes + reward, served.failures + 1.0 - reward)
    return updated


class BanditBook:
    """The posteriors of every adaptive route, bounded by config: only configured arms are kept."""

    def __init__(self, *, discount: float) -> None:
        self.discount = discount
        self._routes: dict[str, dict[Pair, Posterior]] = {}

    @property
    def routes(self) -> Mapping[str, Mapping[Pair, Posterior]]:
        return self._routes

    def configure(self, arms_by_route: Mapping[str, Sequence[Pair]], *, discount: float) -> None:
        """Keep what is known of arms still configured; new arms start at the prior; routes and arms no longer
        configured are forgotten (a reload)."""
        self.discount = discount
        self._routes = {
            route: {pair: self._routes.get(route, {}).get(pair, Posterior()) for pair in pairs}
            for route, pairs in arms_by_route.items()
        }

    def draw(self, route: str, rng: random.Random) -> dict[Pair, float]:
        """One Thompson sample per arm of ``route`` (empty for a route not configured)."""
        betavariate = rng.betavariate
        return {pair: betavariate(p.alpha, p.beta) for pair, p in self._routes.get(route, {}).items()}

    def update(self, route: str, pair: Pair, reward: float) -> bool:
        """One served attempt's reward; False (nothing changed) when the route or the arm is not configured."""
        arms = self._routes.get(route)
        if arms is None or pair not in arms:
            return False
        self._routes[route] = discounted(arms, pair, reward, self.discount)
        return True

    def arm_view(self, route: str, pair: Pair) -> Posterior | None:
        """Read-only: one arm's posterior (for explain), None when not configured."""
        return self._routes.get(route, {}).get(pair)

    def replace_route(self, route: str, arms: Mapping[Pair, Posterior]) -> None:
        """Take a route's posteriors from elsewhere (the fleet's, in Redis); arms not configured are ignored,
        configured arms it lacks start at the prior."""
        known = self._routes.get(route)
        if known is not None:
            self._routes[route] = {pair: arms.get(pair, Posterior()) for pair in known}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "routes": {
                route: [[provider, model, p.successes, p.failures] for (provider, model), p in arms.items()]
                for route, arms in self._routes.items()
            },
        }

    def load_dict(self, saved: object) -> int:
        """Restore configured arms from ``to_dict`` output; anything malformed or not configured is skipped.
        Returns how many arms were restored. Never raises."""
        if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
            return 0
        routes = saved.get("routes")
        if not isinstance(routes, dict):
            return 0
        restored = 0
        for route, rows in routes.items():
            arms = self._routes.get(route)
            if arms is None or not isinstance(rows, list):
                continue
            for row in rows:
                parsed = _parse_row(row)
                if parsed is not None and parsed[0] in arms:
                    arms[parsed[0]] = parsed[1]
                    restored += 1
        return restored


def _parse_row(row: object) -> tuple[Pair, Posterior] | None:
    if not isinstance(row, list) or len(row) != 4:
        return None
    provider, model, successes, failures = row
    if not isinstance(provider, str) or not isinstance(model, str):
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in (successes, failures)):
        return None
    return (provider, model), Posterior(float(successes), float(failures))
