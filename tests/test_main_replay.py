"""``python main.py replay`` as an operator runs it: a subprocess, a table or JSON, dates, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bkvy.utils.records import TransactionRecord
from tests.replay.test_log_reader import write_log

ROOT = Path(__file__).resolve().parent.parent


def run_main(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BKVY_CONFIG_DIR": "/nonexistent", "LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _request(day: str, second: int, **fields: object) -> TransactionRecord:
    return TransactionRecord(
        f"{day}T10:00:{second:02d}.000Z", f"{day}-{second}", "ops", success=True,
        total_time_ms=120.0 + second, input_tokens=200, output_tokens=50, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def _two_days() -> list[TransactionRecord]:
    requests = []
    for day in ("2026-11-29", "2026-11-30"):
        for second in range(10):
            if second % 2:
                requests.append(
                    _request(day, second, routing_method="intelligence", intelligence_level="high",
                             provider_used="openai", model_used="o3-mini", cost_estimate=0.00044)
                )  # fmt: skip
            else:
                requests.append(
                    _request(day, second, routing_method="scenario", scenario="research",
                             provider_used="gemini", model_used="gemini-2.5-pro", cost_estimate=0.0007)
                )  # fmt: skip
    return requests


@pytest.fixture(scope="module")
def demo_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's config written by ``--write-demo-config``, and a log of 10 requests on each of two days."""
    base = tmp_path_factory.mktemp("replay-cli")
    written = run_main("replay", "--write-demo-config", base / "config")
    assert written.returncode == 0, written.stderr
    assert {p.name for p in (base / "config").iterdir()} == {"providers.json", "routing.json", "policy.json"}
    return base / "config", write_log(base / "transactions.csv", _two_days())


def test_replay_prints_recorded_and_replayed_cost_success_and_percentiles(demo_setup: tuple[Path, Path]) -> None:
    config, log = demo_setup
    result = run_main("replay", log, "--config", config)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1]
    for word in ("cost $", "success", "p50 ms", "p95 ms", "p99 ms"):
        assert word in header
    assert "replayed 20 requests" in result.stdout
    totals = [line.split() for line in result.stdout.splitlines() if line.startswith("total ")]
    assert [row[1] for row in totals] == ["recorded", "replayed"]
    assert totals[1][2] == "20" and totals[1][4] == "100.0%"
    assert "strategy intelligence:high" in result.stdout and "model openai/o3-mini" in result.stdout


def test_replay_json_and_a_date_window(demo_setup: tuple[Path, Path]) -> None:
    config, log = demo_setup
    result = run_main("replay", log, "--config", config, "--json", "--from", "2026-11-30", "--to", "2026-11-30")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["log"]["requests"] == 10
    assert report["log"]["first"].startswith("2026-11-30")
    recorded = report["total"]["recorded"]
    assert recorded["cost_usd"] == pytest.approx(5 * 0.00044 + 5 * 0.0007)
    assert report["strategies"]["scenario:research"]["replayed"]["requests"] == 5
    # 200 in, 50 out at o3-mini's 0.0011 / 0.0044 per 1k, as recorded
    assert report["models"]["openai/o3-mini"]["replayed"]["cost_usd"] == pytest.approx(5 * 0.00044)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2027-01-01"], "no request in these files and dates"),
        (["--to", "someday"], "not a date"),
    ],
)
def test_an_empty_window_or_a_bad_date_exits_2(demo_setup: tuple[Path, Path], args: list[str], message: str) -> None:
    config, log = demo_setup
    result = run_main("replay", log, "--config", config, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr


def test_a_file_that_is_not_a_log_exits_2_naming_it(demo_setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, log = demo_setup
    foreign = tmp_path / "notes.csv"
    foreign.write_text("name,amount\nx,1\n")
    result = run_main("replay", log, foreign, "--config", config)
    assert result.returncode == 2
    assert f"{foreign}: not a transaction log" in result.stderr


def test_missing_arguments_exit_2_and_a_bad_config_exits_1(demo_setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, log = demo_setup
    assert run_main("replay", log).returncode == 2
    (tmp_path / "providers.json").write_text("{}")
    result = run_main("replay", log, "--config", tmp_path)
    assert result.returncode == 1
    assert "configuration error" in result.stderr and "providers.json" in result.stderr


def test_cache_hits_are_left_out_and_counted(demo_setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = demo_setup
    hits = [
        _request("2026-11-30", 50 + i, routing_method="intelligence", intelligence_level="high", cache_hit=True,
                 provider_used="openai", model_used="o3-mini", cost_estimate=0.0, cache_saved_usd=0.00044)
        for i in range(3)
    ]  # fmt: skip
    log = write_log(tmp_path / "transactions.csv", _two_days() + hits)
    result = run_main("replay", log, "--config", config)
    assert result.returncode == 0, result.stderr
    assert "3 cache hits left out" in result.stderr and "replayed 20 requests" in result.stdout


def test_embeddings_and_client_caused_failures_are_left_out_and_counted(
    demo_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """Replayed, an embeddings row became a failed chat request, and a client's own failure a success: the
    success rate moved with no change of the config."""
    config, _ = demo_setup
    embeddings = [
        _request("2026-11-30", 50 + i, routing_method="direct", requested_provider="openai",
                 requested_model="text-embedding-3-small", provider_used="openai",
                 model_used="text-embedding-3-small", cost_estimate=0.0000002)
        for i in range(2)
    ]  # fmt: skip
    failed = [
        TransactionRecord(f"2026-11-30T10:00:{55 + i}.000Z", f"gone-{i}", "ops", routing_method="intelligence",
                          intelligence_level="high", success=False, error_type=code)
        for i, code in enumerate(("client_disconnected", "client_stalled", "invalid_timeout"))
    ]  # fmt: skip
    log = write_log(tmp_path / "transactions.csv", _two_days() + embeddings + failed)
    result = run_main("replay", log, "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    assert "2 embeddings requests left out" in result.stderr
    assert "3 client-caused failures left out" in result.stderr
    report = json.loads(result.stdout)
    assert report["log"]["requests"] == 20
    assert report["total"]["recorded"]["success_rate"] == 1.0
