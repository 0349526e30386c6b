"""LatencyStore: atomic JSON on disk; a refusing disk is logged, never raised; a bad file reads as nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.latency_store import LatencyStore


async def test_save_then_load_round_trips_the_tracker(tmp_path: Path) -> None:
    tracker = LatencyTracker()
    for _ in range(30):
        tracker.observe("p", "m", 0.2)
    store = LatencyStore(tmp_path / "latency.json")
    await store.save(tracker.to_dict())
    restored = LatencyTracker()
    assert restored.load_dict(store.load()) == 1
    assert restored.quantile_seconds(("p", "m"), 0.95) == pytest.approx(0.2, rel=0.10)
    assert [p.name for p in tmp_path.iterdir()] == ["latency.json"]  # no temp file left behind


async def test_a_refusing_disk_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("x")
    store = LatencyStore(tmp_path / "file" / "latency.json")  # its folder is a file
    with caplog.at_level(logging.WARNING, logger="bkvy.core.routing.latency_store"):
        await store.save({"version": 1})
    assert [r.message for r in caplog.records] == ["latency_save_failed"]


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe\x00", b""])
def test_a_corrupt_file_loads_as_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "latency.json"
    path.write_bytes(content)
    assert LatencyStore(path).load() is None
    assert LatencyStore(tmp_path / "missing.json").load() is None
