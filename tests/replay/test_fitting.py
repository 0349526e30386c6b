"""Fitting latency distributions and error episodes from a hand-built log."""

from __future__ import annotations

import random

import pytest

from bkvy.replay.fitting import LatencyFit, fit_episodes, fit_fleet, fit_latency, percentile
from bkvy.utils.records import TransactionRecord, utc_timestamp

_T0 = 1_764_600_000.0  # 2025-12-01T14:40:00Z


def answered(at: float, model: str = "openai/gpt-4o", ms: float = 100.0, **fields: object) -> TransactionRecord:
    provider, name = model.split("/")
    return TransactionRecord(
        utc_timestamp(_T0 + at), f"r{at}", success=True, provider_used=provider, model_used=name,
        total_time_ms=ms, input_tokens=10, output_tokens=5, cost_estimate=0.001, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def failed_over(at: float, tried: str, outcomes: str = "", model: str = "anthropic/claude") -> TransactionRecord:
    return answered(at, model, fallback_attempts=1, alternatives_tried=tried, alternatives_outcomes=outcomes)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 50) == 30.0
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile(values, 100) == 50.0
    assert percentile([], 50) == 0.0


def test_latency_fit_is_the_empirical_quantile_function_of_first_attempt_answers() -> None:
    records = [answered(i, ms=float(ms)) for i, ms in enumerate(range(10, 110, 10))]
    records.append(answered(20, ms=9999.0, fallback_attempts=1))  # a retry's time is two calls': left out
    records.append(answered(21, ms=100.0, hedged=True))  # a race's time: a lower bound of the slow call's, kept
    records.append(answered(22, ms=500.0, queue_wait_ms=300.0, rate_limit_wait_ms=100.0))  # the call: 100 ms
    fit = fit_latency(records)["openai/gpt-4o"]
    assert fit.sorted_ms == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 100.0, 100.0)
    assert fit.quantile(0.5) == 65.0
    assert fit.quantile(1.0) == 100.0


def test_latency_samples_reproduce_the_fitted_percentiles() -> None:
    fit = LatencyFit(tuple(float(ms) for ms in range(1, 1001)))
    rng = random.Random(1)
    samples = sorted(fit.sample_seconds(rng) * 1000 for _ in range(20_000))
    assert percentile(samples, 50) == pytest.approx(500, rel=0.03)
    assert percentile(samples, 95) == pytest.approx(950, rel=0.03)


def test_a_model_the_log_never_saw_answers_like_the_pool() -> None:
    fleet = fit_fleet([answered(0, "a/x", ms=10.0), answered(1, "b/y", ms=30.0)])
    assert fleet.latency_for("c/new").sorted_ms == (10.0, 30.0)


def test_failures_close_in_time_are_one_episode_per_error_class() -> None:
    records = [
        failed_over(100, "openai/gpt-4o/k1", "rate_limited"),
        failed_over(110, "openai/gpt-4o/k1", "rate_limited"),
        failed_over(125, "openai/gpt-4o/k2;openai/gpt-4o/k1", "rate_limited;server"),
        failed_over(400, "openai/gpt-4o/k1", "rate_limited"),  # 275 s later: a new episode
        answered(105),  # gpt-4o answered once inside the first 429 window
        answered(300),
    ]
    episodes = fit_episodes(records, gap_seconds=30.0, pad_seconds=1.0)["openai/gpt-4o"]
    described = [(e.error_class, e.start_wall - _T0, e.end_wall - _T0, e.failures) for e in episodes]
    assert described == [
        ("rate_limited", 99.0, 126.0, 3),
        ("server", 124.0, 126.0, 1),
        ("rate_limited", 399.0, 401.0, 1),
    ]
    assert episodes[0].failure_rate == pytest.approx(3 / 4)
    assert episodes[2].failure_rate == 1.0


def test_episode_at_finds_the_window_covering_a_moment() -> None:
    fleet = fit_fleet([failed_over(100, "openai/gpt-4o/k1", "timeout"), answered(500)], gap_seconds=30.0)
    assert fleet.episode_at("openai/gpt-4o", _T0 + 100.5) is not None
    assert fleet.episode_at("openai/gpt-4o", _T0 + 200) is None
    assert fleet.episode_at("anthropic/claude", _T0 + 100) is None


def test_a_log_without_the_outcomes_column_counts_failures_as_server_errors() -> None:
    episodes = fit_episodes([failed_over(0, "gemini/models/gemini-pro/k1")], gap_seconds=30.0, pad_seconds=1.0)
    assert [(e.model, e.error_class) for e in episodes["gemini/models/gemini-pro"]] == [
        ("gemini/models/gemini-pro", "server")
    ]
