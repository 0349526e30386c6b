"""Circuit breakers per (provider, model, key_id) and the retry budget (SPEC §6).

CLOSED (traffic flows) -> OPEN (blocked until ``open_until``) -> HALF_OPEN (one trial) -> CLOSED.
The ``ErrorClass`` that opened a circuit decides how it ends:

- ``auth``: every circuit of the key opens and stays open until ``reset`` or a config reload.
- ``rate_limited``: open until the provider's retry-after, then only a successful probe leads on.
- ``server`` / ``connection`` / ``timeout``: exponential backoff with full jitter; after it a probe
  or, only while no prober runs, one real trial request may go through.

Times are monotonic seconds from the injected clock; ``to_dict`` stores wall time so a restart keeps
the remaining time.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bkvy.core.clock import Clock
from bkvy.models.types import ErrorClass

log = logging.getLogger(__name__)

_WINDOW_BUCKETS = 60                  # 600 s window -> 10 s buckets: bounded memory per circuit
_DEFAULT_RATE_LIMIT_SECONDS = 60.0    # a 429 without a usable retry-after
_FLAPPING_WINDOW_SECONDS = 300.0
_FLAPPING_STABLE_SECONDS = 600.0
_FLAPPING_BACKOFF_MULTIPLIER = 5.0
_TRIAL_LEASE_SECONDS = 120.0          # a trial that never reports back frees the slot after this
_MAX_BACKOFF_EXPONENT = 40            # 2**40 is far past any cap; keeps the float finite
_PERSIST_VERSION = 1
_TRIAL_CLASSES = frozenset({ErrorClass.SERVER, ErrorClass.CONNECTION, ErrorClass.TIMEOUT})


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


@dataclass(frozen=True, slots=True)
class CircuitKey:
    provider: str
    model: str
    key_id: str


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    key: CircuitKey
    state: CircuitState
    open_reason: ErrorClass | None
    open_until: float | None          # monotonic seconds; None when closed or auth-open (never)
    consecutive_failures: int
    failures_in_window: int
    calls_in_window: int
    open_count: int                   # openings since the circuit last closed: the backoff exponent
    is_flapping: bool
    last_failure_class: ErrorClass | None
    last_change: float                # monotonic seconds of the last state change
    needs_probe: bool                 # OPEN for 429, or any OPEN while a prober runs: only a probe leads on
    is_probe_due: bool                # OPEN, backoff over, not auth


class _BucketWindow:
    """Counts calls and failures over a sliding window in fixed buckets: O(1) amortised per call."""

    __slots__ = ("_bucket_seconds", "_bucket_count", "_buckets", "calls", "failures")

    def __init__(self, window_seconds: float, bucket_count: int) -> None:
        self._bucket_seconds = window_seconds / bucket_count
        self._bucket_count = bucket_count
        self._buckets: deque[list[int]] = deque()   # [bucket index, calls, failures]
        self.calls = 0
        self.failures = 0

    def add(self, now: float, *, calls: int = 1, failures: int = 0) -> None:
        self._evict(now)
        index = int(now // self._bucket_seconds)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += calls
        bucket[2] += failures
        self.calls += calls
        self.failures += failures

    def totals(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window ending at ``now``."""
        self._evict(now)
        return self.calls, self.failures

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = 0

    def _evict(self, now: float) -> None:
        oldest_kept = int(now // self._bucket_seconds) - self._bucket_count + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            _, calls, failures = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures


@dataclass(slots=True)
class _Circuit:
    """Mutable state of one circuit, private to the registry; callers only see frozen snapshots."""

    key: CircuitKey
    window: _BucketWindow
    state: CircuitState = CircuitState.CLOSED
    open_reason: ErrorClass | None = None
    open_until: float | None = None
    consecutive_failures: int = 0
    consecutive_timeouts: int = 0
    open_count: int = 0
    is_flapping: bool = False
    recent_openings: deque[float] = field(default_factory=deque)   # CLOSED -> OPEN times
    last_opened_at: float | None = None
    last_failure_class: ErrorClass | None = None
    last_change: float = 0.0
    trial_started_at: float | None = None


class CircuitBreakerRegistry:
    """All circuits of the gateway. Not thread-safe: use it from the event loop only."""

    def __init__(self, settings: CircuitSettings, clock: Clock, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._circuits: dict[CircuitKey, _Circuit] = {}
        self._auth_blocked: set[tuple[str, str]] = set()      # (provider, key_id)
        self._listeners: list[Callable[[CircuitSnapshot], None]] = []
        self._is_prober_running = False

    def set_prober_running(self, is_running: bool) -> None:
        """While a prober runs, OPEN circuits leave OPEN only through a successful probe.

        No user request is spent as a trial on an upstream that may still be down (and may hang until the
        soft timeout): the probe takes that risk instead. Without a prober, trials are the only way back.
        """
        self._is_prober_running = is_running

    def on_change(self, callback: Callable[[CircuitSnapshot], None]) -> None:
        """Call ``callback`` with the new snapshot after every state transition (e.g. to persist)."""
        self._listeners.append(callback)

    def allow_request(self, key: CircuitKey) -> bool:
        """True when CLOSED; once per trial when HALF_OPEN or when a server/timeout backoff is over."""
        if not self._settings.enabled:
            return True
        circuit, now = self._circuit(key), self._clock.now()
        if circuit.state is CircuitState.CLOSED:
            return True
        if circuit.state is CircuitState.OPEN:
            if not self._may_trial(circuit, now):
                return False
            self._transition(circuit, CircuitState.HALF_OPEN, now)
        if circuit.trial_started_at is not None and now - circuit.trial_started_at < _TRIAL_LEASE_SECONDS:
            return False
        circuit.trial_started_at = now
        return True

    def record_success(self, key: CircuitKey, latency_ms: float | None = None) -> None:
        """A real request succeeded; in HALF_OPEN this closes the circuit."""
        if not self._settings.enabled:
            return
        circuit, now = self._circuit(key), self._clock.now()
        circuit.window.add(now)
        if circuit.state is CircuitState.OPEN:
            return    # a reply to a request sent before the opening proves little
        circuit.consecutive_failures = circuit.consecutive_timeouts = 0
        if circuit.state is CircuitState.HALF_OPEN:
            self._close(circuit, now)

    def record_failure(self, key: CircuitKey, error_class: ErrorClass,
                       retry_after_seconds: float | None = None) -> None:
        """A real request failed; ``retry_after_seconds`` comes from a 429's headers when known."""
        if not self._settings.enabled or error_class is ErrorClass.BAD_REQUEST:
            return    # the input was wrong, not the upstream: neither a failure nor a success
        circuit, now = self._circuit(key), self._clock.now()
        circuit.last_failure_class = error_class
        circuit.window.add(now, failures=1)
        if error_class is ErrorClass.AUTH:
            self._block_key(key, now)
            return
        if circuit.state is CircuitState.OPEN:
            return
        circuit.consecutive_failures += 1
        is_timeout = error_class is ErrorClass.TIMEOUT
        circuit.consecutive_timeouts = circuit.consecutive_timeouts + 1 if is_timeout else 0
        if circuit.state is CircuitState.HALF_OPEN or self._should_open(circuit, error_class, now):
            self._open(circuit, error_class, retry_after_seconds, now)

    def due_for_probe(self) -> list[CircuitKey]:
        """OPEN circuits whose backoff is over, auth-open ones excluded."""
        return [s.key for s in self.snapshots() if s.is_probe_due]

    def record_probe_success(self, key: CircuitKey) -> None:
        """OPEN -> HALF_OPEN once the backoff is over; auth-open circuits ignore probes."""
        circuit, now = self._circuit(key), self._clock.now()
        if circuit.state is CircuitState.OPEN and circuit.open_reason is not ErrorClass.AUTH \
                and _is_backoff_over(circuit, now):
            self._transition(circuit, CircuitState.HALF_OPEN, now)

    def record_probe_failure(self, key: CircuitKey, error_class: ErrorClass) -> None:
        """The circuit stays (or goes back) OPEN with a grown backoff."""
        if not self._settings.enabled or error_class is ErrorClass.BAD_REQUEST:
            return
        circuit, now = self._circuit(key), self._clock.now()
        circuit.last_failure_class = error_class
        if error_class is ErrorClass.AUTH:
            self._block_key(key, now)
        elif circuit.state is not CircuitState.CLOSED and circuit.open_reason is not ErrorClass.AUTH:
            self._open(circuit, error_class, None, now)

    def snapshot(self, key: CircuitKey) -> CircuitSnapshot:
        return self._snapshot(self._circuit(key), self._clock.now())

    def snapshots(self) -> list[CircuitSnapshot]:
        now = self._clock.now()
        return [self._snapshot(c, now) for c in self._circuits.values()]

    def soonest_recovery(self, keys: Iterable[CircuitKey]) -> CircuitKey | None:
        """For panic mode: the server/timeout/connection-open circuit whose backoff ends first."""
        candidates = [self.snapshot(k) for k in keys]
        recoverable = [s for s in candidates if s.state is CircuitState.OPEN and s.open_reason in _TRIAL_CLASSES]
        return min(recoverable, key=lambda s: s.open_until or 0.0).key if recoverable else None

    def provider_health(self, provider: str) -> dict[str, Any]:
        """Summary of a provider's circuits: pattern, recommended action and counts (SPEC §6)."""
        snaps = [s for s in self.snapshots() if s.key.provider == provider]
        is_open = [s for s in snaps if s.state is not CircuitState.CLOSED]
        auth_open = sum(1 for s in is_open if s.open_reason is ErrorClass.AUTH)
        rate_limited_open = sum(1 for s in is_open if s.open_reason is ErrorClass.RATE_LIMITED)
        pattern, action = _health_pattern(len(snaps), len(is_open), auth_open, rate_limited_open)
        return {"provider": provider, "pattern": pattern, "recommended_action": action,
                "total_circuits": len(snaps), "open_circuits": len(is_open), "auth_open": auth_open,
                "rate_limited_open": rate_limited_open, "flapping": sum(1 for s in snaps if s.is_flapping)}

    def reset(self, key: CircuitKey) -> bool:
        """Close ``key``; if its key was auth-blocked, unblock every circuit of that key. False if unknown."""
        circuit, pair = self._circuits.get(key), (key.provider, key.key_id)
        if circuit is None and pair not in self._auth_blocked:
            return False
        now = self._clock.now()
        self._unblock_key(pair, now)
        if circuit is not None:
            self._reset_circuit(circuit, now)
        return True

    def clear_auth_for_config_reload(self) -> None:
        """Keys may have been replaced: every auth-open circuit closes."""
        now = self._clock.now()
        for pair in list(self._auth_blocked):
            self._unblock_key(pair, now)

    def to_dict(self) -> dict[str, Any]:
        """Circuits worth keeping across a restart, with wall-clock times."""
        now, wall = self._clock.now(), self._clock.wall()
        kept = [c for c in self._circuits.values() if c.state is not CircuitState.CLOSED or c.is_flapping]
        return {"version": _PERSIST_VERSION, "saved_at_wall": wall,
                "auth_blocked": [{"provider": p, "key_id": k} for p, k in sorted(self._auth_blocked)],
                "circuits": [_circuit_to_dict(c, now, wall) for c in kept]}

    def load_dict(self, state: dict[str, Any]) -> None:
        """Restore ``to_dict`` output; times are rebased on this clock. Bad entries are logged and skipped."""
        now, wall = self._clock.now(), self._clock.wall()
        for entry in state.get("auth_blocked", []):
            if isinstance(entry, dict) and "provider" in entry and "key_id" in entry:
                self._auth_blocked.add((str(entry["provider"]), str(entry["key_id"])))
        for entry in state.get("circuits", []):
            try:
                circuit = _circuit_from_dict(entry, self._new_window(), now, wall)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("circuit_state_entry_skipped")
                continue
            self._circuits[circuit.key] = circuit

    def _may_trial(self, circuit: _Circuit, now: float) -> bool:
        """An OPEN circuit may let one real request through instead of waiting for a probe."""
        return (not self._is_prober_running and circuit.open_reason in _TRIAL_CLASSES
                and _is_backoff_over(circuit, now))

    def _should_open(self, circuit: _Circuit, error_class: ErrorClass, now: float) -> bool:
        settings = self._settings
        if error_class is ErrorClass.RATE_LIMITED:
            return True
        if error_class is ErrorClass.TIMEOUT:     # lenient: only a run of timeouts opens
            return circuit.consecutive_timeouts >= settings.timeout_failure_threshold
        if circuit.consecutive_failures >= settings.failure_threshold:
            return True
        calls, failures = circuit.window.totals(now)
        # a few failures among many successes is noise: they must also be half the window's calls
        return failures >= settings.sliding_window_threshold and 2 * failures >= calls

    def _open(self, circuit: _Circuit, reason: ErrorClass, retry_after_seconds: float | None, now: float) -> None:
        _refresh_flapping(circuit, now)
        if circuit.state is CircuitState.CLOSED:
            self._note_opening(circuit, now)
        circuit.last_opened_at = now
        circuit.open_count += 1
        circuit.open_reason = reason
        circuit.open_until = now + self._backoff_seconds(circuit, reason, retry_after_seconds)
        circuit.trial_started_at = None
        self._transition(circuit, CircuitState.OPEN, now, always_notify=True)

    def _note_opening(self, circuit: _Circuit, now: float) -> None:
        circuit.recent_openings.append(now)
        while len(circuit.recent_openings) > self._settings.flapping_threshold:
            circuit.recent_openings.popleft()
        if len(circuit.recent_openings) >= self._settings.flapping_threshold \
                and now - circuit.recent_openings[0] <= _FLAPPING_WINDOW_SECONDS:
            circuit.is_flapping = True

    def _backoff_seconds(self, circuit: _Circuit, reason: ErrorClass, retry_after_seconds: float | None) -> float:
        settings = self._settings
        exponent = min(circuit.open_count - 1, _MAX_BACKOFF_EXPONENT)
        if reason is ErrorClass.RATE_LIMITED:
            if retry_after_seconds is None or not math.isfinite(retry_after_seconds) or retry_after_seconds < 0:
                retry_after_seconds = _DEFAULT_RATE_LIMIT_SECONDS * 2.0 ** exponent
            return min(retry_after_seconds, settings.max_rate_limit_seconds)
        is_timeout = reason is ErrorClass.TIMEOUT
        cap = settings.timeout_max_backoff_seconds if is_timeout else settings.max_backoff_seconds
        ceiling = min(cap, settings.base_backoff_seconds * 2.0 ** exponent)
        if circuit.is_flapping:
            ceiling *= _FLAPPING_BACKOFF_MULTIPLIER
        return self._rng.random() * ceiling     # full jitter: uniform over [0, ceiling)

    def _close(self, circuit: _Circuit, now: float) -> None:
        circuit.open_reason = circuit.open_until = circuit.trial_started_at = None
        circuit.consecutive_failures = circuit.consecutive_timeouts = circuit.open_count = 0
        circuit.window.clear()
        self._transition(circuit, CircuitState.CLOSED, now)

    def _reset_circuit(self, circuit: _Circuit, now: float) -> None:
        circuit.is_flapping = False
        circuit.recent_openings.clear()
        circuit.last_failure_class = None
        self._close(circuit, now)

    def _block_key(self, key: CircuitKey, now: float) -> None:
        pair = (key.provider, key.key_id)
        if pair not in self._auth_blocked:
            self._auth_blocked.add(pair)
            log.critical("circuit_auth_failed", extra={"provider": key.provider, "key_id": key.key_id})
        for circuit in self._circuits.values():
            if (circuit.key.provider, circuit.key.key_id) == pair and circuit.open_reason is not ErrorClass.AUTH:
                _set_auth_open(circuit)
                self._transition(circuit, CircuitState.OPEN, now, always_notify=True)

    def _unblock_key(self, pair: tuple[str, str], now: float) -> None:
        self._auth_blocked.discard(pair)
        for circuit in self._circuits.values():
            if (circuit.key.provider, circuit.key.key_id) == pair and circuit.open_reason is ErrorClass.AUTH:
                self._reset_circuit(circuit, now)

    def _transition(self, circuit: _Circuit, state: CircuitState, now: float, always_notify: bool = False) -> None:
        if circuit.state is state and not always_notify:
            return
        if circuit.state is not state:
            circuit.state, circuit.last_change = state, now
        if state is not CircuitState.HALF_OPEN:
            circuit.trial_started_at = None
        snapshot = self._snapshot(circuit, now)
        for callback in self._listeners:
            callback(snapshot)

    def _circuit(self, key: CircuitKey) -> _Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = _Circuit(key=key, window=self._new_window(), last_change=self._clock.now())
            if (key.provider, key.key_id) in self._auth_blocked:
                _set_auth_open(circuit)
                circuit.state = CircuitState.OPEN
            self._circuits[key] = circuit
        return circuit

    def _new_window(self) -> _BucketWindow:
        return _BucketWindow(self._settings.sliding_window_seconds, _WINDOW_BUCKETS)

    def _snapshot(self, circuit: _Circuit, now: float) -> CircuitSnapshot:
        _refresh_flapping(circuit, now)
        calls, failures = circuit.window.totals(now)
        is_open = circuit.state is CircuitState.OPEN
        is_probe_due = is_open and circuit.open_reason is not ErrorClass.AUTH and _is_backoff_over(circuit, now)
        return CircuitSnapshot(
            key=circuit.key, state=circuit.state, open_reason=circuit.open_reason, open_until=circuit.open_until,
            consecutive_failures=circuit.consecutive_failures, failures_in_window=failures, calls_in_window=calls,
            open_count=circuit.open_count, is_flapping=circuit.is_flapping,
            last_failure_class=circuit.last_failure_class, last_change=circuit.last_change,
            needs_probe=is_open and (circuit.open_reason is ErrorClass.RATE_LIMITED or self._is_prober_running),
            is_probe_due=is_probe_due)


def _is_backoff_over(circuit: _Circuit, now: float) -> bool:
    return circuit.open_until is not None and now >= circuit.open_until


def _set_auth_open(circuit: _Circuit) -> None:
    circuit.open_reason, circuit.open_until, circuit.trial_started_at = ErrorClass.AUTH, None, None


def _refresh_flapping(circuit: _Circuit, now: float) -> None:
    last_opened_at = circuit.last_opened_at
    if circuit.is_flapping and last_opened_at is not None and now - last_opened_at >= _FLAPPING_STABLE_SECONDS:
        circuit.is_flapping = False
        circuit.recent_openings.clear()


def _health_pattern(total: int, open_count: int, auth_open: int, rate_limited_open: int) -> tuple[str, str]:
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


def _circuit_to_dict(circuit: _Circuit, now: float, wall: float) -> dict[str, Any]:
    return {"provider": circuit.key.provider, "model": circuit.key.model, "key_id": circuit.key.key_id,
            "state": circuit.state.value,
            "open_reason": circuit.open_reason.value if circuit.open_reason else None,
            "open_until_wall": _shift(circuit.open_until, now, wall), "open_count": circuit.open_count,
            "is_flapping": circuit.is_flapping, "last_opened_wall": _shift(circuit.last_opened_at, now, wall),
            "recent_openings_wall": [_shift(t, now, wall) for t in circuit.recent_openings]}


def _circuit_from_dict(entry: dict[str, Any], window: _BucketWindow, now: float, wall: float) -> _Circuit:
    """Raises KeyError, TypeError or ValueError on a malformed entry."""
    reason = entry.get("open_reason")
    circuit = _Circuit(
        key=CircuitKey(str(entry["provider"]), str(entry["model"]), str(entry["key_id"])), window=window,
        state=CircuitState(entry["state"]), open_reason=ErrorClass(reason) if reason is not None else None,
        open_until=_shift(entry.get("open_until_wall"), wall, now), open_count=int(entry.get("open_count", 0)),
        is_flapping=bool(entry.get("is_flapping", False)),
        last_opened_at=_shift(entry.get("last_opened_wall"), wall, now), last_change=now,
        recent_openings=deque(_shift(t, wall, now) or 0.0 for t in entry.get("recent_openings_wall", [])))
    is_stuck_open = circuit.open_reason is not ErrorClass.AUTH and circuit.open_until is None
    if circuit.state is not CircuitState.CLOSED and (circuit.open_reason is None or is_stuck_open):
        raise ValueError("an open circuit needs a reason and, unless auth, an open_until")
    return circuit


class RetryBudget:
    """Caps retries per (provider, model) so retries cannot multiply an outage.

    Retries (attempts beyond the first) may be at most ``retry_ratio`` of the pair's requests over the
    last ``window_seconds``, and at least ``min_retries`` per window.
    """

    def __init__(self, clock: Clock, *, retry_ratio: float = 0.2, min_retries: int = 3,
                 window_seconds: float = 10.0) -> None:
        self._clock = clock
        self._retry_ratio = retry_ratio
        self._min_retries = min_retries
        self._window_seconds = window_seconds
        self._requests: dict[tuple[str, str], _BucketWindow] = {}
        self._retries: dict[tuple[str, str], _BucketWindow] = {}

    def record_request(self, provider: str, model: str) -> None:
        """Count a first attempt."""
        self._window(self._requests, provider, model).add(self._clock.now())

    def try_acquire_retry(self, provider: str, model: str) -> bool:
        """True (and the retry is counted) when the budget allows one more retry now."""
        now = self._clock.now()
        requests, _ = self._window(self._requests, provider, model).totals(now)
        retries = self._window(self._retries, provider, model)
        allowed = max(self._min_retries, math.floor(self._retry_ratio * requests))
        if retries.totals(now)[0] >= allowed:
            return False
        retries.add(now)
        return True

    def _window(self, windows: dict[tuple[str, str], _BucketWindow], provider: str, model: str) -> _BucketWindow:
        window = windows.get((provider, model))
        if window is None:
            window = windows[(provider, model)] = _BucketWindow(self._window_seconds, 10)
        return window
