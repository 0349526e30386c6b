"""AdaptiveRouting: draws for adaptive routes only, rewards from each sent attempt, the executor's plan hook."""

from __future__ import annotations

import random

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.execution.executor import ExecutionRequest, Executor, RequestOutcome
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.bandit import Posterior
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.scoring import Weights
from bkvy.core.upstream.transport import Transport
from bkvy.models.outcomes import Attempt, AttemptOutcome, DecisionReason
from bkvy.models.types import GenerationOptions, IntelligenceLevel, RoutingMethod

A, B = ("a", "m"), ("b", "m")
LOW = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)


def _config(strategies: dict[str, str], adaptive: dict[str, float] | None = None) -> GatewayConfig:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1}
    providers = {
        name: {"type": "openai_compatible", "base_url": f"http://{name}.test", "models": {"m": model}}
        for name in ("a", "b")
    }
    routing = {"scenarios": {"s": [{"provider": "b", "model": "m"}]}, "strategies": strategies}
    return build_config(providers, {**routing, "adaptive": adaptive or {}}, {})


def _outcome(route: RouteRequest, *attempts: Attempt) -> RequestOutcome:
    request = ExecutionRequest("r", "c", route, (), GenerationOptions())
    return RequestOutcome(request, None, None, attempts, 0.0, 0.0, 0.0)


def _attempt(pair: tuple[str, str], outcome: AttemptOutcome, duration_ms: float = 0.0) -> Attempt:
    return Attempt(pair[0], "m", "default", outcome, duration_ms)


def test_only_an_adaptive_route_is_sampled() -> None:
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}), rng=random.Random(1))
    assert set(adaptive.sampled(LOW).samples or {}) == {A, B}
    scenario = RouteRequest(RoutingMethod.SCENARIO, scenario="s")
    assert adaptive.sampled(scenario) is scenario
    direct = RouteRequest(RoutingMethod.DIRECT, level=IntelligenceLevel.LOW, provider="a", model="m")
    assert adaptive.sampled(direct) is direct
    fast = LOW._replace(fast_mode=True)
    assert adaptive.sampled(fast) is fast  # fastest first: no draw to read


def test_each_sent_attempt_updates_its_arm_and_skips_teach_nothing() -> None:
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}, {"discount": 0.5}))
    heard = []
    adaptive.on_update(lambda route, pair, reward: heard.append((route, pair, reward)))
    adaptive.observe(
        _outcome(
            LOW,
            _attempt(A, AttemptOutcome.SERVER),
            _attempt(B, AttemptOutcome.SKIPPED_CIRCUIT_OPEN),
            _attempt(B, AttemptOutcome.SUCCESS),
        )
    )
    assert heard == [("low", A, 0.0), ("low", B, 1.0)]
    assert adaptive.arm_view("low", A) == Posterior(0.0, 0.5)  # discounted once by B's update
    assert adaptive.arm_view("low", B) == Posterior(1.0, 0.0)


def test_a_request_of_a_cost_route_teaches_nothing() -> None:
    adaptive = AdaptiveRouting(_config({"scenario:s": "adaptive"}))
    adaptive.observe(_outcome(LOW, _attempt(A, AttemptOutcome.SUCCESS)))
    assert adaptive.arm_view("low", A) is None
    assert adaptive.book.routes == {"scenario:s": {B: Posterior()}}


def test_the_request_weights_set_the_penalties() -> None:
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}, {"latency_scale_seconds": 10.0}))
    weights = Weights(cost=0.0, latency=1.0, quality=0.0, load=0.0, health=0.0)
    adaptive.observe(_outcome(LOW._replace(weights=weights), _attempt(A, AttemptOutcome.SUCCESS, 5000)))
    assert adaptive.arm_view("low", A) == Posterior(0.5, 0.5)


def test_configure_forgets_routes_no_longer_adaptive() -> None:
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}))
    adaptive.observe(_outcome(LOW, _attempt(A, AttemptOutcome.SUCCESS)))
    adaptive.configure(_config({"scenario:s": "adaptive"}))
    assert adaptive.arm_view("low", A) is None
    assert adaptive.sampled(LOW) is LOW


def _executor(config: GatewayConfig, adaptive: AdaptiveRouting | None) -> Executor:
    clock = FakeClock()
    transport: Transport = None  # type: ignore[assignment]  # planning sends nothing
    return Executor(
        config=config, clock=clock, transport=transport, limiter=RateLimiter(clock), latency=LatencyTracker(),
        adaptive=adaptive,
    )  # fmt: skip


def test_the_executor_plans_an_adaptive_route_over_draws() -> None:
    config = _config({"low": "adaptive"})
    adaptive = AdaptiveRouting(config, rng=random.Random(2))
    adaptive.book.replace_route("low", {B: Posterior(50.0, 0.0), A: Posterior(0.0, 50.0)})
    plan = _executor(config, adaptive).plan(LOW)
    assert (plan.candidates[0].provider, plan.decision_reason) == ("b", DecisionReason.ADAPTIVE)


def test_without_an_adaptive_route_the_executor_plans_as_today() -> None:
    config = _config({})
    with_bandit = _executor(config, AdaptiveRouting(config)).plan(LOW)
    assert repr(with_bandit) == repr(_executor(config, None).plan(LOW))
    assert with_bandit.decision_reason is DecisionReason.CHEAPEST_WITHIN_ESTIMATE


def test_the_configured_penalties_set_the_reward() -> None:
    knobs = {"cost_penalty": 0.5, "cost_scale_usd": 0.02, "latency_penalty": 0.0}
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}, knobs))
    attempt = Attempt("a", "m", "default", AttemptOutcome.SUCCESS, 9000.0, cost_usd=0.01)
    adaptive.observe(_outcome(LOW, attempt))
    assert adaptive.arm_view("low", A) == Posterior(0.75, 0.25)


def test_a_success_past_the_max_wait_earns_nothing() -> None:
    adaptive = AdaptiveRouting(_config({"low": "adaptive"}))
    adaptive.observe(_outcome(LOW._replace(max_wait_seconds=1.0), _attempt(A, AttemptOutcome.SUCCESS, 1500)))
    assert adaptive.arm_view("low", A) == Posterior(0.0, 1.0)
