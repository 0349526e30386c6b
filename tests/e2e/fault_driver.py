"""Helpers for the fault-injection suite: a two-provider config on the simulated fleet, and a driver that
moves a FakeClock forward only when nothing real is left to wait for (an "autojump" clock).

Nothing here sleeps on fake time; the only real waits are ≤ 2 ms yields while loopback I/O completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.sim import SimFleet

PRIMARY, PRIMARY_MODEL, PRIMARY_KEY_ID, PRIMARY_KEY = "primary", "gpt-4o-mini", "primary_key", "sk-sim-primary"
FALLBACK, FALLBACK_MODEL, FALLBACK_KEY_ID, FALLBACK_KEY = (
    "fallback",
    "claude-3-5-haiku-latest",
    "fallback_key",
    "sk-sim-fallback",
)
SCENARIO = "chat"
MESSAGES = [{"role": "user", "content": "Say something short."}]
_YIELD_SECONDS = 0.002  # one real yield while loopback I/O completes
_QUIET_YIELDS = 5  # this many yields without progress: only the fake clock can move things on
_SETTLE_LIMIT = 1000  # 2 s of real time at most; a hang here is a test bug, not a product one


def _model(tier: str = "low") -> dict[str, Any]:
    return {
        "intelligence_tier": tier,
        "input_cost_per_1k": 0.001,
        "output_cost_per_1k": 0.002,
        "expected_latency_ms": 100,
    }


def two_provider_config(fleet: SimFleet, *, rpm: int | None = None) -> GatewayConfig:
    """'primary' on the OpenAI sim, 'fallback' on the Anthropic sim; scenario 'chat' tries them in that order.
    ``rpm``: both keys limited to it (lanes with a limit)."""
    limits = {"rate_limits": {"*": {"rpm": rpm}}} if rpm is not None else {}
    providers = {
        PRIMARY: {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {PRIMARY_KEY_ID: {"api_key": PRIMARY_KEY, **limits}},
            "models": {PRIMARY_MODEL: _model()},
        },
        FALLBACK: {
            "type": "anthropic",
            "base_url": fleet.base_url("anthropic"),
            "keys": {FALLBACK_KEY_ID: {"api_key": FALLBACK_KEY, **limits}},
            "models": {FALLBACK_MODEL: _model()},
        },
    }
    routing = {
        "scenarios": {
            SCENARIO: [
                {"provider": PRIMARY, "model": PRIMARY_MODEL, "priority": 1},
                {"provider": FALLBACK, "model": FALLBACK_MODEL, "priority": 2},
            ]
        }
    }
    return build_config(providers, routing, {})


def scenario_body(*, debug: bool = True) -> dict[str, Any]:
    return {"client_id": "faults", "scenario": SCENARIO, "messages": MESSAGES, "debug": debug}


class FixedJitter:
    """An rng whose every draw is ``fraction``: full-jitter backoff becomes ``fraction * ceiling``."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


def attempts_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("metadata", {}).get("attempts") or body.get("attempts") or []


class FaultDriver:
    """Sends requests through the gateway and moves the fake clock only when nothing real is in motion."""

    def __init__(self, client: httpx.AsyncClient, clock: FakeClock, fleet: SimFleet) -> None:
        self.client = client
        self.clock = clock
        self.fleet = fleet
        self.clock_jumps = 0

    @property
    def services(self) -> Any:
        return self.client.app.state.services  # type: ignore[attr-defined]

    @property
    def probes_sent(self) -> int:
        prober = self.services.prober
        return prober.probes_sent if prober is not None else 0

    def upstream_calls(self) -> int:
        """Every chat call any simulated provider received (requests and probes)."""
        return sum(sum(server.stats.calls_by_path.values()) for server in self.fleet.servers.values())

    def primary_calls(self) -> int:
        return self.fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY)

    def fallback_calls(self) -> int:
        return self.fleet.servers["anthropic"].stats.calls_for_key(FALLBACK_KEY)

    async def settle(self) -> None:
        """Yield until no request, probe or write has moved for a few milliseconds of real time."""
        last, quiet = None, 0
        for _ in range(_SETTLE_LIMIT):
            await asyncio.sleep(_YIELD_SECONDS)
            mark = (self.upstream_calls(), self.clock.sleeper_count, self.probes_sent)
            quiet = quiet + 1 if mark == last else 0
            last = mark
            if quiet >= _QUIET_YIELDS:
                return
        raise AssertionError("the gateway never went quiet")

    async def advance(self, seconds: float, *, step_seconds: float | None = None) -> None:
        """Move fake time forward in steps, letting probes and timers fire and finish at each step."""
        step = step_seconds or seconds
        remaining = seconds
        while remaining > 1e-9:
            hop = min(step, remaining)
            self.clock.advance(hop)
            remaining -= hop
            await self.settle()

    async def circuit(self, provider: str, model: str, key_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/circuits/{provider}/{model}/{key_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def primary_circuit(self) -> dict[str, Any]:
        return await self.circuit(PRIMARY, PRIMARY_MODEL, PRIMARY_KEY_ID)

    async def send(self, body: dict[str, Any] | None = None, path: str = "/llm/scenario") -> httpx.Response:
        """One request that needs no fake time to pass (every upstream answers)."""
        return await self.client.post(path, json=body or scenario_body())

    async def run_autojump(
        self,
        bodies: Sequence[dict[str, Any]],
        *,
        jump_seconds: float,
        batch: int = 50,
        pace_seconds: float = 0.0,
        path: str = "/llm/scenario",
    ) -> list[httpx.Response]:
        """Send ``bodies`` ``batch`` at a time, ``pace_seconds`` of fake time apart. While some are pending and
        neither a reply nor an upstream call has happened for a few ms, the rest can only be waiting on fake
        time: advance it by ``jump_seconds``."""
        responses: list[httpx.Response] = []
        for start in range(0, len(bodies), batch):
            if start and pace_seconds:
                await self.advance(pace_seconds)
            tasks = [asyncio.ensure_future(self.client.post(path, json=body)) for body in bodies[start : start + batch]]
            last, quiet = None, 0
            while not all(task.done() for task in tasks):
                await asyncio.wait([task for task in tasks if not task.done()], timeout=_YIELD_SECONDS)
                mark = (sum(task.done() for task in tasks), self.upstream_calls())
                quiet = quiet + 1 if mark == last else 0
                last = mark
                if quiet >= _QUIET_YIELDS and self.clock.sleeper_count:
                    self.clock.advance(jump_seconds)
                    self.clock_jumps += 1
                    quiet = 0
            responses.extend(task.result() for task in tasks)
        return responses
