"""docs/ROUTING.md "Quality-aware scoring": every curl works as written against `python main.py --demo`, and
answers with the model the text says."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.live_demo import ROOT, start_demo, stop_demo

SECTION = "## Quality-aware scoring"
DEMO_PORT_IN_DOCS = "10006"
# In the order of the section's curls: what each answers with (docs/ROUTING.md says so next to them).
EXPECTED_MODELS = ["gemini-2.5-pro", "o3-mini", "gemini-2.5-pro", "gemini-2.5-pro"]


def _section_curls() -> list[str]:
    text = (ROOT / "docs" / "ROUTING.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]
    return commands


@pytest.fixture(scope="module")
def demo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_demo({}, tmp_path_factory.mktemp("bkvy-routing-docs"))
    try:
        yield port
    finally:
        stop_demo(process)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_scoring_examples_answer_as_documented(demo_port: int) -> None:
    commands = _section_curls()
    assert len(commands) == len(EXPECTED_MODELS)
    for command, model in zip(commands, EXPECTED_MODELS, strict=True):
        argv = shlex.split(command.replace(f":{DEMO_PORT_IN_DOCS}", f":{demo_port}"))
        completed = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        body, _, status = completed.stdout.rpartition("\n")
        assert status == "200", f"{command}\n-> {status} {body[:500]}"
        reply = json.loads(body)
        used = reply.get("model_used") or reply.get("model")
        assert used == model, command
