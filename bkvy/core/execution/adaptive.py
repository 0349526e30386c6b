"""Adaptive routing (issue 18 §3): the bandit's draws before a plan, and its rewards after a request.

``AdaptiveRouting`` is long-lived (kept across config reloads, like learned latency): ``configure`` takes each
config's adaptive routes and their arms (``core/config/strategies.py``); the executor asks ``sampled`` for a
route before planning (``RouteRequest.samples``); ``observe`` is an executor observer, run after the reply is
sent, that turns each sent attempt into a reward (``core/routing/reward.py``) and updates the route's posteriors.
``on_update`` listeners (the file saver, the Redis exchange) hear each update; none of them does I/O inline.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.strategies import AdaptiveKnobs, Pair, adaptive_arms, route_key
from bkvy.core.execution.records import RequestOutcome
from bkvy.core.routing.bandit import BanditBook, Posterior
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.reward import Penalties, attempt_reward
from bkvy.models.types import RoutingMethod

UpdateListener = Callable[[str, Pair, float], None]  # (route, (provider, model), reward)


class AdaptiveRouting:
    """The bandit of every adaptive route of the current config, its draws and its rewards."""

    def __init__(self, config: GatewayConfig, *, rng: random.Random | None = None) -> None:
        self.book = BanditBook(discount=config.routing.adaptive.discount)
        self._rng = rng or random.Random()
        self._listeners: list[UpdateListener] = []
        self.arms: dict[str, tuple[Pair, ...]] = {}
        self.knobs = config.routing.adaptive
        self._penalties = _penalties(self.knobs)
        self.configure(config)

    def configure(self, config: GatewayConfig) -> None:
        """Take ``config``'s adaptive routes: arms still configured keep what was learned, the others go."""
        self.arms = adaptive_arms(config)
        self.knobs = config.routing.adaptive
        self._penalties = _penalties(self.knobs)
        self.book.configure(self.arms, discount=self.knobs.discount)

    def on_update(self, listener: UpdateListener) -> None:
        self._listeners.append(listener)

    def sampled(self, route: RouteRequest) -> RouteRequest:
        """``route`` with one draw per arm when its route is adaptive (and it has none yet), else itself."""
        key = _key_of(route)
        if key is None or route.samples is not None or route.fast_mode or key not in self.arms:
            return route  # fast mode ranks fastest first: a draw would go unread
        return route._replace(samples=self.book.draw(key, self._rng))

    def arm_view(self, key: str, pair: Pair) -> Posterior | None:
        """Read-only: one arm's posterior (explain shows it beside the candidate's draw)."""
        return self.book.arm_view(key, pair)

    def observe(self, outcome: RequestOutcome) -> None:
        """An executor observer: each sent attempt of an adaptive route's request updates its arm."""
        route = outcome.request.route
        key = _key_of(route)
        if key is None or key not in self.arms:
            return
        penalties = self._penalties.weighted(route.weights)
        for attempt in outcome.attempts:
            reward = attempt_reward(attempt, penalties, deadline_seconds=route.max_wait_seconds)
            if reward is None:
                continue
            pair = (attempt.provider, attempt.model)
            if self.book.update(key, pair, reward):
                for listener in self._listeners:
                    listener(key, pair, reward)


def _key_of(route: RouteRequest) -> str | None:
    return None if route.method is RoutingMethod.DIRECT else route_key(route.level, route.scenario)


def _penalties(knobs: AdaptiveKnobs) -> Penalties:
    return Penalties(knobs.cost_penalty, knobs.latency_penalty, knobs.cost_scale_usd, knobs.latency_scale_seconds)
