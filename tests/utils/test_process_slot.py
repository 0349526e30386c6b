"""Each process of a shared LOG_DIR takes its own slot (issue 17)."""

from __future__ import annotations

from pathlib import Path

from bkvy.utils.process_slot import release_slot, take_slot


def test_each_holder_gets_the_lowest_free_slot_and_a_released_one_comes_back(tmp_path: Path) -> None:
    first, second = take_slot(tmp_path), take_slot(tmp_path)
    assert (first.name, second.name) == ("w0", "w1")
    assert first.stats_id != second.stats_id
    release_slot(first)
    again = take_slot(tmp_path)
    assert (again.name, again.stats_id) == ("w0", first.stats_id)  # the same files, the same published totals
    release_slot(again)
    release_slot(second)


def test_a_fresh_log_dir_gets_a_fresh_stats_id(tmp_path: Path) -> None:
    one = take_slot(tmp_path / "a")
    other = take_slot(tmp_path / "b")
    assert one.name == other.name == "w0" and one.stats_id != other.stats_id
    release_slot(one)
    release_slot(other)
