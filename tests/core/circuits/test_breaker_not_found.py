"""A 404 for a model (retired, never pulled): its circuits open for every key of the provider, once logged."""

from __future__ import annotations

import logging
import random

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.models.types import ErrorClass

KEY = CircuitKey("openai", "gpt-4o-mini", "key-a")
OTHER_KEY = CircuitKey("openai", "gpt-4o-mini", "key-b")  # never used before the 404
OTHER_MODEL = CircuitKey("openai", "gpt-4o", "key-a")
OTHER_PROVIDER = CircuitKey("azure", "gpt-4o-mini", "key-a")
HOLD_SECONDS = 600.0


def _registry(clock: FakeClock) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(CircuitSettings(max_backoff_seconds=HOLD_SECONDS), clock, random.Random(7))


def test_one_404_opens_the_model_for_every_key_and_no_other(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_success(OTHER_MODEL)
    with caplog.at_level(logging.INFO, logger="bkvy.core.circuits.breaker"):
        for _ in range(3):  # requests that were in flight report their 404 too
            registry.record_failure(KEY, ErrorClass.NOT_FOUND)
    for key in (KEY, OTHER_KEY):
        snapshot = registry.snapshot(key)
        assert (snapshot.state, snapshot.open_reason) == (CircuitState.OPEN, ErrorClass.NOT_FOUND)
        assert snapshot.open_until == pytest.approx(clock.now() + HOLD_SECONDS)
        assert not registry.allow_request(key)
    for key in (OTHER_MODEL, OTHER_PROVIDER):
        assert registry.snapshot(key).state is CircuitState.CLOSED
    logged = [r for r in caplog.records if r.getMessage() == "upstream_model_not_found"]
    assert len(logged) == 1 and (logged[0].provider, logged[0].model) == ("openai", "gpt-4o-mini")  # type: ignore[attr-defined]


def test_after_the_hold_a_trial_success_closes_every_key_of_the_model() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.NOT_FOUND)
    registry.snapshot(OTHER_KEY)
    clock.advance(HOLD_SECONDS)
    assert registry.allow_request(KEY)  # no prober: one real request may check (a 404 costs little)
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN
    registry.record_success(KEY)
    assert [registry.snapshot(k).state for k in (KEY, OTHER_KEY)] == [CircuitState.CLOSED, CircuitState.CLOSED]


def test_a_probe_404_keeps_the_model_open_for_another_hold() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.set_prober_running(True)
    registry.record_failure(KEY, ErrorClass.NOT_FOUND)
    clock.advance(HOLD_SECONDS)
    assert registry.due_for_probe() == [KEY]
    registry.record_probe_failure(KEY, ErrorClass.NOT_FOUND)
    assert registry.snapshot(OTHER_KEY).open_until == pytest.approx(clock.now() + HOLD_SECONDS)
    assert registry.due_for_probe() == []


def test_a_reset_of_one_circuit_clears_the_model() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.NOT_FOUND)
    assert registry.reset(KEY)
    assert registry.snapshot(OTHER_KEY).state is CircuitState.CLOSED


def test_an_auth_block_outlasts_a_not_found() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(OTHER_KEY, ErrorClass.AUTH)
    registry.record_failure(KEY, ErrorClass.NOT_FOUND)
    assert registry.snapshot(OTHER_KEY).open_reason is ErrorClass.AUTH
