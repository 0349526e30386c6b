"""The executor's view of the circuit breakers and the retry budget (SPEC §6).

Routing sees each circuit as a few fields (``route_view``); the executor asks ``refusal`` right before an
attempt and reports outcomes through ``record_*``. Keys here are the (provider, model, key_id) triple.
"""

from __future__ import annotations

from collections.abc import Iterable

from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitState, RetryBudget
from bkvy.models.outcomes import SkipReason
from bkvy.models.types import ErrorClass


class CircuitGuard:
    def __init__(self, registry: CircuitBreakerRegistry, budget: RetryBudget) -> None:
        self.registry = registry
        self._budget = budget

    @property
    def budget(self) -> RetryBudget:
        return self._budget

    def route_view(self, key: CircuitKey) -> tuple[bool, bool, ErrorClass | None, float | None, bool]:
        """(is_closed, allows_request, open_reason, open_until, is_flapping) for ``CandidateState``."""
        return self.registry.route_fields(key)

    def soonest_open_until(self, keys: Iterable[CircuitKey]) -> float | None:
        """The earliest ``open_until`` (monotonic seconds) among these circuits that are not closed; None when
        none of them has one (closed, or auth-open: those wait for a reset, not for time)."""
        ends = [
            snapshot.open_until
            for snapshot in map(self.registry.snapshot, keys)
            if snapshot.state is not CircuitState.CLOSED and snapshot.open_until is not None
        ]
        return min(ends, default=None)

    def refusal(
        self, provider: str, model: str, key_id: str, *, fast_mode: bool, is_retry: bool, is_panic: bool
    ) -> SkipReason | None:
        """Why this attempt must not be made now, or None. A first attempt counts toward the retry budget."""
        key = CircuitKey(provider, model, key_id)
        if is_retry:
            if not self._budget.try_acquire_retry(provider, model):
                return SkipReason.RETRY_BUDGET
        else:
            self._budget.record_request(provider, model)
        if is_panic:
            return None  # every candidate is open: try the one that recovers soonest anyway
        if fast_mode and self.registry.snapshot(key).state is not CircuitState.CLOSED:
            return SkipReason.CIRCUIT_NOT_CLOSED
        return None if self.registry.allow_request(key) else SkipReason.CIRCUIT_OPEN

    def record_success(self, provider: str, model: str, key_id: str, latency_ms: float) -> None:
        self.registry.record_success(CircuitKey(provider, model, key_id), latency_ms)

    def record_failure(
        self, provider: str, model: str, key_id: str, error_class: ErrorClass, retry_after_seconds: float | None
    ) -> None:
        self.registry.record_failure(CircuitKey(provider, model, key_id), error_class, retry_after_seconds)
