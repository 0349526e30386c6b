"""Circuit state persistence: atomic writes, tolerant loads, debounced saves (no test sleeps)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.core.circuits.store import CircuitStore, DebouncedSaver
from bkvy.models.types import ErrorClass

KEY = CircuitKey("openai", "gpt-4o-mini", "key-a")


class _RecordingStore:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    async def save(self, state: dict[str, Any]) -> None:
        self.saved.append(state)


class _FailingStore:
    async def save(self, state: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")


async def _let_tasks_run() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # yields to the loop; no time passes


@pytest.mark.asyncio
async def test_save_then_load_round_trips(tmp_path: Path) -> None:
    store = CircuitStore(tmp_path / "state" / "circuits.json")
    state = {"version": 1, "circuits": [{"provider": "openai"}], "auth_blocked": []}
    await store.save(state)
    assert store.load() == state


@pytest.mark.asyncio
async def test_atomic_save_leaves_no_temp_files(tmp_path: Path) -> None:
    store = CircuitStore(tmp_path / "circuits.json")
    for count in range(3):
        await store.save({"version": 1, "circuits": [], "count": count})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circuits.json"]
    assert json.loads((tmp_path / "circuits.json").read_text())["count"] == 2


@pytest.mark.asyncio
async def test_failed_replace_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "circuits.json"
    store = CircuitStore(path)
    await store.save({"version": 1, "circuits": []})

    def refuse(source: str, target: Path) -> None:
        raise PermissionError(13, "denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        await store.save({"version": 1, "circuits": [{"provider": "new"}]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circuits.json"]
    assert store.load() == {"version": 1, "circuits": []}


def test_load_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert CircuitStore(tmp_path / "absent.json").load() is None


@pytest.mark.parametrize(
    "content",
    [
        '{"version": 1, "circuits": [',
        "not json",
        "",
        "\xff\xfe",
        "[]",
        '{"version": 1}',
        '{"circuits": [1, 2]}',
        '{"circuits": {}}',
    ],
)
def test_load_of_corrupt_or_wrong_shape_file_is_none_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "circuits.json"
    path.write_bytes(content.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="bkvy.core.circuits.store"):
        assert CircuitStore(path).load() is None
    assert any(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.asyncio
async def test_registry_survives_a_restart_through_the_store(tmp_path: Path) -> None:
    store = CircuitStore(tmp_path / "circuits.json")
    before = FakeClock(start=5000.0, wall_start=1_700_000_000.0)
    registry = CircuitBreakerRegistry(CircuitSettings(), before)
    registry.record_failure(KEY, ErrorClass.RATE_LIMITED, retry_after_seconds=600.0)
    await store.save(registry.to_dict())

    after = FakeClock(start=10.0, wall_start=1_700_000_060.0)
    restored = CircuitBreakerRegistry(CircuitSettings(), after)
    loaded = store.load()
    assert loaded is not None
    restored.load_dict(loaded)
    snapshot = restored.snapshot(KEY)
    assert snapshot.state is CircuitState.OPEN
    assert snapshot.open_until == pytest.approx(10.0 + 540.0)


@pytest.mark.asyncio
async def test_debounced_saver_writes_once_after_the_delay_with_the_newest_state() -> None:
    clock, store = FakeClock(), _RecordingStore()
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    for version in range(3):
        saver.schedule(lambda version=version: {"circuits": [], "version": version})
    await _let_tasks_run()
    clock.advance(0.9)
    await _let_tasks_run()
    assert store.saved == []
    clock.advance(0.1)
    await _let_tasks_run()
    assert store.saved == [{"circuits": [], "version": 2}]
    assert not saver.is_pending


@pytest.mark.asyncio
async def test_debounced_saver_saves_again_for_changes_after_a_write() -> None:
    clock, store = FakeClock(), _RecordingStore()
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    saver.schedule(lambda: {"n": 1})
    await _let_tasks_run()
    clock.advance(1.0)
    await _let_tasks_run()
    saver.schedule(lambda: {"n": 2})
    await _let_tasks_run()
    clock.advance(1.0)
    await _let_tasks_run()
    assert store.saved == [{"n": 1}, {"n": 2}]


@pytest.mark.asyncio
async def test_flush_writes_pending_state_without_waiting() -> None:
    clock, store = FakeClock(), _RecordingStore()
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    saver.schedule(lambda: {"n": 1})
    await _let_tasks_run()
    await saver.flush()
    assert store.saved == [{"n": 1}]
    assert clock.sleeper_count == 0
    await saver.flush()
    assert store.saved == [{"n": 1}]


@pytest.mark.asyncio
async def test_debounced_saver_logs_and_survives_a_failed_write(caplog: pytest.LogCaptureFixture) -> None:
    saver = DebouncedSaver(_FailingStore(), FakeClock())
    saver.schedule(lambda: {"n": 1})
    with caplog.at_level(logging.WARNING, logger="bkvy.core.circuits.store"):
        await saver.flush()
    assert [r.getMessage() for r in caplog.records] == ["circuit_state_save_failed"]


@pytest.mark.asyncio
async def test_registry_changes_reach_the_saver(tmp_path: Path) -> None:
    clock = FakeClock()
    registry = CircuitBreakerRegistry(CircuitSettings(), clock)
    store = CircuitStore(tmp_path / "circuits.json")
    saver = DebouncedSaver(store, clock)
    registry.on_change(lambda _snapshot: saver.schedule(registry.to_dict))
    registry.record_failure(KEY, ErrorClass.AUTH)
    await saver.flush()
    loaded = store.load()
    assert loaded is not None
    assert loaded["auth_blocked"] == [{"provider": "openai", "key_id": "key-a"}]


class _SlowStore:
    """A save that waits until the test releases it, to schedule changes mid-write."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []
        self.release = asyncio.Event()

    async def save(self, state: dict[str, Any]) -> None:
        await self.release.wait()
        self.saved.append(state)


@pytest.mark.asyncio
async def test_change_scheduled_during_a_write_is_saved_after_it() -> None:
    clock, store = FakeClock(), _SlowStore()
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    saver.schedule(lambda: {"n": 1})
    await _let_tasks_run()
    clock.advance(1.0)
    await _let_tasks_run()  # the first write is now in progress
    saver.schedule(lambda: {"n": 2})
    store.release.set()
    await _let_tasks_run()
    clock.advance(1.0)
    await _let_tasks_run()
    assert store.saved == [{"n": 1}, {"n": 2}]


@pytest.mark.asyncio
async def test_flush_during_a_write_waits_for_it_and_then_saves_the_newest() -> None:
    clock, store = FakeClock(), _SlowStore()
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    saver.schedule(lambda: {"n": 1})
    await _let_tasks_run()
    clock.advance(1.0)
    await _let_tasks_run()
    saver.schedule(lambda: {"n": 2})
    flush = asyncio.ensure_future(saver.flush())
    await _let_tasks_run()
    store.release.set()
    await flush
    assert store.saved == [{"n": 1}, {"n": 2}]
