"""Every python snippet in docs/API.md's "OpenAI-compatible API" and "Client keys" sections runs as written
against a live ``BKVY_ADMIN_API_KEY=change-me python main.py --demo`` (port rewritten)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.live_demo import start_demo

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "API.md"
SECTIONS = ("## OpenAI-compatible API", "## Client keys")


def _snippets(heading: str) -> list[str]:
    section = API_DOC.read_text(encoding="utf-8").split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


# One interpreter runs every snippet, each in a fresh namespace: the SDK is imported once, not per snippet.
_RUNNER = """
import contextlib, io, json, sys, traceback
results = []
for code in json.load(sys.stdin):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
        results.append({"ok": True, "stdout": out.getvalue()})
    except BaseException:
        results.append({"ok": False, "stdout": out.getvalue(), "error": traceback.format_exc()})
print(json.dumps(results))
"""


def _run_in_order(snippets: list[str], port: int) -> list[str]:
    """Run the snippets in document order; assert each succeeded and printed something."""
    codes = [snippet.replace("127.0.0.1:10006", f"127.0.0.1:{port}") for snippet in snippets]
    completed = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps(codes), capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout)
    for snippet, result in zip(snippets, results, strict=False):
        assert result["ok"], f"{snippet}\n--- error ---\n{result['error']}"
        assert result["stdout"].strip(), snippet
    return [result["stdout"] for result in results]


@pytest.fixture(scope="module")
def demo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_demo({"BKVY_ADMIN_API_KEY": "change-me"}, tmp_path_factory.mktemp("bkvy-docs"))
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_documented_python_snippets_run_against_the_demo(demo_port: int) -> None:
    openai_snippets, key_snippets = _snippets(SECTIONS[0]), _snippets(SECTIONS[1])
    assert len(openai_snippets) >= 4 and len(key_snippets) == 1
    # The client-key snippet runs last: creating a key makes every later request need one.
    outputs = _run_in_order(openai_snippets + key_snippets, demo_port)
    assert any("404 unknown_model" in output for output in outputs)
    assert any("400 invalid_request_error messages[0].role" in output for output in outputs)
    assert "revoked: 401" in outputs[-1]
