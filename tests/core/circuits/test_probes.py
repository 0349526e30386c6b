"""The health prober's cadence (SPEC §6, issue 15 items 12 and 15), on a FakeClock with a scripted transport."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.config.gateway import build_config
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest

INTERVAL = 10.0
MODELS = {f"m{n}": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.1} for n in range(8)}
CONFIG = build_config({"openai": {"keys": {"k": {"api_key": "x"}}, "models": MODELS}}, {}, {})
KEY = CircuitKey("openai", "m0", "k")


class ScriptedTransport:
    """Answers with ``status`` (and ``headers``); with ``is_held`` every call waits until released."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.sent_at: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.is_held = False
        self.release = asyncio.Event()
        self.clock: FakeClock | None = None

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        assert self.clock is not None
        self.sent_at.append(self.clock.now())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.is_held:
                await self.release.wait()
            return UpstreamReply(self.status, dict(self.headers), b"{}")
        finally:
            self.in_flight -= 1


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def _step(clock: FakeClock, seconds: float, step: float = 0.5) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await _settle()


@pytest.fixture
async def rig() -> AsyncIterator[tuple[FakeClock, CircuitBreakerRegistry, ScriptedTransport, HealthProber]]:
    clock = FakeClock()
    registry = CircuitBreakerRegistry(CircuitSettings(), clock)
    transport = ScriptedTransport()
    transport.clock = clock
    prober = HealthProber(
        registry=registry,
        config=CONFIG,
        transport=transport,  # type: ignore[arg-type]
        clock=clock,
        interval_seconds=INTERVAL,
        timeout_seconds=INTERVAL,
    )
    prober.start()
    await _settle()
    try:
        yield clock, registry, transport, prober
    finally:
        transport.release.set()
        await prober.stop()


async def test_a_429_opened_between_ticks_is_probed_when_its_retry_after_ends(rig) -> None:
    clock, registry, transport, _ = rig
    await _step(clock, 4.0)  # between two ticks
    opened_at = clock.now()
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=3.0)
    await _step(clock, 2.5)
    assert transport.sent_at == []
    await _step(clock, 0.5)
    assert transport.sent_at == [opened_at + 3.0]
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN


async def test_a_probe_429_keeps_the_circuit_open_for_its_retry_after(rig) -> None:
    clock, registry, transport, _ = rig
    transport.status, transport.headers = 429, {"retry-after": "3"}
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=1.0)
    await _step(clock, 1.0)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.open_reason is ErrorClass.RATE_LIMITED
    assert snapshot.open_until == pytest.approx(clock.now() + 3.0)
    transport.status, transport.headers = 200, {}
    await _step(clock, 15.0)
    assert [t - transport.sent_at[0] for t in transport.sent_at] == [0.0, INTERVAL]  # one per interval
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN


async def test_an_outage_is_probed_once_per_interval_and_a_recovery_is_seen_at_the_next_probe(rig) -> None:
    clock, registry, transport, _ = rig
    transport.status = 503
    for _ in range(3):
        registry.record_failure(KEY, ErrorClass.SERVER)
    await _step(clock, 30 * INTERVAL, step=1.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(transport.sent_at)]
    assert len(transport.sent_at) == 30 and set(gaps) == {INTERVAL}
    assert registry.snapshot(KEY).open_until - clock.now() > 5 * INTERVAL  # type: ignore[operator]
    transport.status = 200
    await _step(clock, INTERVAL, step=1.0)
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN


async def test_at_most_five_probes_run_at_once_and_a_hung_one_does_not_hold_back_the_others(rig) -> None:
    clock, registry, transport, _ = rig
    transport.is_held = True
    for n in range(8):
        registry.record_failure(CircuitKey("openai", f"m{n}", "k"), ErrorClass.RATE_LIMITED, retry_after_seconds=1.0)
    await _step(clock, 1.0)
    assert transport.in_flight == 5 and transport.max_in_flight == 5
    transport.is_held = False
    transport.release.set()
    await _settle()
    assert len(transport.sent_at) == 8 and transport.max_in_flight == 5
    assert all(registry.snapshot(CircuitKey("openai", f"m{n}", "k")).state is CircuitState.HALF_OPEN for n in range(8))
