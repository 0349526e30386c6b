"""Circuits to and from JSON, and provider health patterns (SPEC §6).

Stored times are wall-clock; loading rebases them on the new process's monotonic clock, so a restart keeps
the remaining backoff.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from bkvy.core.circuits.types import Circuit, CircuitKey, CircuitState
from bkvy.core.circuits.window import BucketWindow
from bkvy.models.types import ErrorClass


def health_pattern(total: int, open_count: int, auth_open: int, rate_limited_open: int) -> tuple[str, str]:
    if auth_open:
        return "auth", "A key was rejected (401/403): fix or replace it, then reset its circuits or reload config."
    if 2 * rate_limited_open > total:
        return "rate_limited", "Most circuits are rate limited: lower traffic, raise the quota or add keys."
    if open_count and 2 * open_count >= total:
        return "widespread", "Likely provider outage: route elsewhere and check the provider's status page."
    if open_count:
        return "isolated", "Isolated failures: no action needed, probes will recover them."
    return "healthy", "No action needed."


def _shift(value: Any, from_base: float, to_base: float) -> float | None:
    """Rebase a time between clocks (monotonic <-> wall); raises ValueError on a non-finite one."""
    if value is None:
        return None
    if not math.isfinite(float(value)):
        raise ValueError("time must be finite")
    return float(value) - from_base + to_base


def circuit_to_dict(circuit: Circuit, now: float, wall: float) -> dict[str, Any]:
    return {
        "provider": circuit.key.provider,
        "model": circuit.key.model,
        "key_id": circuit.key.key_id,
        "state": circuit.state.value,
        "open_reason": circuit.open_reason.value if circuit.open_reason else None,
        "open_until_wall": _shift(circuit.open_until, now, wall),
        "open_count": circuit.open_count,
        "is_flapping": circuit.is_flapping,
        "last_opened_wall": _shift(circuit.last_opened_at, now, wall),
        "recent_openings_wall": [_shift(t, now, wall) for t in circuit.recent_openings],
    }


def circuit_from_dict(entry: dict[str, Any], window: BucketWindow, now: float, wall: float) -> Circuit:
    """Raises KeyError, TypeError or ValueError on a malformed entry."""
    reason = entry.get("open_reason")
    circuit = Circuit(
        key=CircuitKey(str(entry["provider"]), str(entry["model"]), str(entry["key_id"])),
        window=window,
        state=CircuitState(entry["state"]),
        open_reason=ErrorClass(reason) if reason is not None else None,
        open_until=_shift(entry.get("open_until_wall"), wall, now),
        open_count=int(entry.get("open_count", 0)),
        is_flapping=bool(entry.get("is_flapping", False)),
        last_opened_at=_shift(entry.get("last_opened_wall"), wall, now),
        last_change=now,
        recent_openings=deque(_shift(t, wall, now) or 0.0 for t in entry.get("recent_openings_wall", [])),
    )
    is_stuck_open = circuit.open_reason is not ErrorClass.AUTH and circuit.open_until is None
    if circuit.state is not CircuitState.CLOSED and (circuit.open_reason is None or is_stuck_open):
        raise ValueError("an open circuit needs a reason and, unless auth, an open_until")
    return circuit
