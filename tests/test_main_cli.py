"""`python main.py --check-config` reports a config clearly and exits 0 or 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _check(config_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    environ.update({"BKVY_CONFIG_DIR": str(config_dir), **env})
    return subprocess.run(
        [sys.executable, "main.py", "--check-config"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_a_summary_with_key_ids_only(tmp_path):
    for name in ("providers", "routing"):
        shutil.copy(ROOT / "config" / f"{name}.example.json", tmp_path / f"{name}.json")
    keys = {"OPENAI_API_KEY": "sk-secret-value-1", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g", "GROQ_API_KEY": "q"}
    completed = _check(tmp_path, **keys)
    assert completed.returncode == 0, completed.stderr
    assert "openai_key_1" in completed.stdout and "tier low" in completed.stdout
    assert "scenario customer_support" in completed.stdout
    assert "sk-secret-value-1" not in completed.stdout + completed.stderr


def test_check_config_names_file_path_and_fix_and_exits_1(tmp_path):
    providers = {
        "openai": {
            "keys": {"k1": {"api_key": "x"}},
            "models": {"gpt": {"intelligence_tier": "genius", "cost_per_1k_tokens": 1}},
        }
    }
    (tmp_path / "providers.json").write_text(json.dumps(providers))
    completed = _check(tmp_path)
    assert completed.returncode == 1
    assert "providers.json: openai.models.gpt.intelligence_tier" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_config_is_one_clear_line(tmp_path):
    completed = _check(tmp_path / "missing")
    assert completed.returncode == 1
    assert "not found" in completed.stderr and "Traceback" not in completed.stderr


def test_check_config_names_strategies_policy_and_tenants(tmp_path):
    for name in ("providers", "routing", "policy"):
        shutil.copy(ROOT / "config" / f"{name}.example.json", tmp_path / f"{name}.json")
    routing = json.loads((tmp_path / "routing.json").read_text())
    routing |= {"strategies": {"scenario:research": "adaptive"}, "optimize": {"high": "quality"}}
    (tmp_path / "routing.json").write_text(json.dumps(routing))
    (tmp_path / "tenants.json").write_text(json.dumps({"acme": {"policy": ["pii-to-private"]}}))
    keys = {"OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g", "GROQ_API_KEY": "q"}
    completed = _check(tmp_path, **keys)
    assert completed.returncode == 0, completed.stderr
    assert "strategy scenario:research: adaptive" in completed.stdout
    assert "optimize high: quality" in completed.stdout
    assert (
        "pii-to-private (require_private)" in completed.stdout and "residency: eu-data-stays-in-eu" in completed.stdout
    )
    assert "tenants: acme" in completed.stdout
