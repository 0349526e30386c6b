"""The dashboard's rolling aggregate: bounded buckets, range views, latest transactions."""

from __future__ import annotations

from bkvy.utils.live_stats import DAY_SECONDS, LiveStats
from bkvy.utils.records import TransactionRecord, utc_timestamp

NOW = 1_700_000_000.0


def _rec(wall: float, *, success: bool = True, ms: float = 100.0, provider: str = "ollama") -> TransactionRecord:
    return TransactionRecord(
        timestamp=utc_timestamp(wall),
        request_id=f"r{wall}",
        success=success,
        provider_used=provider if success else "",
        total_time_ms=ms,
        cost_estimate=0.5,
        error_type="" if success else "all_candidates_failed",
    )


def test_view_counts_only_the_range_and_fills_the_series() -> None:
    live = LiveStats()
    for minutes_ago in (0, 5, 30, 90):
        live.observe(_rec(NOW - minutes_ago * 60))
    live.observe(_rec(NOW - 10, success=False, ms=900.0))
    report, series = live.view(3600.0, NOW, 60.0)
    assert report["total"] == 4 and report["failures"] == 1
    assert report["errors_by_code"] == {"all_candidates_failed": 1}
    assert report["by_provider"] == {"ollama": 3}
    assert len(series) == 61 and sum(p.requests for p in series) == 4
    assert live.view(6 * 3600.0, NOW, 300.0)[0]["total"] == 5


def test_old_buckets_are_dropped_so_memory_stays_bounded() -> None:
    live = LiveStats()
    for hour in range(0, 24 * 40):
        live.observe(_rec(NOW - DAY_SECONDS * 40 + hour * 3600))
    assert len(live._minutes._buckets) <= 24 * 60
    assert len(live._hours._buckets) <= 30 * 24
    assert live.view(365 * DAY_SECONDS, NOW, DAY_SECONDS)[0]["total"] == 24 * 40
    assert live.view(30 * DAY_SECONDS, NOW, 6 * 3600.0)[0]["total"] <= 30 * 24


def test_recent_is_newest_first_and_bounded() -> None:
    live = LiveStats(recent_limit=3)
    for index in range(5):
        live.observe(_rec(NOW + index))
    assert [r.request_id for r in live.recent(10)] == [f"r{NOW + 4}", f"r{NOW + 3}", f"r{NOW + 2}"]


def test_view_reports_the_retry_and_hedge_rates() -> None:
    live = LiveStats()
    live.observe(_rec(NOW - 60))
    live.observe(_rec(NOW - 50)._replace(hedged=True))
    live.observe(_rec(NOW - 40)._replace(fallback_attempts=1))
    live.observe(_rec(NOW - 30)._replace(fallback_attempts=2, hedged=True))
    live.observe(_rec(NOW - 2 * DAY_SECONDS)._replace(hedged=True))  # outside the hour
    report, _ = live.view(3600.0, NOW, 60.0)
    assert (report["total"], report["hedged"], report["retried"]) == (4, 2, 2)
    assert (report["hedge_rate"], report["retry_rate"]) == (0.5, 0.5)
    assert LiveStats().view(3600.0, NOW, 60.0)[0]["hedge_rate"] is None  # no requests: no rate


def test_buckets_count_only_the_dashboards_dimensions_each_bounded() -> None:
    live = LiveStats(max_keys_per_dimension=4)
    for n in range(1000):  # e.g. rows read back from an edited transaction log
        live.observe(_rec(NOW - n, provider=f"p{n % 500}")._replace(client_id=f"c{n}", scenario=f"s{n}"))
    report, _ = live.view(3600.0, NOW, 60.0)
    assert report["total"] == 1000 and len(report["by_provider"]) == 5
    assert sum(report["by_provider"].values()) == 1000
    assert "by_client_id" not in report and "by_scenario" not in report


def test_changes_are_taken_once_and_evicted_buckets_are_named() -> None:
    live = LiveStats()
    live.track_changes()
    live.observe(_rec(NOW))
    changed, evicted = live.take_changes()
    minute, hour, day = int(NOW // 60), int(NOW // 3600), int(NOW // DAY_SECONDS)
    assert set(changed) == {f"m:{minute}", f"h:{hour}", f"d:{day}"} and evicted == []
    assert live.take_changes() == ({}, [])
    live.observe(_rec(NOW + DAY_SECONDS + 60))  # a day later: the first minute bucket leaves the last 24 h
    changed, evicted = live.take_changes()
    assert f"m:{minute}" in evicted and f"m:{minute}" not in changed


def test_view_adds_other_processes_buckets_of_the_range() -> None:
    mine, theirs = LiveStats(), LiveStats()
    mine.observe(_rec(NOW - 60))
    theirs.track_changes()
    theirs.observe(_rec(NOW - 120, provider="openai"))
    theirs.observe(_rec(NOW - 7200, provider="openai"))  # outside the 1 h range
    wanted = set(mine.fields_for(3600.0, NOW, 60.0))
    others = [(name, bucket) for name, bucket in theirs.take_changes()[0].items() if name in wanted]
    report, series = mine.view(3600.0, NOW, 60.0, others=others)
    assert report["total"] == 2 and report["by_provider"] == {"ollama": 1, "openai": 1}
    assert sum(point.requests for point in series) == 2
