"""A health probe sends the model's thinking OFF setting: off where it can be switched off, else its floor (a
probe that sent 0 to a model whose floor is 1024 would be refused every time and keep the circuit open)."""

from __future__ import annotations

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.config.gateway import build_config
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest


class RecordingTransport:
    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        self.requests.append(request)
        return UpstreamReply(200, {}, b"{}")


@pytest.mark.parametrize(
    ("provider", "thinking", "expected"),
    [
        ("anthropic", {"can_disable": False}, {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("anthropic", {}, {}),
        ("openai", {"min_effort": "minimal"}, {"reasoning_effort": "minimal"}),
        ("openai", {"can_disable": True}, {"reasoning_effort": "none"}),
    ],
)
async def test_probe_sends_the_models_off_setting(provider, thinking, expected) -> None:
    model = {"intelligence_tier": "high", "cost_per_1k_tokens": 0.1, "thinking": thinking}
    config = build_config({provider: {"keys": {"k": {"api_key": "x"}}, "models": {"m": model}}}, {}, {})
    key_id = next(iter(config.providers[provider].keys))
    clock = FakeClock()
    registry = CircuitBreakerRegistry(CircuitSettings(), clock)
    key = CircuitKey(provider, "m", key_id)
    registry.record_failure(key, ErrorClass.RATE_LIMITED, retry_after_seconds=5.0)
    clock.advance(5.0)
    transport = RecordingTransport()
    prober = HealthProber(
        registry=registry,
        config=config,
        transport=transport,  # type: ignore[arg-type]
        clock=clock,
        interval_seconds=10.0,
        timeout_seconds=10.0,
    )
    assert await prober.probe_due() == 1
    [request] = transport.requests
    assert request.json_body is not None
    sent = {name: request.json_body[name] for name in ("thinking", "reasoning_effort") if name in request.json_body}
    assert sent == expected
    assert request.thinking is not None and request.thinking.startswith("off: ")
