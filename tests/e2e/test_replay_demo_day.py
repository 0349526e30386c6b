"""A recorded demo day (tests/e2e/demo_day.py: 300 requests through the real gateway and recorder) replayed:
against its own config it reproduces the recorded totals; against a config with a cheaper high tier it shows
the saving the prices predict.

Tolerances (replayed vs recorded, over 300 requests; measured over 4 recordings x 2 replay seeds, the widest
gap seen: cost 5.5 %, p50 5 %, p95 6.4 %, p99 28 %): cost within 10 %, success rate within 2 points, p50
within 15 %, p95 within 20 %, p99 within 40 % (the p99 of 300 is the 3rd slowest request: one draw moves it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bkvy.core.config.gateway import load_config
from bkvy.core.config.pricing import cost_usd
from bkvy.core.config.settings import load_settings
from bkvy.replay.cli import replay_report
from bkvy.replay.log_reader import read_logs
from tests.e2e.demo_day import record_demo_day

_TOLERANCE = {"cost_usd": 0.10, "p50_ms": 0.15, "p95_ms": 0.20, "p99_ms": 0.40}


@pytest.fixture(autouse=True)
def _quiet_replayed_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bkvy.core")


async def _recorded_day(tmp_path: Path) -> tuple[Path, list]:
    config_dir, _ = await record_demo_day(tmp_path / "logs", requests=300)
    records = read_logs(sorted((tmp_path / "logs").glob("transactions*.csv")))
    assert len(records) == 300
    assert any(r.alternatives_outcomes for r in records), "the day's faults left failed attempts"
    return config_dir, records


def _with_cheaper_high_tier(config_dir: Path, target: Path) -> Path:
    """gemini-2.5-flash (0.0003/0.0025 per 1k) joins the high tier, under o3-mini (0.0011/0.0044)."""
    target.mkdir()
    for source in config_dir.iterdir():
        (target / source.name).write_text(source.read_text())
    providers = json.loads((target / "providers.json").read_text())
    providers["gemini"]["models"]["gemini-2.5-flash"]["intelligence_tier"] = "high"
    (target / "providers.json").write_text(json.dumps(providers))
    return target


async def test_a_demo_day_replayed_against_its_own_config_reproduces_its_totals(tmp_path: Path) -> None:
    config_dir, records = await _recorded_day(tmp_path)
    report = await replay_report(records, load_config(config_dir, {}), load_settings({}))
    recorded, replayed = report["total"]["recorded"], report["total"]["replayed"]
    assert replayed["requests"] == 300
    assert replayed["success_rate"] == pytest.approx(recorded["success_rate"], abs=0.02)
    for field, tolerance in _TOLERANCE.items():
        assert replayed[field] == pytest.approx(recorded[field], rel=tolerance), field
    assert report["fit"]["episodes"], "the 429 burst and the server errors were fitted"
    assert {"openai/gpt-4o", "gemini/gemini-2.5-pro"} <= set(report["fit"]["latency"])


async def test_a_cheaper_high_tier_shows_the_saving_its_prices_predict(tmp_path: Path) -> None:
    config_dir, records = await _recorded_day(tmp_path)
    cheaper = load_config(_with_cheaper_high_tier(config_dir, tmp_path / "cheaper"), {})
    report = await replay_report(records, cheaper, load_settings({}))
    high = report["strategies"]["intelligence:high"]
    expected = sum(
        cost_usd(r.input_tokens or 0, r.output_tokens or 0, 0.0003, 0.0025)
        for r in records
        if r.routing_method == "intelligence" and r.intelligence_level == "high"
    )
    assert high["replayed"]["cost_usd"] == pytest.approx(expected, rel=0.02)
    assert high["replayed"]["cost_usd"] < high["recorded"]["cost_usd"] * 0.6
    assert report["models"]["gemini/gemini-2.5-flash"]["replayed"]["requests"] == high["replayed"]["requests"]
    saving = report["total"]["recorded"]["cost_usd"] - report["total"]["replayed"]["cost_usd"]
    assert saving == pytest.approx(high["recorded"]["cost_usd"] - expected, rel=0.5)
