"""One SimServer per wire format, with a small default catalogue of models per provider."""

from __future__ import annotations

import asyncio
import copy

from .knobs import ModelKnobs
from .server import WIRE_FORMATS, SimClock, SimServer

# Names only: the sim serves any model asked for; these are what listings show and the demo config uses.
DEFAULT_MODELS: dict[str, dict[str, ModelKnobs]] = {
    "openai": {
        "gpt-4o-mini": ModelKnobs(latency_ms=20),
        "gpt-4o": ModelKnobs(latency_ms=40),
        # o-series reasoning: low, medium, high only ("none" is gpt-5.1's, "minimal" gpt-5's)
        "o3-mini": ModelKnobs(
            latency_ms=60, thinks=True, can_disable_thinking=False, thinking_levels=("low", "medium", "high")
        ),
    },
    "anthropic": {
        "claude-3-5-haiku-latest": ModelKnobs(latency_ms=25),
        "claude-sonnet-4-5": ModelKnobs(latency_ms=50, thinks=True),
    },
    "gemini": {
        "gemini-2.0-flash": ModelKnobs(latency_ms=15),
        "gemini-2.5-flash": ModelKnobs(latency_ms=30, thinks=True),
        # thinkingBudget 128..32768: 0 is refused, the model only works in thinking mode
        "gemini-2.5-pro": ModelKnobs(latency_ms=45, thinks=True, can_disable_thinking=False, min_thinking_budget=128),
    },
    "ollama": {"llama3.2:3b": ModelKnobs(latency_ms=10)},
    "openai_compatible": {"llama-3.1-8b-instant": ModelKnobs(latency_ms=10)},
}


def default_models(wire_format: str) -> dict[str, ModelKnobs]:
    """Fresh knob objects each call, so two fleets never share mutable state."""
    return {name: copy.deepcopy(knobs) for name, knobs in DEFAULT_MODELS[wire_format].items()}


class SimFleet:
    def __init__(self, *, seed: int = 0, with_default_latency: bool = True, clock: SimClock | None = None) -> None:
        """``clock``: every server's latency and rpm windows follow it (a test's fake clock); default real time."""
        self.servers: dict[str, SimServer] = {}
        for index, wire_format in enumerate(WIRE_FORMATS):
            models = default_models(wire_format)
            if not with_default_latency:
                for knobs in models.values():
                    knobs.latency_ms = 0.0
            self.servers[wire_format] = SimServer(wire_format, seed=seed + index, models=models, clock=clock)

    async def start(self, host: str = "127.0.0.1", *, port_base: int = 0) -> None:
        """port_base 0 gives every server an ephemeral port; else port_base + index in WIRE_FORMATS order."""
        for index, server in enumerate(self.servers.values()):
            await server.start(host, port_base + index if port_base else 0)

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers.values()))

    def base_url(self, wire_format: str) -> str:
        return self.servers[wire_format].base_url
