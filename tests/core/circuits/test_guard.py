"""CircuitGuard.refusal: why an attempt must not be made now, as a ``SkipReason``."""

from __future__ import annotations

import random

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.models.outcomes import SkipReason
from bkvy.models.types import ErrorClass

PROVIDER, MODEL, KEY_ID = "openai", "gpt-4o-mini", "key-a"


def _guard(clock: FakeClock) -> CircuitGuard:
    registry = CircuitBreakerRegistry(CircuitSettings(failure_threshold=2), clock, random.Random(7))
    return CircuitGuard(registry, RetryBudget(clock, min_retries=1, retry_ratio=0.0))


def _refusal(
    guard: CircuitGuard, *, fast_mode: bool = False, is_retry: bool = False, is_panic: bool = False
) -> SkipReason | None:
    return guard.refusal(PROVIDER, MODEL, KEY_ID, fast_mode=fast_mode, is_retry=is_retry, is_panic=is_panic)


def _open(guard: CircuitGuard) -> None:
    for _ in range(2):
        guard.record_failure(PROVIDER, MODEL, KEY_ID, ErrorClass.SERVER, None)


def test_a_closed_circuit_is_not_refused() -> None:
    assert _refusal(_guard(FakeClock())) is None


def test_an_open_circuit_is_refused_as_circuit_open() -> None:
    guard = _guard(FakeClock())
    _open(guard)
    assert _refusal(guard) is SkipReason.CIRCUIT_OPEN
    assert _refusal(guard, fast_mode=True) is SkipReason.CIRCUIT_NOT_CLOSED


def test_panic_mode_tries_an_open_circuit() -> None:
    guard = _guard(FakeClock())
    _open(guard)
    assert _refusal(guard, is_panic=True) is None


def test_fast_mode_refuses_a_half_open_circuit() -> None:
    clock = FakeClock()
    guard = _guard(clock)
    _open(guard)
    clock.advance(3600)
    assert guard.registry.allow_request(CircuitKey(PROVIDER, MODEL, KEY_ID))  # the trial: HALF_OPEN
    assert _refusal(guard, fast_mode=True) is SkipReason.CIRCUIT_NOT_CLOSED


def test_a_retry_beyond_the_budget_is_refused_as_retry_budget() -> None:
    guard = _guard(FakeClock())
    assert _refusal(guard) is None
    assert _refusal(guard, is_retry=True) is None  # min_retries=1
    assert _refusal(guard, is_retry=True) is SkipReason.RETRY_BUDGET
