"""Circuit breaker rules (SPEC §6 and the breaker issue), driven by a FakeClock: nothing sleeps."""

from __future__ import annotations

import logging
import random

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import (
    CircuitBreakerRegistry,
    CircuitKey,
    CircuitSettings,
    CircuitSnapshot,
    CircuitState,
    RetryBudget,
)
from bkvy.models.types import ErrorClass

KEY = CircuitKey("openai", "gpt-4o-mini", "key-a")
OTHER_MODEL = CircuitKey("openai", "gpt-4o", "key-a")
OTHER_KEY = CircuitKey("openai", "gpt-4o-mini", "key-b")
YEAR_SECONDS = 365 * 86400.0


class _MaxJitter(random.Random):
    """Jitter always at the top of its range, so a test can read the backoff ceiling."""

    def random(self) -> float:
        return 1.0


def _registry(clock: FakeClock, rng: random.Random | None = None, **overrides: object) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(CircuitSettings(**overrides), clock, rng or _MaxJitter())  # type: ignore[arg-type]


def _fail(
    registry: CircuitBreakerRegistry, times: int, error_class: ErrorClass = ErrorClass.SERVER, key: CircuitKey = KEY
) -> None:
    for _ in range(times):
        registry.record_failure(key, error_class)


def _backoff(registry: CircuitBreakerRegistry, clock: FakeClock, key: CircuitKey = KEY) -> float:
    open_until = registry.snapshot(key).open_until
    assert open_until is not None
    return open_until - clock.now()


def _recover(registry: CircuitBreakerRegistry, clock: FakeClock, key: CircuitKey = KEY) -> None:
    clock.advance(_backoff(registry, clock, key))
    assert registry.allow_request(key)
    registry.record_success(key)
    assert registry.snapshot(key).state is CircuitState.CLOSED


# -- opening ---------------------------------------------------------------------------------------


def test_new_circuit_is_closed_and_allows_requests() -> None:
    registry = _registry(FakeClock())
    assert registry.allow_request(KEY)
    assert registry.snapshot(KEY).state is CircuitState.CLOSED


def test_opens_after_three_consecutive_failures() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 2)
    assert registry.snapshot(KEY).state is CircuitState.CLOSED
    _fail(registry, 1)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN
    assert snapshot.open_reason is ErrorClass.SERVER
    assert not registry.allow_request(KEY)


def test_success_resets_the_consecutive_count() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 2)
    registry.record_success(KEY)
    _fail(registry, 2)
    assert registry.snapshot(KEY).state is CircuitState.CLOSED
    assert registry.snapshot(KEY).consecutive_failures == 2


def test_failures_on_one_circuit_leave_others_closed() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 3)
    assert registry.allow_request(OTHER_MODEL)
    assert registry.allow_request(OTHER_KEY)


def test_window_opens_on_five_failures_that_are_half_the_calls() -> None:
    registry = _registry(FakeClock())
    for outcome in "SFFSFFSF":  # never 3 in a row; 5 failures among 8 calls
        registry.record_success(KEY) if outcome == "S" else registry.record_failure(KEY, ErrorClass.SERVER)
    snapshot = registry.snapshot(KEY)
    assert (snapshot.failures_in_window, snapshot.calls_in_window) == (5, 8)
    assert snapshot.state is CircuitState.OPEN


def test_window_ignores_five_failures_among_many_successes() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(1000):
        registry.record_success(KEY)
    for _ in range(5):
        registry.record_failure(KEY, ErrorClass.SERVER)
        registry.record_success(KEY)
    snapshot = registry.snapshot(KEY)
    assert snapshot.failures_in_window == 5
    assert snapshot.state is CircuitState.CLOSED


def test_window_forgets_failures_older_than_the_window() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(4):
        registry.record_failure(KEY, ErrorClass.SERVER)
        registry.record_success(KEY)
    clock.advance(601.0)
    registry.record_failure(KEY, ErrorClass.SERVER)
    snapshot = registry.snapshot(KEY)
    assert (snapshot.failures_in_window, snapshot.calls_in_window) == (1, 1)
    assert snapshot.state is CircuitState.CLOSED


def test_bad_request_counts_neither_as_failure_nor_success() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 2)
    _fail(registry, 10, ErrorClass.BAD_REQUEST)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.CLOSED
    assert snapshot.consecutive_failures == 2  # not reset either
    assert snapshot.calls_in_window == 2
    _fail(registry, 1)
    assert registry.snapshot(KEY).state is CircuitState.OPEN


def test_timeouts_are_lenient_and_open_only_after_five_in_a_row() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 4, ErrorClass.TIMEOUT)
    assert registry.snapshot(KEY).state is CircuitState.CLOSED
    _fail(registry, 1, ErrorClass.TIMEOUT)
    assert registry.snapshot(KEY).state is CircuitState.OPEN
    assert registry.snapshot(KEY).open_reason is ErrorClass.TIMEOUT


def test_timeout_backoff_is_capped_at_five_minutes() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 5, ErrorClass.TIMEOUT)
    for _ in range(10):
        clock.advance(_backoff(registry, clock))
        registry.record_probe_failure(KEY, ErrorClass.TIMEOUT)
    assert _backoff(registry, clock) == pytest.approx(300.0)


# -- backoff ---------------------------------------------------------------------------------------


def test_server_backoff_doubles_per_opening_up_to_the_cap() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    ceilings = [_backoff(registry, clock)]
    for _ in range(10):
        clock.advance(ceilings[-1])
        registry.record_probe_failure(KEY, ErrorClass.SERVER)
        ceilings.append(_backoff(registry, clock))
    assert ceilings == pytest.approx([10, 20, 40, 80, 160, 320, 640, 1280, 1800, 1800, 1800])


def test_server_backoff_jitter_stays_within_zero_and_the_ceiling() -> None:
    clock = FakeClock()
    registry = _registry(clock, random.Random(7))
    _fail(registry, 3, ErrorClass.CONNECTION)
    backoffs = [_backoff(registry, clock)]
    for _ in range(11):
        clock.advance(backoffs[-1])
        registry.record_probe_failure(KEY, ErrorClass.CONNECTION)
        backoffs.append(_backoff(registry, clock))
    for opening, backoff in enumerate(backoffs):
        assert 0.0 <= backoff <= min(1800.0, 10.0 * 2**opening)
    assert len(set(backoffs)) == len(backoffs)  # jittered, not a fixed schedule


def test_seeded_rng_gives_reproducible_backoff() -> None:
    first, second = FakeClock(), FakeClock()
    registry_a, registry_b = _registry(first, random.Random(3)), _registry(second, random.Random(3))
    _fail(registry_a, 3)
    _fail(registry_b, 3)
    assert _backoff(registry_a, first) == _backoff(registry_b, second)


# -- half-open -------------------------------------------------------------------------------------


def test_open_circuit_blocks_until_backoff_then_allows_one_trial() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    clock.advance(9.9)
    assert not registry.allow_request(KEY)
    clock.advance(0.1)
    assert registry.allow_request(KEY)
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN
    assert not registry.allow_request(KEY)  # at most one trial in flight
    assert not registry.allow_request(KEY)


def test_success_in_half_open_closes_the_circuit() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    clock.advance(10.0)
    assert registry.allow_request(KEY)
    registry.record_success(KEY)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.CLOSED
    assert (snapshot.open_until, snapshot.open_count, snapshot.consecutive_failures) == (None, 0, 0)
    assert registry.allow_request(KEY) and registry.allow_request(KEY)


def test_failure_in_half_open_reopens_with_grown_backoff() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    clock.advance(10.0)
    assert registry.allow_request(KEY)
    _fail(registry, 1)
    assert registry.snapshot(KEY).state is CircuitState.OPEN
    assert _backoff(registry, clock) == pytest.approx(20.0)
    assert not registry.allow_request(KEY)


def test_probe_success_moves_to_half_open_whatever_backoff_is_left() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    for _ in range(6):  # a long outage: the backoff grows to 640 s
        clock.advance(10.0)
        registry.record_probe_started(KEY)
        registry.record_probe_failure(KEY, ErrorClass.SERVER)
    assert _backoff(registry, clock) == pytest.approx(640.0)
    clock.advance(10.0)
    assert registry.due_for_probe() == [KEY]  # the probe keeps its cadence; the backoff holds back users only
    assert not registry.allow_request(KEY)
    registry.record_probe_success(KEY)
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN
    assert registry.due_for_probe() == []
    assert registry.allow_request(KEY)
    assert not registry.allow_request(KEY)


def test_probe_failure_keeps_the_circuit_open_with_grown_backoff() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    clock.advance(10.0)
    registry.record_probe_failure(KEY, ErrorClass.SERVER)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.open_count == 2
    assert _backoff(registry, clock) == pytest.approx(20.0)


def test_unfinished_trial_frees_its_slot_after_the_lease() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _fail(registry, 3)
    clock.advance(10.0)
    assert registry.allow_request(KEY)
    clock.advance(119.0)
    assert not registry.allow_request(KEY)
    clock.advance(1.0)
    assert registry.allow_request(KEY)


# -- rate limits -----------------------------------------------------------------------------------


def test_429_opens_at_once_until_retry_after() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=30.0)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.open_reason is ErrorClass.RATE_LIMITED
    assert snapshot.needs_probe and not snapshot.is_probe_due
    clock.advance(29.9)
    assert not registry.allow_request(KEY)
    assert registry.due_for_probe() == []


def test_429_after_retry_after_needs_a_probe_not_a_trial() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=30.0)
    clock.advance(30.0)
    assert not registry.allow_request(KEY)  # no real request before a probe succeeds
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.is_probe_due and snapshot.needs_probe
    assert registry.due_for_probe() == [KEY]
    registry.record_probe_success(KEY)
    assert registry.snapshot(KEY).state is CircuitState.HALF_OPEN
    assert registry.allow_request(KEY)
    registry.record_success(KEY)
    assert registry.snapshot(KEY).state is CircuitState.CLOSED


def test_429_without_retry_after_waits_sixty_seconds() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED)
    assert _backoff(registry, clock) == pytest.approx(60.0)


def test_429_retry_after_is_capped_at_a_day() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=10 * 86400.0)
    assert _backoff(registry, clock) == pytest.approx(86400.0)


def _long_outage(registry: CircuitBreakerRegistry, clock: FakeClock, probes: int = 6) -> None:
    """Open KEY for 5xx and fail ``probes`` probes an interval apart: the opening count grows."""
    _fail(registry, 3)
    for _ in range(probes):
        clock.advance(10.0)
        registry.record_probe_started(KEY)
        registry.record_probe_failure(KEY, ErrorClass.SERVER)


def test_429_on_a_probe_honours_retry_after_whatever_the_openings_before() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _long_outage(registry, clock)
    assert registry.snapshot(KEY).open_count == 7
    clock.advance(10.0)
    registry.record_probe_started(KEY)
    registry.record_probe_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=3.0)
    snapshot = registry.snapshot(KEY)
    assert snapshot.open_reason is ErrorClass.RATE_LIMITED and snapshot.open_count == 1
    assert _backoff(registry, clock) == pytest.approx(3.0)


def test_429_without_retry_after_after_an_outage_waits_sixty_seconds_not_a_grown_backoff() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _long_outage(registry, clock)
    clock.advance(10.0)
    registry.record_probe_failure(KEY, ErrorClass.RATE_LIMITED)
    assert _backoff(registry, clock) == pytest.approx(60.0)  # not 60 s x 2^7
    clock.advance(60.0)
    registry.record_probe_failure(KEY, ErrorClass.RATE_LIMITED)
    assert _backoff(registry, clock) == pytest.approx(120.0)  # a run of 429s still grows
    clock.advance(120.0)
    registry.record_probe_failure(KEY, ErrorClass.SERVER)
    assert _backoff(registry, clock) == pytest.approx(10.0)  # and a 503 starts its own run again


def test_a_429_circuit_is_due_for_a_probe_when_retry_after_ends_then_at_most_once_per_interval() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=3.0)
    assert registry.next_probe_at() == pytest.approx(clock.now() + 3.0)
    clock.advance(3.0)
    assert registry.due_for_probe() == [KEY]
    registry.record_probe_started(KEY)
    registry.record_probe_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=3.0)
    assert _backoff(registry, clock) == pytest.approx(3.0)
    clock.advance(3.0)
    assert registry.due_for_probe() == []  # retry-after is over, but the last probe was 3 s ago
    assert registry.next_probe_at() == pytest.approx(clock.now() + 7.0)
    clock.advance(7.0)
    assert registry.due_for_probe() == [KEY]


def test_a_failing_circuit_is_probed_every_interval_whatever_its_backoff() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.set_prober_running(True, probe_interval_seconds=15.0)
    _fail(registry, 3)
    assert registry.next_probe_at() == pytest.approx(clock.now() + 15.0)  # one interval after the opening
    due_after = []
    for _ in range(8):
        started = clock.now()
        clock.advance(registry.next_probe_at() - clock.now())  # type: ignore[operator]
        due_after.append(clock.now() - started)
        assert registry.due_for_probe() == [KEY]
        registry.record_probe_started(KEY)
        clock.advance(2.0)  # the probe's reply takes a while
        registry.record_probe_failure(KEY, ErrorClass.SERVER)
    assert due_after == pytest.approx([15.0] + [13.0] * 7)  # 15 s from one probe to the next
    assert _backoff(registry, clock) == pytest.approx(1800.0)  # while user traffic waits ever longer
    assert not registry.allow_request(KEY)


def test_opening_count_restarts_after_ten_stable_minutes_in_half_open() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    _long_outage(registry, clock, probes=3)
    clock.advance(10.0)
    registry.record_probe_success(KEY)  # half-open; no user request comes to close it
    clock.advance(599.0)
    assert registry.allow_request(KEY)
    _fail(registry, 1)
    assert registry.snapshot(KEY).open_count == 5  # not yet stable: the run goes on
    clock.advance(10.0)
    registry.record_probe_success(KEY)
    clock.advance(600.0)
    assert registry.allow_request(KEY)
    _fail(registry, 1)
    assert registry.snapshot(KEY).open_count == 1
    assert _backoff(registry, clock) == pytest.approx(10.0)


def test_probe_success_does_not_end_a_429_before_its_retry_after() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=30.0)
    registry.record_probe_success(KEY)
    assert registry.snapshot(KEY).state is CircuitState.OPEN


# -- auth ------------------------------------------------------------------------------------------


def test_auth_failure_opens_every_model_of_the_key_and_logs_critical(caplog: pytest.LogCaptureFixture) -> None:
    registry = _registry(FakeClock())
    registry.allow_request(OTHER_MODEL)
    with caplog.at_level(logging.CRITICAL, logger="bkvy.core.circuits.breaker"):
        registry.record_failure(KEY, ErrorClass.AUTH)
    for key in (KEY, OTHER_MODEL, CircuitKey("openai", "never-seen-before", "key-a")):
        snapshot = registry.snapshot(key)
        assert snapshot.state is CircuitState.OPEN and snapshot.open_reason is ErrorClass.AUTH
        assert not registry.allow_request(key)
    assert registry.allow_request(OTHER_KEY)
    assert registry.allow_request(CircuitKey("anthropic", "gpt-4o-mini", "key-a"))
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert record.getMessage() == "circuit_auth_failed"
    assert (record.provider, record.key_id) == ("openai", "key-a")  # type: ignore[attr-defined]


def test_auth_open_never_recovers_by_itself() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.AUTH)
    clock.advance(YEAR_SECONDS)
    assert not registry.allow_request(KEY)
    assert registry.due_for_probe() == []
    registry.record_probe_success(KEY)
    registry.record_success(KEY)
    snapshot = registry.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.open_until is None
    assert not snapshot.is_probe_due


def test_reset_clears_auth_for_every_model_of_the_key() -> None:
    registry = _registry(FakeClock())
    registry.allow_request(OTHER_MODEL)
    registry.record_failure(KEY, ErrorClass.AUTH)
    assert registry.reset(KEY)
    for key in (KEY, OTHER_MODEL):
        assert registry.snapshot(key).state is CircuitState.CLOSED
        assert registry.allow_request(key)


def test_reset_of_an_unknown_circuit_returns_false() -> None:
    assert not _registry(FakeClock()).reset(KEY)


def test_reset_closes_a_server_open_circuit() -> None:
    registry = _registry(FakeClock())
    _fail(registry, 3)
    assert registry.reset(KEY)
    assert registry.allow_request(KEY)


def test_a_key_whose_value_changed_gets_its_auth_block_lifted_others_stay() -> None:
    registry = _registry(FakeClock())
    registry.reconcile_keys({("openai", "key-a"): "f1", ("openai", "key-b"): "f2", ("gemini", "key-g"): "f3"})
    registry.record_failure(KEY, ErrorClass.AUTH)
    registry.record_failure(OTHER_KEY, ErrorClass.AUTH)
    _fail(registry, 3, key=CircuitKey("gemini", "flash", "key-g"))
    registry.reconcile_keys({("openai", "key-a"): "f1-new", ("openai", "key-b"): "f2", ("gemini", "key-g"): "f3"})
    assert registry.allow_request(KEY)
    assert not registry.allow_request(OTHER_KEY)
    assert not registry.allow_request(CircuitKey("gemini", "flash", "key-g"))


# -- flapping --------------------------------------------------------------------------------------


def test_three_openings_in_five_minutes_mark_flapping_and_multiply_backoff_by_five() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(2):
        _fail(registry, 3)
        assert _backoff(registry, clock) == pytest.approx(10.0)
        _recover(registry, clock)
    assert not registry.snapshot(KEY).is_flapping
    _fail(registry, 3)
    assert registry.snapshot(KEY).is_flapping
    assert _backoff(registry, clock) == pytest.approx(50.0)


def test_openings_spread_over_more_than_five_minutes_are_not_flapping() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(3):
        _fail(registry, 3)
        _recover(registry, clock)
        clock.advance(200.0)
    assert not registry.snapshot(KEY).is_flapping


def test_flapping_clears_after_ten_stable_minutes() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(3):
        _fail(registry, 3)
        _recover(registry, clock)
    assert registry.snapshot(KEY).is_flapping
    clock.advance(600.0 - 50.0 - 1.0)  # the last opening was 50 s ago
    assert registry.snapshot(KEY).is_flapping
    clock.advance(1.0)
    assert not registry.snapshot(KEY).is_flapping
    _fail(registry, 3)
    assert _backoff(registry, clock) == pytest.approx(10.0)


# -- listeners, switches ----------------------------------------------------------------------------


def test_on_change_is_called_for_each_transition() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    seen: list[CircuitSnapshot] = []
    registry.on_change(seen.append)
    _fail(registry, 2)
    assert seen == []
    _fail(registry, 1)
    clock.advance(10.0)
    registry.allow_request(KEY)
    registry.record_success(KEY)
    assert [s.state for s in seen] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_disabled_breaker_never_blocks() -> None:
    registry = _registry(FakeClock(), enabled=False)
    _fail(registry, 10)
    registry.record_failure(KEY, ErrorClass.AUTH)
    assert registry.allow_request(KEY)


# -- provider health -------------------------------------------------------------------------------


def _provider_with(registry: CircuitBreakerRegistry, count: int) -> list[CircuitKey]:
    keys = [CircuitKey("openai", f"model-{i}", "key-a") for i in range(count)]
    for key in keys:
        registry.allow_request(key)
    return keys


def test_provider_health_is_healthy_when_all_closed() -> None:
    registry = _registry(FakeClock())
    _provider_with(registry, 4)
    health = registry.provider_health("openai")
    assert health["pattern"] == "healthy"
    assert (health["total_circuits"], health["open_circuits"]) == (4, 0)


def test_provider_health_isolated_when_few_circuits_open() -> None:
    registry = _registry(FakeClock())
    keys = _provider_with(registry, 4)
    _fail(registry, 3, key=keys[0])
    assert registry.provider_health("openai")["pattern"] == "isolated"


def test_provider_health_widespread_when_half_are_open() -> None:
    registry = _registry(FakeClock())
    keys = _provider_with(registry, 4)
    _fail(registry, 3, key=keys[0])
    _fail(registry, 5, ErrorClass.TIMEOUT, key=keys[1])
    health = registry.provider_health("openai")
    assert health["pattern"] == "widespread" and health["open_circuits"] == 2
    assert health["recommended_action"]


def test_provider_health_rate_limited_when_most_are_429() -> None:
    registry = _registry(FakeClock())
    keys = _provider_with(registry, 4)
    for key in keys[:3]:
        registry.record_failure(key, ErrorClass.RATE_LIMITED, retry_after_seconds=30.0)
    health = registry.provider_health("openai")
    assert health["pattern"] == "rate_limited" and health["rate_limited_open"] == 3


def test_provider_health_auth_wins_over_everything() -> None:
    registry = _registry(FakeClock())
    _provider_with(registry, 4)
    registry.record_failure(CircuitKey("openai", "model-0", "key-b"), ErrorClass.AUTH)
    health = registry.provider_health("openai")
    assert health["pattern"] == "auth" and health["auth_open"] == 1
    assert registry.provider_health("anthropic")["pattern"] == "healthy"


# -- persistence -----------------------------------------------------------------------------------


def test_restart_keeps_circuits_open_for_the_remaining_time() -> None:
    before = FakeClock(start=1000.0, wall_start=1_700_000_000.0)
    registry = _registry(before)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=300.0)
    registry.record_failure(OTHER_KEY, ErrorClass.AUTH)
    saved = registry.to_dict()
    # the process restarts 100 s later: monotonic time starts elsewhere, wall time moved on
    after = FakeClock(start=50.0, wall_start=1_700_000_100.0)
    restored = _registry(after)
    restored.load_dict(saved)
    snapshot = restored.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN and snapshot.open_reason is ErrorClass.RATE_LIMITED
    assert snapshot.open_until == pytest.approx(50.0 + 200.0)
    after.advance(199.0)
    assert restored.due_for_probe() == []
    after.advance(1.0)
    assert restored.due_for_probe() == [KEY]
    assert not restored.allow_request(CircuitKey("openai", "another-model", "key-b"))


def test_restart_keeps_flapping_and_backoff_exponent() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for _ in range(3):
        _fail(registry, 3)
        _recover(registry, clock)
    _fail(registry, 3, key=OTHER_KEY)
    clock.advance(_backoff(registry, clock, OTHER_KEY))
    registry.record_probe_failure(OTHER_KEY, ErrorClass.SERVER)
    restored = _registry(FakeClock(start=0.0, wall_start=clock.wall()))
    restored.load_dict(registry.to_dict())
    assert restored.snapshot(KEY).is_flapping
    assert restored.snapshot(OTHER_KEY).open_count == 2


def test_load_skips_malformed_entries() -> None:
    registry = _registry(FakeClock())
    registry.load_dict(
        {
            "circuits": [
                {"provider": "openai"},
                {"provider": "x", "model": "m", "key_id": "k", "state": "open", "open_reason": "server"},
                {"provider": "openai", "model": "gpt-4o-mini", "key_id": "key-a", "state": "bogus"},
            ]
        }
    )
    assert registry.snapshots() == []


def test_load_skips_an_entry_with_an_infinite_open_until() -> None:
    registry = _registry(FakeClock())
    registry.load_dict(
        {
            "circuits": [
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "key_id": "key-a",
                    "state": "open",
                    "open_reason": "server",
                    "open_until_wall": float("inf"),
                }
            ]
        }
    )
    assert registry.snapshots() == []


# -- retry budget ----------------------------------------------------------------------------------


def test_retry_budget_allows_at_least_three_retries_per_window() -> None:
    budget = RetryBudget(FakeClock())
    assert [budget.try_acquire_retry("openai", "m") for _ in range(4)] == [True, True, True, False]


def test_retry_budget_allows_twenty_percent_of_requests() -> None:
    budget = RetryBudget(FakeClock())
    for _ in range(50):
        budget.record_request("openai", "m")
    granted = sum(budget.try_acquire_retry("openai", "m") for _ in range(20))
    assert granted == 10
    assert budget.try_acquire_retry("openai", "other-model")


def test_retry_budget_refills_after_the_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock)
    for _ in range(3):
        assert budget.try_acquire_retry("openai", "m")
    assert not budget.try_acquire_retry("openai", "m")
    clock.advance(10.0)
    assert budget.try_acquire_retry("openai", "m")
