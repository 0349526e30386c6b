import asyncio
import bisect
import itertools
import json
import logging
import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bkvy.clock import FakeClock
from bkvy.utils.daily_stats import LATENCY_BOUNDS_MS, DailyStats, DayTotals
from bkvy.utils.records import TransactionRecord, utc_timestamp

NOV_14_NOON = datetime(2023, 11, 14, 12, 0, tzinfo=UTC).timestamp()


class WallClock(FakeClock):
    def __init__(self, wall_seconds: float) -> None:
        super().__init__()
        self.wall_seconds = wall_seconds

    def wall(self) -> float:
        return self.wall_seconds


def make_record(
    total_time_ms: float, *, timestamp: str | None = None, success: bool = True, **overrides: object
) -> TransactionRecord:
    values: dict[str, object] = {
        "timestamp": timestamp or utc_timestamp(NOV_14_NOON),
        "request_id": "req",
        "client_id": "team-a",
        "routing_method": "intelligence",
        "intelligence_level": "low",
        "success": success,
        "provider_used": "openai",
        "model_used": "gpt-4o-mini",
        "api_key_used": "k1",
        "total_time_ms": total_time_ms,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_estimate": 0.25,
    }
    values.update(overrides)
    return TransactionRecord(**values)  # type: ignore[arg-type]


def bucket_edges(latency_ms: float) -> tuple[float, float]:
    index = bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)
    return (LATENCY_BOUNDS_MS[index - 1] if index else 0.0), LATENCY_BOUNDS_MS[index]


def exact_percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(quantile * len(ordered)) - 1]


async def let_tasks_run(ticks: int = 20) -> None:
    for _ in range(ticks):  # event-loop turns, no wall-clock time
        await asyncio.sleep(0)


def test_bounds_are_log_spaced_from_1ms_to_600s() -> None:
    assert LATENCY_BOUNDS_MS[0] == 1.0 and LATENCY_BOUNDS_MS[-1] == 600_000.0
    assert 50 <= len(LATENCY_BOUNDS_MS) <= 80
    ratios = {round(b / a, 3) for a, b in itertools.pairwise(LATENCY_BOUNDS_MS)}
    assert len(ratios) <= 2  # equal up to rounding


@pytest.mark.parametrize("distribution", ["uniform", "lognormal"])
def test_percentiles_fall_in_the_bucket_of_the_exact_value(tmp_path: Path, distribution: str) -> None:
    rng = random.Random(7)
    if distribution == "uniform":
        latencies = [float(ms) for ms in range(1, 10_001)]
    else:
        latencies = [rng.lognormvariate(math.log(400), 0.8) for _ in range(20_000)]
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    for latency_ms in latencies:
        stats.observe(make_record(latency_ms))

    report = stats.day("2023-11-14")
    assert report is not None
    for quantile, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        low, high = bucket_edges(exact_percentile(latencies, quantile))
        assert low <= report[key] <= high, (key, report[key], low, high)
    assert report["average_ms"] == pytest.approx(sum(latencies) / len(latencies))


def test_single_valued_latency_is_exact(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    for _ in range(3):
        stats.observe(make_record(42.0))
    report = stats.day("2023-11-14")
    assert report is not None
    assert report["p50_ms"] == report["p99_ms"] == report["min_ms"] == report["max_ms"] == 42.0


def test_day_report_counts_every_dimension(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    stats.observe(make_record(100.0))
    stats.observe(
        make_record(
            300.0,
            success=False,
            error_type="rate_limited",
            provider_used="anthropic",
            model_used="claude-3-haiku",
            api_key_used="k2",
            cost_estimate=None,
            input_tokens=None,
            output_tokens=None,
            routing_method="scenario",
        )
    )
    report = stats.day("2023-11-14")
    assert report is not None
    assert (report["total"], report["successes"], report["failures"]) == (2, 1, 1)
    assert report["success_rate"] == 0.5
    assert report["by_routing_method"] == {"intelligence": 1, "scenario": 1}
    assert report["by_provider"] == {"openai": 1, "anthropic": 1}
    assert report["by_model"] == {"gpt-4o-mini": 1, "claude-3-haiku": 1}
    assert report["by_key_id"] == {"k1": 1, "k2": 1}
    assert report["by_client_id"] == {"team-a": 2}
    assert report["by_intelligence_level"] == {"low": 2}
    assert report["errors_by_code"] == {"rate_limited": 1}
    assert report["total_cost"] == 0.25
    assert (report["input_tokens"], report["output_tokens"]) == (10, 20)
    assert report["average_ms"] == 200.0 and report["total_latency_ms"] == 400.0
    assert stats.day("2023-11-15") is None


def test_days_are_utc_calendar_days(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    stats.observe(make_record(1.0, timestamp="2023-11-14T23:59:59.999Z"))
    stats.observe(make_record(1.0, timestamp="2023-11-15T00:00:00.000Z"))
    stats.observe(make_record(1.0, timestamp="2023-11-15T01:30:00+02:00"))  # 23:30 UTC on the 14th
    stats.observe(make_record(1.0, timestamp="not a time"))  # falls back to the clock
    assert stats.days() == ["2023-11-14", "2023-11-15"]
    assert stats.day("2023-11-14")["total"] == 3  # type: ignore[index]
    assert stats.day("2023-11-15")["total"] == 1  # type: ignore[index]


@pytest.mark.asyncio
async def test_restart_continues_counts_and_percentiles(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "daily_stats.json"
    first = DailyStats(path, WallClock(NOV_14_NOON))
    await first.load()
    for _ in range(100):
        first.observe(make_record(1000.0))
    assert await first.save()

    second = DailyStats(path, WallClock(NOV_14_NOON))
    await second.load()
    for _ in range(10):
        second.observe(make_record(10.0))
    report = second.day("2023-11-14")
    assert report is not None
    assert report["total"] == 110 and report["successes"] == 110
    low, high = bucket_edges(1000.0)
    assert low <= report["p95_ms"] <= high  # a reset would have given 10 ms
    assert report["total_cost"] == pytest.approx(110 * 0.25)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"version": 1}', '{"version": 1, "latency_bounds_ms": [], "days": {"d": {"total": "x"}}}'],
)
async def test_corrupt_file_is_set_aside_and_stats_start_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "daily_stats.json"
    path.write_text(content)
    stats = DailyStats(path, WallClock(NOV_14_NOON))
    with caplog.at_level(logging.WARNING):
        await stats.load()
    assert stats.days() == []
    assert "daily_stats_unreadable" in caplog.text
    assert (tmp_path / "daily_stats.json.corrupt").read_text() == content
    stats.observe(make_record(5.0))
    assert await stats.save()
    assert json.loads(path.read_text())["days"]["2023-11-14"]["total"] == 1


@pytest.mark.asyncio
async def test_missing_file_loads_empty(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "absent.json", WallClock(NOV_14_NOON))
    await stats.load()
    assert stats.days() == []


def test_aggregate_merges_histograms_over_a_date_range(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    for day, latency_ms in (("2023-11-13", 10.0), ("2023-11-14", 1000.0), ("2023-11-15", 100_000.0)):
        for _ in range(100):
            stats.observe(make_record(latency_ms, timestamp=f"{day}T08:00:00Z"))

    merged = stats.aggregate("2023-11-13", "2023-11-14")
    assert merged["day_count"] == 2 and merged["total"] == 200
    assert bucket_edges(10.0)[0] <= merged["p50_ms"] <= bucket_edges(10.0)[1]
    assert bucket_edges(1000.0)[0] <= merged["p95_ms"] <= bucket_edges(1000.0)[1]
    assert merged["max_ms"] == 1000.0
    assert stats.aggregate()["total"] == 300
    assert stats.aggregate(start_date="2023-11-15")["total"] == 100
    assert stats.aggregate("2024-01-01", "2024-01-31")["total"] == 0
    assert stats.aggregate("2024-01-01", "2024-01-31")["p95_ms"] is None


def test_summary_has_today_and_all_time(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    stats.observe(make_record(10.0, timestamp="2023-11-13T08:00:00Z"))
    stats.observe(make_record(20.0))
    summary = stats.summary()
    assert summary["today"]["date"] == "2023-11-14" and summary["today"]["total"] == 1
    assert summary["all_time"]["total"] == 2 and summary["all_time"]["day_count"] == 2


@pytest.mark.asyncio
async def test_saved_file_holds_no_message_content(tmp_path: Path) -> None:
    path = tmp_path / "daily_stats.json"
    stats = DailyStats(path, WallClock(NOV_14_NOON))
    stats.observe(
        make_record(
            10.0,
            success=False,
            error_type="server_error",
            error_message="upstream echoed SECRET-PROMPT",
            decision_reason="SECRET-REASON",
        )
    )
    await stats.save()
    text = path.read_text()
    assert "SECRET" not in text and "server_error" in text
    assert [p.name for p in tmp_path.iterdir()] == ["daily_stats.json"]  # no temp file left


class CountingStats(DailyStats):
    save_calls = 0

    async def save(self) -> bool:
        self.save_calls += 1
        return await super().save()


@pytest.mark.asyncio
async def test_saves_are_debounced_and_stop_saves_the_rest(tmp_path: Path) -> None:
    clock = WallClock(NOV_14_NOON)
    path = tmp_path / "daily_stats.json"
    stats = CountingStats(path, clock, debounce_seconds=2.0)
    await stats.start()
    for _ in range(5):
        stats.observe(make_record(10.0))
    await let_tasks_run()
    clock.advance(1.9)
    await let_tasks_run()
    assert stats.save_calls == 0
    clock.advance(0.1)
    await let_tasks_run()
    assert stats.save_calls == 1
    stats.observe(make_record(10.0))
    await stats.stop()
    assert stats.save_calls == 2
    assert json.loads(path.read_text())["days"]["2023-11-14"]["total"] == 6


@pytest.mark.asyncio
async def test_save_failure_returns_false_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    stats = DailyStats(blocker / "daily_stats.json", WallClock(NOV_14_NOON))
    stats.observe(make_record(1.0))
    assert await stats.save() is False
    await stats.stop()  # tries again, still must not raise


def test_hedged_and_retried_requests_are_counted_per_day(tmp_path: Path) -> None:
    stats = DailyStats(tmp_path / "stats.json", WallClock(NOV_14_NOON))
    stats.observe(make_record(10.0))
    stats.observe(make_record(10.0, hedged=True))
    stats.observe(make_record(10.0, fallback_attempts=2))
    stats.observe(make_record(10.0, hedged=True, fallback_attempts=1, success=False, error_type="hard_timeout"))
    stats.observe(make_record(10.0, timestamp="2023-11-15T08:00:00Z", hedged=True))
    report = stats.day("2023-11-14")
    assert report is not None
    assert (report["hedged"], report["hedge_rate"]) == (2, 0.5)
    assert (report["retried"], report["retry_rate"]) == (2, 0.5)
    both = stats.aggregate("2023-11-14", "2023-11-15")
    assert (both["hedged"], both["retried"], both["total"]) == (3, 2, 5)
    assert both["hedge_rate"] == 0.6


@pytest.mark.asyncio
async def test_a_file_from_before_hedging_loads_with_nothing_hedged(tmp_path: Path) -> None:
    path = tmp_path / "daily_stats.json"
    first = DailyStats(path, WallClock(NOV_14_NOON))
    for _ in range(3):
        first.observe(make_record(10.0))
    assert await first.save()
    document = json.loads(path.read_text())
    for totals in document["days"].values():  # the file as bkvy wrote it before issue 13
        del totals["hedged"], totals["retried"]
    path.write_text(json.dumps(document))

    second = DailyStats(path, WallClock(NOV_14_NOON))
    await second.load()
    second.observe(make_record(10.0, hedged=True, fallback_attempts=1))
    report = second.day("2023-11-14")
    assert report is not None and not (tmp_path / "daily_stats.json.corrupt").exists()
    assert (report["total"], report["hedged"], report["retried"], report["hedge_rate"]) == (4, 1, 1, 0.25)
    assert await second.save()

    third = DailyStats(path, WallClock(NOV_14_NOON))
    await third.load()
    assert (third.day("2023-11-14") or {})["hedged"] == 1  # kept across a restart


@pytest.mark.asyncio
async def test_client_chosen_names_are_bounded_per_dimension_and_totals_stay_exact(tmp_path: Path) -> None:
    path = tmp_path / "daily_stats.json"
    stats = DailyStats(path, WallClock(NOV_14_NOON), max_keys_per_dimension=10)
    for n in range(10_000):
        stats.observe(make_record(5.0, client_id=f"c{n}", success=False, error_type="unknown_scenario"))
        stats.observe(make_record(5.0, client_id="steady", scenario="support", routing_method="scenario"))
    stats.observe(make_record(5.0, scenario=f"x{'y' * 120}", success=False, error_type="unknown_scenario"))
    report = stats.day("2023-11-14")
    assert report is not None and report["total"] == 20_001
    assert len(report["by_client_id"]) == 11 and next(iter(report["by_client_id"])) == "steady"
    assert sum(report["by_client_id"].values()) == 20_001
    assert report["by_scenario"] == {"support": 10_000, "unknown": 1}  # an unknown name is never a key
    assert await stats.save()
    assert path.stat().st_size < 4096
    reloaded = DailyStats(path, WallClock(NOV_14_NOON), max_keys_per_dimension=5)  # a smaller bound since
    await reloaded.load()
    again = reloaded.day("2023-11-14")
    assert again is not None and len(again["by_client_id"]) == 6 and again["by_client_id"]["other"] > 0
    assert sum(again["by_client_id"].values()) == 20_001


@pytest.mark.asyncio
async def test_a_save_serialises_only_the_days_that_changed_and_none_when_nothing_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "daily_stats.json"
    stats = DailyStats(path, WallClock(NOV_14_NOON))
    stats.observe(make_record(1.0, timestamp="2023-11-13T10:00:00.000Z"))
    stats.observe(make_record(1.0))
    assert await stats.save()
    serialised: list[int] = []
    original = DayTotals.to_json
    monkeypatch.setattr(DayTotals, "to_json", lambda totals: serialised.append(totals.total) or original(totals))
    stats.observe(make_record(1.0))
    assert await stats.save()
    assert serialised == [2]  # only the 14th, now with 2 requests
    document = json.loads(path.read_text())
    assert {day: totals["total"] for day, totals in document["days"].items()} == {"2023-11-13": 1, "2023-11-14": 2}
    inode = path.stat().st_ino
    await stats.stop()  # nothing changed since the last save: the file is not written again
    assert path.stat().st_ino == inode and serialised == [2]
