"""`python main.py explain ...`: the plan POST /llm/explain would answer, offline, as a table or --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bkvy.api.adaptive_state import BANDIT_STATE_FILE
from bkvy.api.explain_cli import DRAW_SEED
from bkvy.clock import MonotonicClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.strategies import route_key
from bkvy.core.routing.bandit import STATE_VERSION
from bkvy.models.types import ErrorClass

ROOT = Path(__file__).resolve().parents[1]


def _explain(*args: str, log_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BKVY_CONFIG_DIR")}
    environ.update({"LOG_DIR": str(log_dir), **env})
    return subprocess.run(
        [sys.executable, "main.py", "explain", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _open_circuit_file(path: Path, provider: str, model: str, key_id: str) -> None:
    clock = MonotonicClock()
    # Open for 10 minutes: the default 10 s backoff could lapse before a CLI started on a busy machine reads it.
    registry = CircuitBreakerRegistry(CircuitSettings(base_backoff_seconds=600.0), clock)
    guard = CircuitGuard(registry, RetryBudget(clock))
    for _ in range(3):
        guard.record_failure(provider, model, key_id, ErrorClass.SERVER, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(registry.to_dict()))


def test_table_names_the_chosen_model_and_exits_0(tmp_path: Path):
    result = _explain("--demo", "--scenario", "research", "Compare two sorting algorithms.", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["candidate", "#"]
    assert "gemini/gemini-2.5-pro [gemini_key_1]" in result.stdout
    assert lines[-1] == "chosen: gemini/gemini-2.5-pro (key gemini_key_1)"


def test_a_persisted_open_circuit_shows_and_the_next_is_chosen(tmp_path: Path):
    _open_circuit_file(tmp_path / "demo" / "circuit_states.json", "gemini", "gemini-2.5-pro", "gemini_key_1")
    result = _explain("--demo", "--scenario", "research", "--json", "hi", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    rows = {(c["provider"], c["model"]): c for c in reply["candidates"]}
    assert rows[("gemini", "gemini-2.5-pro")]["excluded_by"] == "circuit"
    assert reply["chosen"]["model"] == "claude-sonnet-4-5"


def test_json_is_the_endpoints_answer_with_classification_for_auto(tmp_path: Path):
    result = _explain("--demo", "--level", "auto", "--json", "Write a haiku.", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert set(reply) >= {"chosen", "candidates", "classification", "decision_reason", "route"}
    assert reply["route"]["level"] == reply["classification"]["level"] == "low"  # a haiku: short, creative
    assert reply["classification"]["domain"] == "creative" and reply["chosen"] is not None


def test_file_carries_a_direct_body(tmp_path: Path):
    body = {"client_id": "cli", "provider": "openai", "model": "gpt-4o", "api_key_id": "openai_key_2",
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    result = _explain("--demo", "--file", str(request_file), "--json", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["chosen"] == {"provider": "openai", "model": "gpt-4o", "key_id": "openai_key_2"}


def test_bad_arguments_exit_2_with_a_message(tmp_path: Path):
    for args in (
        (),
        ("--level", "huge"),
        ("--level", "low", "--scenario", "research"),
        ("--demo", "--scenario", "nope"),
        ("--demo", "--file", str(tmp_path / "missing.json")),
        ("--demo", "--file", str(tmp_path / "missing.json"), "a prompt"),
    ):
        result = _explain(*args, log_dir=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "bkvy explain:" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_file_body_exits_2_naming_the_field(tmp_path: Path):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"client_id": "cli", "scenario": "research", "messages": []}))
    result = _explain("--demo", "--file", str(request_file), log_dir=tmp_path)
    assert result.returncode == 2
    assert "validation_error" in result.stderr and "messages" in result.stderr


def test_a_config_error_exits_1_naming_it(tmp_path: Path):
    (tmp_path / "providers.json").write_text("{not json")
    (tmp_path / "routing.json").write_text("{}")
    result = _explain("--level", "low", "hi", log_dir=tmp_path, BKVY_CONFIG_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "configuration error" in result.stderr and "providers.json" in result.stderr


def _bandit_file(path: Path, route: str, favourite: tuple[str, str], others: list[tuple[str, str]]) -> None:
    rows = [[*favourite, 1000.0, 0.0]] + [[provider, model, 0.0, 1000.0] for provider, model in others]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": STATE_VERSION, "routes": {route: rows}}))


def test_an_adaptive_route_is_explained_by_the_persisted_bandit_seeded(tmp_path: Path):
    # the demo's adaptive_support scenario: the CLI draws as the gateway would, from LOG_DIR/bandit_states.json
    route = route_key(None, "adaptive_support")
    assert route is not None
    favourite = ("anthropic", "claude-3-5-haiku-latest")
    others = [("openai", "gpt-4o-mini"), ("vllm", "qwen2.5-7b-instruct")]
    _bandit_file(tmp_path / "demo" / BANDIT_STATE_FILE, route, favourite, others)
    result = _explain("--demo", "--scenario", "adaptive_support", "--json", "hi", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["decision_reason"] == "adaptive"
    assert (reply["chosen"]["provider"], reply["chosen"]["model"]) == favourite
    again = _explain("--demo", "--scenario", "adaptive_support", "--json", "hi", log_dir=tmp_path)
    assert json.loads(again.stdout) == reply  # seeded draws: the same state explains the same plan
    table = _explain("--demo", "--scenario", "adaptive_support", "hi", log_dir=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "decision: adaptive" in table.stdout
    assert f"seeded ({DRAW_SEED})" in table.stdout
    assert table.stdout.splitlines()[-1] == "chosen: anthropic/claude-3-5-haiku-latest (key anthropic_key_1)"
