"""The circuit breaker's value types and the mutable state of one circuit (private to the registry)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from bkvy.core.circuits.window import BucketWindow
from bkvy.models.types import ErrorClass


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitSettings:
    enabled: bool = True
    failure_threshold: int = 3
    sliding_window_seconds: float = 600.0
    sliding_window_threshold: int = 5
    max_backoff_seconds: float = 1800.0
    flapping_threshold: int = 3
    base_backoff_seconds: float = 10.0
    timeout_failure_threshold: int = 5
    timeout_max_backoff_seconds: float = 300.0
    max_rate_limit_seconds: float = 86400.0


class CircuitKey(NamedTuple):  # a tuple: hashed in C on every request
    provider: str
    model: str
    key_id: str


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    key: CircuitKey
    state: CircuitState
    open_reason: ErrorClass | None
    open_until: float | None  # monotonic seconds; None when closed or auth-open (never)
    consecutive_failures: int
    failures_in_window: int
    calls_in_window: int
    open_count: int  # openings in the current run: the backoff exponent (see cadence.count_opening)
    is_flapping: bool
    last_failure_class: ErrorClass | None
    last_change: float  # monotonic seconds of the last state change
    needs_probe: bool  # OPEN for 429, or any OPEN while a prober runs: only a probe leads on
    is_probe_due: bool  # OPEN, not auth, and the prober may call it now (its own cadence, not the backoff)


@dataclass(slots=True)
class Circuit:
    """Mutable state of one circuit, private to the registry; callers only see frozen snapshots."""

    key: CircuitKey
    window: BucketWindow
    state: CircuitState = CircuitState.CLOSED
    open_reason: ErrorClass | None = None
    open_until: float | None = None
    consecutive_failures: int = 0
    consecutive_timeouts: int = 0
    open_count: int = 0
    is_flapping: bool = False
    recent_openings: deque[float] = field(default_factory=deque)  # CLOSED -> OPEN times
    last_opened_at: float | None = None
    last_failure_class: ErrorClass | None = None
    last_change: float = 0.0
    trial_started_at: float | None = None
    last_probe_at: float | None = None  # when the prober last called it; cleared on close
