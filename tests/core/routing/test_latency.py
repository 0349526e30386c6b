from __future__ import annotations

import json
import math
import random

import pytest

from bkvy.core.routing.latency import BUCKET_COUNT, LatencyTracker

KEY = ("p", "m")


def _feed(tracker: LatencyTracker, values: list[float]) -> None:
    for seconds in values:
        tracker.observe(*KEY, seconds)


def _true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_p95_of_fast_calls_with_a_few_outliers_is_near_the_true_p95() -> None:
    rng = random.Random(5)
    values = [rng.uniform(0.040, 0.060) for _ in range(196)] + [2.0] * 4
    rng.shuffle(values)
    tracker = LatencyTracker()
    _feed(tracker, values)
    p95 = tracker.quantile_seconds(KEY, 0.95)
    assert p95 == pytest.approx(_true_quantile(values, 0.95), rel=0.10)
    assert p95 < 0.07  # the 2 s outliers (2 %) do not drag p95, unlike a mean
    assert tracker.quantile_seconds(KEY, 0.99) == pytest.approx(2.0, rel=0.10)


def test_decay_lets_p95_follow_a_shift_within_a_few_percent_of_a_half_life() -> None:
    tracker = LatencyTracker(half_life_observations=200)
    _feed(tracker, [0.050] * 2000)
    _feed(tracker, [0.500] * 10)
    assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(0.050, rel=0.10)
    _feed(tracker, [0.500] * 10)  # 20 slow of the last answers: their weight is now > 5 %
    assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(0.500, rel=0.10)
    _feed(tracker, [0.500] * 1000)  # five half-lives: the old regime is gone, even at the median
    assert tracker.quantile_seconds(KEY, 0.05) == pytest.approx(0.500, rel=0.10)


def test_quantile_is_none_before_min_observations_and_for_unknown_keys() -> None:
    tracker = LatencyTracker(min_observations=20)
    _feed(tracker, [0.05] * 19)
    assert tracker.quantile_seconds(KEY, 0.95) is None
    assert tracker.observations(KEY) == 19
    tracker.observe(*KEY, 0.05)
    assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(0.05, rel=0.10)
    assert tracker.quantile_seconds(("p", "other"), 0.95) is None
    assert tracker.observations(("p", "other")) == 0


def test_expected_seconds_uses_the_seed_until_the_first_answer() -> None:
    tracker = LatencyTracker()
    assert tracker.expected_seconds(KEY, 1.5) == 1.5
    tracker.observe(*KEY, 0.2)
    assert tracker.expected_seconds(KEY, 1.5) == 0.2


def test_on_change_is_called_per_sample() -> None:
    tracker = LatencyTracker()
    seen: list[tuple[str, str]] = []
    tracker.on_change(seen.append)
    tracker.observe("p", "m", 0.1)
    assert seen == [("p", "m")]


def test_memory_is_bounded_by_the_bucket_count_whatever_the_values() -> None:
    tracker = LatencyTracker()
    rng = random.Random(1)
    _feed(tracker, [10 ** rng.uniform(-7, 4) for _ in range(20_000)] + [0.0, -1.0, float("inf"), float("nan")])
    (entry,) = tracker.to_dict()["models"]  # type: ignore[misc]
    assert len(entry["buckets"]) <= BUCKET_COUNT <= 150
    assert all(0 <= index < BUCKET_COUNT for index, _ in entry["buckets"])
    lowest, highest = tracker.quantile_seconds(KEY, 0.0), tracker.quantile_seconds(KEY, 1.0)
    assert lowest is not None and highest is not None
    assert 0.001 <= lowest <= highest <= 600 * 1.1


def test_long_runs_rescale_without_losing_the_estimate() -> None:
    tracker = LatencyTracker(half_life_observations=10)  # weights pass the rescale threshold after ~3,300 samples
    _feed(tracker, [0.3] * 10_000)
    assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(0.3, rel=0.10)


def test_round_trip_through_json_keeps_quantiles_and_mean() -> None:
    tracker = LatencyTracker()
    rng = random.Random(2)
    _feed(tracker, [rng.lognormvariate(-3, 0.5) for _ in range(500)])
    restored = LatencyTracker()
    changed: list[tuple[str, str]] = []
    restored.on_change(changed.append)
    assert restored.load_dict(json.loads(json.dumps(tracker.to_dict()))) == 1
    for q in (0.5, 0.95, 0.99):
        assert restored.quantile_seconds(KEY, q) == pytest.approx(tracker.quantile_seconds(KEY, q), rel=1e-4)
    assert restored.expected_seconds(KEY, 9.0) == pytest.approx(tracker.expected_seconds(KEY, 9.0))
    assert restored.observations(KEY) == 500 and changed == [KEY]
    _feed(restored, [5.0] * 50)  # decay goes on from the loaded state
    assert restored.quantile_seconds(KEY, 0.95) == pytest.approx(5.0, rel=0.10)


@pytest.mark.parametrize(
    "snapshot",
    [
        None,
        [],
        "x",
        {},
        {"version": 99, "models": []},
        {"version": 1, "min_seconds": 0.001, "bucket_growth": 1.2, "bucket_count": 140, "models": []},
    ],
)
def test_load_ignores_other_versions_and_layouts(snapshot: object) -> None:
    tracker = LatencyTracker()
    assert tracker.load_dict(snapshot) == 0


def test_load_skips_malformed_entries_and_keeps_good_ones() -> None:
    source = LatencyTracker()
    _feed(source, [0.05] * 30)
    snapshot = source.to_dict()
    good = snapshot["models"][0]  # type: ignore[index]
    snapshot["models"] = [  # type: ignore[index]
        good,
        "x",
        {"provider": 1},
        good | {"buckets": [[999, 1.0]]},
        good | {"buckets": [[0, -1.0]]},
        good | {"observations": True},
        good | {"ewma_seconds": "fast"},
        good | {"buckets": [[1]]},
        good | {"provider": "q", "buckets": [[3, float("nan")]]},
    ]
    tracker = LatencyTracker()
    assert tracker.load_dict(snapshot) == 1
    assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(0.05, rel=0.10)
    assert tracker.observations(("q", "m")) == 0


def test_quantile_outside_zero_to_one_is_a_value_error() -> None:
    tracker = LatencyTracker()
    with pytest.raises(ValueError):
        tracker.quantile_seconds(KEY, 95)


# --- The tracked tail (O(1) per read) agrees with a walk over the buckets ---


@pytest.mark.parametrize("seed", range(5))
def test_tracked_p95_equals_the_walk_over_the_buckets(seed: int) -> None:
    rng = random.Random(seed)
    tracker = LatencyTracker(half_life_observations=rng.choice([10.0, 200.0]), min_observations=1)
    histogram = tracker._histograms
    for step in range(4000):  # shifting regimes, outliers, and (half-life 10) several rescales
        scale = 0.05 if (step // 500) % 2 == 0 else 2.0
        tracker.observe(*KEY, rng.lognormvariate(0, 1) * scale if rng.random() > 0.02 else 300.0)
        if step % 37 == 0:
            assert tracker.quantile_seconds(KEY, 0.95) == pytest.approx(histogram[KEY].quantile(0.95), rel=1e-9)
    restored = LatencyTracker(min_observations=1)
    restored.load_dict(json.loads(json.dumps(tracker.to_dict())))
    assert restored.quantile_seconds(KEY, 0.95) == pytest.approx(histogram[KEY].quantile(0.95), rel=1e-4)


# --- What routing judges a model by ---


def test_routing_latency_is_the_seed_then_the_mean_then_p95() -> None:
    tracker = LatencyTracker(min_observations=20)
    assert tracker.routing_latency(KEY, 1.5, now=0.0) == (1.5, math.inf)
    _feed(tracker, [1.0] * 17 + [6.0] * 2)  # 19 samples: the mean still
    assert tracker.routing_latency(KEY, 1.5, now=0.0)[0] == pytest.approx(tracker.expected_seconds(KEY, 1.5))
    _feed(tracker, [1.0])  # 20 samples: p95, the slow tail, not the mean
    seconds, holds_until = tracker.routing_latency(KEY, 1.5, now=0.0)
    assert seconds == pytest.approx(6.0, rel=0.10) and seconds > 2 * tracker.expected_seconds(KEY, 1.5)
    assert holds_until == math.inf


def test_an_attempt_older_than_p95_makes_the_model_as_slow_as_its_age() -> None:
    tracker = LatencyTracker()
    _feed(tracker, [0.5] * 50)
    p95 = tracker.quantile_seconds(KEY, 0.95)
    assert p95 is not None
    tracker.attempt_started(KEY, 10.0)
    assert tracker.routing_latency(KEY, 9.0, now=10.0) == (p95, 10.0 + p95)  # holds until the attempt is slow
    assert tracker.routing_latency(KEY, 9.0, now=10.0 + p95 * 0.9)[0] == p95
    assert tracker.routing_latency(KEY, 9.0, now=13.0) == (3.0, 13.0)  # its age, and only for this moment
    tracker.attempt_ended(KEY, 10.0)
    assert tracker.routing_latency(KEY, 9.0, now=13.0) == (p95, math.inf)


def test_the_oldest_in_flight_attempt_is_tracked_through_out_of_order_ends() -> None:
    tracker = LatencyTracker()
    changes: list[tuple[str, str]] = []
    tracker.on_in_flight_change(changes.append)
    assert tracker.oldest_in_flight_started(KEY) is None
    for started_at in (1.0, 2.0, 2.0, 3.0):
        tracker.attempt_started(KEY, started_at)
    assert tracker.oldest_in_flight_started(KEY) == 1.0 and len(changes) == 1
    tracker.attempt_ended(KEY, 2.0)  # not the oldest: nothing changes
    tracker.attempt_ended(KEY, 3.0)
    assert tracker.oldest_in_flight_started(KEY) == 1.0 and len(changes) == 1
    tracker.attempt_ended(KEY, 1.0)  # the other attempt started at 2.0 is now the oldest
    assert tracker.oldest_in_flight_started(KEY) == 2.0 and len(changes) == 2
    tracker.attempt_started(KEY, 0.5)  # started before the oldest (out of order): the oldest now
    assert tracker.oldest_in_flight_started(KEY) == 0.5 and len(changes) == 3
    tracker.attempt_ended(KEY, 0.5)
    tracker.attempt_ended(KEY, 0.5)  # a second end of an ended attempt is ignored
    tracker.attempt_ended(KEY, 2.0)
    assert tracker.oldest_in_flight_started(KEY) is None and len(changes) == 5
    tracker.attempt_started(KEY, 4.0)
    assert tracker.oldest_in_flight_started(KEY) == 4.0 and len(changes) == 6


def test_in_flight_matches_a_plain_list_in_any_order() -> None:
    """Fuzz against the obvious O(n) model: min of the start times still in flight."""
    rng = random.Random(3)
    tracker = LatencyTracker()
    in_flight: list[float] = []
    now = 0.0
    for _ in range(3000):
        if in_flight and rng.random() < 0.5:
            started_at = in_flight.pop(rng.randrange(len(in_flight)))
            tracker.attempt_ended(KEY, started_at)
        else:
            now += rng.choice([0.0, 0.0, 0.1, 1.0])  # equal start times happen on a fake clock
            started_at = now - (rng.choice([0.0, 0.5]) if rng.random() < 0.1 else 0.0)  # a few out of order
            in_flight.append(started_at)
            tracker.attempt_started(KEY, started_at)
        assert tracker.oldest_in_flight_started(KEY) == (min(in_flight) if in_flight else None)


def test_routing_latency_follows_each_new_sample_and_a_load() -> None:
    tracker = LatencyTracker(min_observations=20)
    _feed(tracker, [0.1] * 30)
    assert tracker.routing_latency(KEY, 9.0, now=0.0)[0] == pytest.approx(0.1, rel=0.10)
    _feed(tracker, [3.0] * 5)
    assert tracker.routing_latency(KEY, 9.0, now=0.0)[0] == pytest.approx(3.0, rel=0.10)
    snapshot = LatencyTracker(min_observations=20)
    _feed(snapshot, [0.5] * 30)
    tracker.load_dict(snapshot.to_dict())
    assert tracker.routing_latency(KEY, 9.0, now=0.0)[0] == pytest.approx(0.5, rel=0.10)
    few = LatencyTracker()
    _feed(few, [0.5] * 3)
    entry = few.to_dict()["models"][0] | {"ewma_seconds": None}  # type: ignore[index]
    fresh = LatencyTracker()
    assert fresh.load_dict(few.to_dict() | {"models": [entry]}) == 1
    assert fresh.routing_latency(KEY, 9.0, now=0.0)[0] == 9.0  # 3 samples and no mean: the seed
