"""bandit_states.json: atomic 0600 writes, and a missing or corrupt file loads nothing (never raises)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bkvy.core.routing.bandit_store import BanditStore


async def test_save_then_load_round_trips_with_mode_0600(tmp_path: Path) -> None:
    store = BanditStore(tmp_path / "bandit_states.json")
    await store.save({"version": 1, "routes": {"low": [["p", "m", 1.5, 0.5]]}})
    assert store.load() == {"version": 1, "routes": {"low": [["p", "m", 1.5, 0.5]]}}
    assert stat.S_IMODE((tmp_path / "bandit_states.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["bandit_states.json"]  # no temp file left behind


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[" * 100_000])
def test_a_corrupt_file_loads_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bandit_states.json"
    path.write_bytes(content)
    assert BanditStore(path).load() is None


def test_a_missing_file_loads_nothing(tmp_path: Path) -> None:
    assert BanditStore(tmp_path / "nope.json").load() is None


async def test_a_refusing_disk_raises_oserror_for_the_saver_to_log(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        await BanditStore(tmp_path / "file" / "bandit_states.json").save({})
