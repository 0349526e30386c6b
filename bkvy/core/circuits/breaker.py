"""Circuit breakers per (provider, model, key_id) and the retry budget (SPEC §6).

CLOSED (traffic flows) -> OPEN (blocked until ``open_until``) -> HALF_OPEN (one trial) -> CLOSED.
The ``ErrorClass`` that opened a circuit decides how it ends:

- ``auth``: every circuit of the key opens and stays open until ``reset``, or until the key's value changes
  (``reconcile_keys``, on start-up and on a config reload).
- ``not_found``: the upstream does not know the model; its circuits open for every key of the provider for
  ``max_backoff_seconds``, then a probe (or a trial) checks again; a success closes them all.
- ``rate_limited``: open until the provider's retry-after, then only a successful probe leads on.
- ``server`` / ``connection`` / ``timeout``: exponential backoff with full jitter, which holds back user
  traffic: only while no prober runs may one real trial request go through once it is over.

The backoff never delays a probe: an open circuit is probed on its own steady cadence (``probe_due_at``), and a
successful probe ends the backoff, so a recovered upstream is back within about two probe intervals however long
its outage was. Auth-open circuits are never probed.

Times are monotonic seconds from the injected clock; ``to_dict`` stores wall time so a restart keeps
the remaining time.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from bkvy.clock import Clock
from bkvy.core.circuits.cadence import STABLE_SECONDS, count_opening, is_due, probe_due_at
from bkvy.core.circuits.persist import circuit_from_dict, circuit_to_dict, health_pattern
from bkvy.core.circuits.retry_budget import RetryBudget
from bkvy.core.circuits.types import Circuit, CircuitKey, CircuitSettings, CircuitSnapshot, CircuitState
from bkvy.core.circuits.window import BucketWindow
from bkvy.models.types import ErrorClass

__all__ = ["CircuitBreakerRegistry", "CircuitKey", "CircuitSettings", "CircuitSnapshot", "CircuitState", "RetryBudget"]

log = logging.getLogger(__name__)

_WINDOW_BUCKETS = 60  # 600 s window -> 10 s buckets: bounded memory per circuit
_DEFAULT_RATE_LIMIT_SECONDS = 60.0  # a 429 without a usable retry-after
_FLAPPING_WINDOW_SECONDS = 300.0
_FLAPPING_BACKOFF_MULTIPLIER = 5.0
_TRIAL_LEASE_SECONDS = 120.0  # a trial that never reports back frees the slot after this
_MAX_BACKOFF_EXPONENT = 40  # 2**40 is far past any cap; keeps the float finite
_DEFAULT_PROBE_INTERVAL_SECONDS = 10.0  # HEALTH_PROBE_INTERVAL_SECONDS' default, until a prober says its own
_PERSIST_VERSION = 1
_TRIAL_CLASSES = frozenset({ErrorClass.SERVER, ErrorClass.CONNECTION, ErrorClass.TIMEOUT, ErrorClass.NOT_FOUND})
STEADY_CLOSED_FIELDS = (True, True, None, None, False)  # route_fields of a closed, not flapping circuit


class CircuitBreakerRegistry:
    """All circuits of the gateway. Not thread-safe: use it from the event loop only."""

    def __init__(self, settings: CircuitSettings, clock: Clock, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._circuits: dict[CircuitKey, Circuit] = {}
        self._auth_blocked: set[tuple[str, str]] = set()  # (provider, key_id)
        self._missing_models: dict[tuple[str, str], float] = {}  # (provider, model) -> open_until: 404 for it
        self._key_fingerprints: dict[tuple[str, str], str] = {}  # (provider, key_id) -> hash of the key's value
        self._listeners: list[Callable[[CircuitSnapshot], None]] = []
        self._is_prober_running = False
        self._probe_interval_seconds = _DEFAULT_PROBE_INTERVAL_SECONDS

    def set_prober_running(self, is_running: bool, probe_interval_seconds: float | None = None) -> None:
        """While a prober runs, OPEN circuits leave OPEN only through a successful probe.

        No user request is spent as a trial on an upstream that may still be down (and may hang until the
        soft timeout): the probe takes that risk instead. Without a prober, trials are the only way back.
        ``probe_interval_seconds`` is the prober's cadence: at most one probe per circuit per interval.
        """
        self._is_prober_running = is_running
        if probe_interval_seconds is not None:
            self._probe_interval_seconds = probe_interval_seconds

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
            return  # a reply to a request sent before the opening proves little
        circuit.consecutive_failures = circuit.consecutive_timeouts = 0
        if circuit.state is CircuitState.HALF_OPEN:
            self._close(circuit, now)
            self._unblock_model((key.provider, key.model), now)

    def record_failure(
        self, key: CircuitKey, error_class: ErrorClass, retry_after_seconds: float | None = None
    ) -> None:
        """A real request failed; ``retry_after_seconds`` comes from a 429's headers when known."""
        if not self._settings.enabled or error_class is ErrorClass.BAD_REQUEST:
            return  # the input was wrong, not the upstream: neither a failure nor a success
        circuit, now = self._circuit(key), self._clock.now()
        circuit.last_failure_class = error_class
        circuit.window.add(now, failures=1)
        if error_class is ErrorClass.AUTH:
            self._block_key(key, now)
            return
        if error_class is ErrorClass.NOT_FOUND:
            self._block_model(key, now)
            return
        if circuit.state is CircuitState.OPEN:
            return
        circuit.consecutive_failures += 1
        is_timeout = error_class is ErrorClass.TIMEOUT
        circuit.consecutive_timeouts = circuit.consecutive_timeouts + 1 if is_timeout else 0
        if circuit.state is CircuitState.HALF_OPEN or self._should_open(circuit, error_class, now):
            self._open(circuit, error_class, retry_after_seconds, now)

    def due_for_probe(self) -> list[CircuitKey]:
        """OPEN circuits the prober may call now (``probe_due_at``), auth-open ones excluded."""
        now, interval = self._clock.now(), self._probe_interval_seconds
        return [c.key for c in self._circuits.values() if is_due(probe_due_at(c, interval), now)]

    def next_probe_at(self) -> float | None:
        """Monotonic seconds when the next probe falls due, or None when no circuit will need one."""
        interval = self._probe_interval_seconds
        times = [t for t in (probe_due_at(c, interval) for c in self._circuits.values()) if t is not None]
        return min(times, default=None)

    def record_probe_started(self, key: CircuitKey) -> None:
        """A probe of ``key`` is on its way: the next one is due an interval later at the soonest."""
        self._circuit(key).last_probe_at = self._clock.now()

    def record_probe_success(self, key: CircuitKey) -> None:
        """OPEN -> HALF_OPEN, whatever backoff is left (the upstream answered); a rate-limited circuit only once
        its retry-after has passed; auth-open circuits ignore probes."""
        circuit, now = self._circuit(key), self._clock.now()
        is_rate_limit_over = circuit.open_reason is not ErrorClass.RATE_LIMITED or _is_backoff_over(circuit, now)
        if circuit.state is CircuitState.OPEN and circuit.open_reason is not ErrorClass.AUTH and is_rate_limit_over:
            self._transition(circuit, CircuitState.HALF_OPEN, now)

    def record_probe_failure(
        self, key: CircuitKey, error_class: ErrorClass, retry_after_seconds: float | None = None
    ) -> None:
        """The circuit stays (or goes back) OPEN with a grown backoff; a 429's ``retry_after_seconds`` is
        honoured as for a request."""
        if not self._settings.enabled or error_class is ErrorClass.BAD_REQUEST:
            return
        circuit, now = self._circuit(key), self._clock.now()
        circuit.last_failure_class = error_class
        if error_class is ErrorClass.AUTH:
            self._block_key(key, now)
        elif error_class is ErrorClass.NOT_FOUND:
            self._block_model(key, now)
        elif circuit.state is not CircuitState.CLOSED and circuit.open_reason is not ErrorClass.AUTH:
            self._open(circuit, error_class, retry_after_seconds, now)

    def snapshot(self, key: CircuitKey) -> CircuitSnapshot:
        return self._snapshot(self._circuit(key), self._clock.now())

    def route_fields(self, key: CircuitKey) -> tuple[bool, bool, ErrorClass | None, float | None, bool]:
        """(is_closed, allows_request, open_reason, open_until, is_flapping) for routing. A closed, steady
        circuit (nearly every one, nearly always) answers without building a snapshot."""
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.state is CircuitState.CLOSED and not circuit.is_flapping:
            return STEADY_CLOSED_FIELDS
        snapshot = self.snapshot(key)
        is_open = snapshot.state is CircuitState.OPEN
        is_backoff_over = snapshot.open_until is not None and self._clock.now() >= snapshot.open_until
        allows = not is_open or (is_backoff_over and not snapshot.needs_probe)  # as _may_trial
        return (
            snapshot.state is CircuitState.CLOSED,
            allows,
            snapshot.open_reason if is_open else None,
            snapshot.open_until,
            snapshot.is_flapping,
        )

    def snapshots(self) -> list[CircuitSnapshot]:
        now = self._clock.now()
        return [self._snapshot(c, now) for c in self._circuits.values()]

    def provider_health(self, provider: str) -> dict[str, Any]:
        """Summary of a provider's circuits: pattern, recommended action and counts (SPEC §6)."""
        snaps = [s for s in self.snapshots() if s.key.provider == provider]
        is_open = [s for s in snaps if s.state is not CircuitState.CLOSED]
        auth_open = sum(1 for s in is_open if s.open_reason is ErrorClass.AUTH)
        rate_limited_open = sum(1 for s in is_open if s.open_reason is ErrorClass.RATE_LIMITED)
        pattern, action = health_pattern(len(snaps), len(is_open), auth_open, rate_limited_open)
        return {
            "provider": provider,
            "pattern": pattern,
            "recommended_action": action,
            "total_circuits": len(snaps),
            "open_circuits": len(is_open),
            "auth_open": auth_open,
            "rate_limited_open": rate_limited_open,
            "flapping": sum(1 for s in snaps if s.is_flapping),
        }

    def reset(self, key: CircuitKey) -> bool:
        """Close ``key``; if its key was auth-blocked, unblock every circuit of that key. False if unknown."""
        circuit, pair = self._circuits.get(key), (key.provider, key.key_id)
        if circuit is None and pair not in self._auth_blocked:
            return False
        now = self._clock.now()
        self._unblock_key(pair, now)
        self._unblock_model((key.provider, key.model), now)
        if circuit is not None:
            self._reset_circuit(circuit, now)
        return True

    def reconcile_keys(self, fingerprints: Mapping[tuple[str, str], str]) -> list[tuple[str, str]]:
        """Match the circuits to the config's keys, by (provider, key_id) -> fingerprint of the key's value
        (``core.config.fingerprint``; never the value). On start-up and on every reload.

        A key whose fingerprint changed (or was never recorded, yet has circuits) gets fresh circuits: closed,
        its auth block lifted, its backoff history gone. A key no longer configured has its circuits dropped.
        Returns the keys renewed: those whose value changed, and those with circuits but no fingerprint (a state
        saved before fingerprints were: whether the key changed is unknown, and a wrong guess costs one attempt)."""
        now, known = self._clock.now(), self._key_fingerprints
        renewed: list[tuple[str, str]] = []
        pairs = {(c.key.provider, c.key.key_id) for c in self._circuits.values()} | self._auth_blocked
        for pair in sorted(pairs | set(known)):
            if pair not in fingerprints:
                self._auth_blocked.discard(pair)
                for key in [k for k in self._circuits if (k.provider, k.key_id) == pair]:
                    del self._circuits[key]
            elif known.get(pair, fingerprints[pair]) != fingerprints[pair] or (pair not in known and pair in pairs):
                self._renew_key(pair, now)
                renewed.append(pair)
        self._key_fingerprints = dict(fingerprints)
        return renewed

    def to_dict(self) -> dict[str, Any]:
        """Circuits worth keeping across a restart, with wall-clock times."""
        now, wall = self._clock.now(), self._clock.wall()
        kept = [c for c in self._circuits.values() if c.state is not CircuitState.CLOSED or c.is_flapping]
        return {
            "version": _PERSIST_VERSION,
            "saved_at_wall": wall,
            "auth_blocked": [{"provider": p, "key_id": k} for p, k in sorted(self._auth_blocked)],
            "key_fingerprints": [
                {"provider": p, "key_id": k, "fingerprint": f} for (p, k), f in sorted(self._key_fingerprints.items())
            ],
            "circuits": [circuit_to_dict(c, now, wall) for c in kept],
        }

    def load_dict(self, state: dict[str, Any]) -> None:
        """Restore ``to_dict`` output; times are rebased on this clock. Bad entries are logged and skipped."""
        now, wall = self._clock.now(), self._clock.wall()
        for entry in state.get("auth_blocked", []):
            if isinstance(entry, dict) and "provider" in entry and "key_id" in entry:
                self._auth_blocked.add((str(entry["provider"]), str(entry["key_id"])))
        for entry in state.get("key_fingerprints", []):
            if isinstance(entry, dict) and {"provider", "key_id", "fingerprint"} <= entry.keys():
                self._key_fingerprints[(str(entry["provider"]), str(entry["key_id"]))] = str(entry["fingerprint"])
        for entry in state.get("circuits", []):
            try:
                circuit = circuit_from_dict(entry, self._new_window(), now, wall)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("circuit_state_entry_skipped")
                continue
            self._circuits[circuit.key] = circuit

    def export_circuit(self, key: CircuitKey) -> dict[str, Any]:
        """``key``'s state as the JSON file stores it (wall-clock times) plus its key's fingerprint (never the
        value): what other replicas take with ``apply_shared`` (REDIS_URL, docs/SCALING.md)."""
        entry = circuit_to_dict(self._circuit(key), self._clock.now(), self._clock.wall())
        entry["fingerprint"] = self._key_fingerprints.get((key.provider, key.key_id))
        return entry

    def apply_shared(self, entry: Mapping[str, Any]) -> CircuitKey | None:
        """Take one circuit's state from another replica (``export_circuit``); listeners are told as for a local
        transition. Ignored (None) when that key's value differs here (another config). Raises KeyError,
        TypeError or ValueError on a malformed entry."""
        now = self._clock.now()
        incoming = circuit_from_dict(dict(entry), self._new_window(), now, self._clock.wall())
        key = incoming.key
        if self._key_fingerprints.get((key.provider, key.key_id)) != entry.get("fingerprint"):
            return None
        circuit = self._circuit(key)
        self._note_shared_blocks(key, circuit.open_reason, incoming)
        circuit.open_reason, circuit.open_until = incoming.open_reason, incoming.open_until
        circuit.open_count, circuit.is_flapping = incoming.open_count, incoming.is_flapping
        circuit.last_opened_at, circuit.recent_openings = incoming.last_opened_at, incoming.recent_openings
        circuit.trial_started_at = None
        if incoming.state is CircuitState.CLOSED:
            circuit.consecutive_failures = circuit.consecutive_timeouts = 0
            circuit.last_probe_at = None
            circuit.window.clear()
        self._transition(circuit, incoming.state, now, always_notify=True)
        return key

    def _note_shared_blocks(self, key: CircuitKey, previous_reason: ErrorClass | None, incoming: Circuit) -> None:
        """A shared auth or not_found opening blocks the key or the model here too; its end unblocks them."""
        pair, model = (key.provider, key.key_id), (key.provider, key.model)
        if incoming.open_reason is ErrorClass.AUTH:
            self._auth_blocked.add(pair)
        elif previous_reason is ErrorClass.AUTH:
            self._auth_blocked.discard(pair)
        if incoming.open_reason is ErrorClass.NOT_FOUND and incoming.open_until is not None:
            self._missing_models[model] = incoming.open_until
        elif previous_reason is ErrorClass.NOT_FOUND:
            self._missing_models.pop(model, None)

    def _may_trial(self, circuit: Circuit, now: float) -> bool:
        """An OPEN circuit may let one real request through instead of waiting for a probe."""
        return not self._is_prober_running and circuit.open_reason in _TRIAL_CLASSES and _is_backoff_over(circuit, now)

    def _should_open(self, circuit: Circuit, error_class: ErrorClass, now: float) -> bool:
        settings = self._settings
        if error_class is ErrorClass.RATE_LIMITED:
            return True
        if error_class is ErrorClass.TIMEOUT:  # lenient: only a run of timeouts opens
            return circuit.consecutive_timeouts >= settings.timeout_failure_threshold
        if circuit.consecutive_failures >= settings.failure_threshold:
            return True
        calls, failures = circuit.window.totals(now)
        # a few failures among many successes is noise: they must also be half the window's calls
        return failures >= settings.sliding_window_threshold and 2 * failures >= calls

    def _open(self, circuit: Circuit, reason: ErrorClass, retry_after_seconds: float | None, now: float) -> None:
        _refresh_flapping(circuit, now)
        if circuit.state is CircuitState.CLOSED:
            self._note_opening(circuit, now)
        circuit.last_opened_at = now
        count_opening(circuit, reason, now)
        circuit.open_reason = reason
        circuit.open_until = now + self._backoff_seconds(circuit, reason, retry_after_seconds)
        circuit.trial_started_at = None
        self._transition(circuit, CircuitState.OPEN, now, always_notify=True)

    def _note_opening(self, circuit: Circuit, now: float) -> None:
        circuit.recent_openings.append(now)
        while len(circuit.recent_openings) > self._settings.flapping_threshold:
            circuit.recent_openings.popleft()
        if (
            len(circuit.recent_openings) >= self._settings.flapping_threshold
            and now - circuit.recent_openings[0] <= _FLAPPING_WINDOW_SECONDS
        ):
            circuit.is_flapping = True

    def _backoff_seconds(self, circuit: Circuit, reason: ErrorClass, retry_after_seconds: float | None) -> float:
        settings = self._settings
        exponent = min(circuit.open_count - 1, _MAX_BACKOFF_EXPONENT)
        if reason is ErrorClass.RATE_LIMITED:
            if retry_after_seconds is None or not math.isfinite(retry_after_seconds) or retry_after_seconds < 0:
                retry_after_seconds = _DEFAULT_RATE_LIMIT_SECONDS * 2.0**exponent
            return min(retry_after_seconds, settings.max_rate_limit_seconds)
        is_timeout = reason is ErrorClass.TIMEOUT
        cap = settings.timeout_max_backoff_seconds if is_timeout else settings.max_backoff_seconds
        ceiling = min(cap, settings.base_backoff_seconds * 2.0**exponent)
        if circuit.is_flapping:
            ceiling *= _FLAPPING_BACKOFF_MULTIPLIER
        return self._rng.random() * ceiling  # full jitter: uniform over [0, ceiling)

    def _close(self, circuit: Circuit, now: float) -> None:
        circuit.open_reason = circuit.open_until = circuit.trial_started_at = circuit.last_probe_at = None
        circuit.consecutive_failures = circuit.consecutive_timeouts = circuit.open_count = 0
        circuit.window.clear()
        self._transition(circuit, CircuitState.CLOSED, now)

    def _reset_circuit(self, circuit: Circuit, now: float) -> None:
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

    def _block_model(self, key: CircuitKey, now: float) -> None:
        """A 404 for the model: every circuit of it, for every key of the provider (those not built yet too,
        see ``_circuit``), opens for ``max_backoff_seconds``. Logged once per model, not per request."""
        model = (key.provider, key.model)
        if model not in self._missing_models:
            log.error("upstream_model_not_found", extra={"provider": key.provider, "model": key.model})
        open_until = self._missing_models[model] = now + self._settings.max_backoff_seconds
        self._circuit(key)  # this key's circuit exists, so the loop below opens it
        for circuit in self._circuits.values():
            if (circuit.key.provider, circuit.key.model) == model and circuit.open_reason is not ErrorClass.AUTH:
                _set_missing(circuit, open_until)
                self._transition(circuit, CircuitState.OPEN, now, always_notify=True)

    def _unblock_model(self, model: tuple[str, str], now: float) -> None:
        """The model answered again: its circuits still open for ``not_found`` close."""
        if self._missing_models.pop(model, None) is None:
            return
        log.info("upstream_model_found", extra={"provider": model[0], "model": model[1]})
        for circuit in self._circuits.values():
            if (circuit.key.provider, circuit.key.model) == model and circuit.open_reason is ErrorClass.NOT_FOUND:
                self._close(circuit, now)

    def _renew_key(self, pair: tuple[str, str], now: float) -> None:
        """Every circuit of this key as if new: a replaced key owes nothing to the old one's failures."""
        self._unblock_key(pair, now)
        for circuit in self._circuits.values():
            if (circuit.key.provider, circuit.key.key_id) == pair:
                self._reset_circuit(circuit, now)

    def _transition(self, circuit: Circuit, state: CircuitState, now: float, always_notify: bool = False) -> None:
        if circuit.state is state and not always_notify:
            return
        if circuit.state is not state:
            circuit.state, circuit.last_change = state, now
        if state is not CircuitState.HALF_OPEN:
            circuit.trial_started_at = None
        snapshot = self._snapshot(circuit, now)
        for callback in self._listeners:
            callback(snapshot)

    def _circuit(self, key: CircuitKey) -> Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = Circuit(key=key, window=self._new_window(), last_change=self._clock.now())
            if (key.provider, key.key_id) in self._auth_blocked:
                _set_auth_open(circuit)
                circuit.state = CircuitState.OPEN
            elif (key.provider, key.model) in self._missing_models:
                _set_missing(circuit, self._missing_models[key.provider, key.model])
                circuit.state = CircuitState.OPEN
            self._circuits[key] = circuit
        return circuit

    def _new_window(self) -> BucketWindow:
        return BucketWindow(self._settings.sliding_window_seconds, _WINDOW_BUCKETS)

    def _snapshot(self, circuit: Circuit, now: float) -> CircuitSnapshot:
        _refresh_flapping(circuit, now)
        calls, failures = circuit.window.totals(now)
        is_open = circuit.state is CircuitState.OPEN
        is_probe_due = is_due(probe_due_at(circuit, self._probe_interval_seconds), now)
        return CircuitSnapshot(
            key=circuit.key,
            state=circuit.state,
            open_reason=circuit.open_reason,
            open_until=circuit.open_until,
            consecutive_failures=circuit.consecutive_failures,
            failures_in_window=failures,
            calls_in_window=calls,
            open_count=circuit.open_count,
            is_flapping=circuit.is_flapping,
            last_failure_class=circuit.last_failure_class,
            last_change=circuit.last_change,
            needs_probe=is_open and (circuit.open_reason is ErrorClass.RATE_LIMITED or self._is_prober_running),
            is_probe_due=is_probe_due,
        )


def _is_backoff_over(circuit: Circuit, now: float) -> bool:
    return circuit.open_until is not None and now >= circuit.open_until


def _set_auth_open(circuit: Circuit) -> None:
    circuit.open_reason, circuit.open_until, circuit.trial_started_at = ErrorClass.AUTH, None, None


def _set_missing(circuit: Circuit, open_until: float) -> None:
    circuit.open_reason, circuit.open_until, circuit.trial_started_at = ErrorClass.NOT_FOUND, open_until, None


def _refresh_flapping(circuit: Circuit, now: float) -> None:
    last_opened_at = circuit.last_opened_at
    if circuit.is_flapping and last_opened_at is not None and now - last_opened_at >= STABLE_SECONDS:
        circuit.is_flapping = False
        circuit.recent_openings.clear()
