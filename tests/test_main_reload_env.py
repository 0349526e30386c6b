"""Which key value a reload reads (main._file_config_source): start-up's, unless ``.env`` was edited since."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from bkvy.core.config.settings import load_settings


def _key_after_edits(tmp_path: Path, startup_environ: dict[str, str], dotenv_edit: str | None) -> str:
    providers = {
        "openai": {
            "keys": {"k1": {"api_key": "${RELOAD_ENV_KEY}"}},
            "models": {"gpt-4o-mini": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001}},
        }
    }
    (tmp_path / "providers.json").write_text(json.dumps(providers), encoding="utf-8")
    (tmp_path / ".env").write_text("RELOAD_ENV_KEY=from-dotenv\n", encoding="utf-8")
    source = main._file_config_source(load_settings({}, config_dir=tmp_path), startup_environ)
    if dotenv_edit is not None:
        (tmp_path / ".env").write_text(f"RELOAD_ENV_KEY={dotenv_edit}\n", encoding="utf-8")
    return source().providers["openai"].keys["k1"].api_key


@pytest.mark.parametrize(
    ("startup_environ", "dotenv_edit", "expected"),
    [
        ({}, None, "from-dotenv"),  # as start-up: .env fills what the environment lacks
        ({"RELOAD_ENV_KEY": "from-shell"}, None, "from-shell"),  # as start-up: the environment wins
        ({}, "fixed", "fixed"),  # .env edited: the reload reads it
        ({"RELOAD_ENV_KEY": "from-dotenv"}, "fixed", "fixed"),  # systemd's EnvironmentFile=.env, then edited
        ({"RELOAD_ENV_KEY": "from-shell"}, "from-dotenv", "from-shell"),  # .env unchanged: no switch
    ],
)
def test_a_reload_reads_start_ups_environment_unless_dotenv_was_edited(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    startup_environ: dict[str, str],
    dotenv_edit: str | None,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _key_after_edits(tmp_path, startup_environ, dotenv_edit) == expected
