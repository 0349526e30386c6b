"""When an open circuit is probed, and how its openings are counted for the backoff (SPEC §6).

Pure functions of one circuit's state and the time: the registry calls them, the prober never reads a circuit.
"""

from __future__ import annotations

from bkvy.core.circuits.types import Circuit, CircuitState
from bkvy.models.types import ErrorClass

_HELD_UNTIL_OPEN_UNTIL = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.NOT_FOUND})
STABLE_SECONDS = 600.0  # SPEC §6's "10 stable minutes": clears flapping, and restarts the backoff exponent


def is_due(due_at: float | None, now: float) -> bool:
    return due_at is not None and now >= due_at


def probe_due_at(circuit: Circuit, interval_seconds: float) -> float | None:
    """When the prober may next call an OPEN circuit: never an auth-open one; a rate-limited one when its
    retry-after ends (not at the next tick); a model the upstream does not know (``not_found``) when its hold
    ends (a retired model does not come back within seconds); any other one an interval after its opening or its
    last probe, whatever its backoff. Always at most one probe per circuit per interval."""
    if circuit.state is not CircuitState.OPEN or circuit.open_reason is ErrorClass.AUTH:
        return None
    last_probe_at = circuit.last_probe_at
    next_in_cadence = None if last_probe_at is None else last_probe_at + interval_seconds
    if circuit.open_reason in _HELD_UNTIL_OPEN_UNTIL and circuit.open_until is not None:
        return circuit.open_until if next_in_cadence is None else max(circuit.open_until, next_in_cadence)
    if next_in_cadence is not None:
        return next_in_cadence
    opened_at = circuit.last_opened_at if circuit.last_opened_at is not None else circuit.last_change
    return opened_at + interval_seconds


def count_opening(circuit: Circuit, reason: ErrorClass, now: float) -> None:
    """One more opening in the run that sets the backoff exponent. The run restarts (SPEC §6's stable period) when
    the circuit has been HALF_OPEN for 10 minutes without a failure, and when the cause switches between rate limit
    and failure: a 429 says nothing about the outage the earlier openings measured, nor a 503 about a quota."""
    is_stable = circuit.state is CircuitState.HALF_OPEN and now - circuit.last_change >= STABLE_SECONDS
    was_rate_limited = circuit.open_reason is ErrorClass.RATE_LIMITED
    is_new_cause = circuit.open_reason is not None and was_rate_limited != (reason is ErrorClass.RATE_LIMITED)
    if is_stable or is_new_cause:
        circuit.open_count = 0
    circuit.open_count += 1
