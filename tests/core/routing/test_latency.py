from __future__ import annotations

import json
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
