"""The prober's call for an open circuit of an embedding model is an embeddings call (a chat probe would fail
on it every time and keep the circuit open)."""

from __future__ import annotations

import json

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.config.gateway import build_config
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest

PROVIDERS = {
    "openai": {
        "keys": {"k": {"api_key": "x"}},
        "models": {
            "emb": {"capabilities": ["embeddings"], "input_cost_per_1k": 0.01},
            "gpt": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1},
        },
    }
}


class RecordingTransport:
    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        self.requests.append(request)
        return UpstreamReply(200, {}, b"{}")


async def test_an_open_embedding_circuit_is_probed_with_an_embeddings_call() -> None:
    clock = FakeClock()
    registry = CircuitBreakerRegistry(CircuitSettings(), clock)
    key = CircuitKey("openai", "emb", "k")
    registry.record_failure(key, ErrorClass.RATE_LIMITED, retry_after_seconds=5.0)
    clock.advance(5.0)
    transport = RecordingTransport()
    prober = HealthProber(
        registry=registry,
        config=build_config(PROVIDERS, {}, {}),
        transport=transport,  # type: ignore[arg-type]
        clock=clock,
        interval_seconds=10.0,
        timeout_seconds=10.0,
    )
    assert await prober.probe_due() == 1
    [request] = transport.requests
    assert request.url == "https://api.openai.com/v1/embeddings"
    assert request.json_body is not None and request.json_body["input"] == ["ping"]
    assert json.dumps(request.json_body).find("messages") == -1
    assert registry.snapshot(key).state is CircuitState.HALF_OPEN
